"""DaVinci Resolve's scripting objects as the Utility script uses them (Blackmagic's scripting
README, typed by ``fusionscript-stubs`` 21.0): Resolve, ProjectManager, Project, MediaPool,
Folder, MediaPoolItem, MediaStorage, Timeline, TimelineItem.

Imitated behaviour:
- ``GetProductName()`` is "DaVinci Resolve" or "DaVinci Resolve Studio"; ``GetVersion()`` is
  ``[major, minor, patch, build, suffix]``.
- A Media Pool item's ``GetClipProperty("File Path")`` is the movie's file, or for an image
  sequence ``folder/name.[1001-1012].exr`` (the name Resolve shows, as in the README's
  ``ImportMedia`` example "file_[001-100].dpx"); generators and titles have an empty path.
- ``ImportMedia([{"FilePath": "x.%04d.exr", "StartIndex": a, "EndIndex": b}])`` imports one
  clip per entry into the current folder, only when every frame is on disk (else it returns an
  empty list, as Resolve does); the plain list-of-paths form is accepted too.
- ``MediaStorage.AddClipMattesToMediaPool(item, paths)`` attaches mattes (files that exist) to
  a clip; ``MediaPool.GetClipMatteList(item)`` lists them.
- ``TimelineItem.GetSourceStartFrame()`` exists from 19.0; before it, only ``GetLeftOffset``.
Anything else raises StandInError.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional, Union

from .fusion import Fusion, StandInError, Strict

_PRINTF = re.compile(r"%0?(\d*)d")


class MediaPoolItem(Strict):
    __slots__ = ("name", "file_path", "mattes")

    def __init__(self, name: str, file_path: str) -> None:
        self.name = name
        self.file_path = file_path
        self.mattes: List[str] = []

    def GetName(self) -> str:
        return self.name

    def GetClipProperty(self, property_name: Optional[str] = None) -> Union[str, Dict[str, str]]:
        properties = {"File Path": self.file_path, "Clip Name": self.name, "Type": "Video"}
        if property_name is None:
            return properties
        return properties.get(property_name, "")


class Folder(Strict):
    __slots__ = ("name", "clips", "folders")

    def __init__(self, name: str) -> None:
        self.name = name
        self.clips: List[MediaPoolItem] = []
        self.folders: List[Folder] = []

    def GetName(self) -> str:
        return self.name

    def GetClipList(self) -> List[MediaPoolItem]:
        return list(self.clips)

    def GetSubFolderList(self) -> List[Folder]:
        return list(self.folders)


class MediaPool(Strict):
    __slots__ = ("root", "current", "selected", "imports")

    def __init__(self) -> None:
        self.root = Folder("Master")
        self.current = self.root
        self.selected: List[MediaPoolItem] = []
        self.imports = 0

    def GetRootFolder(self) -> Folder:
        return self.root

    def AddSubFolder(self, folder: Folder, name: str) -> Folder:
        made = Folder(name)
        folder.folders.append(made)
        return made

    def GetCurrentFolder(self) -> Folder:
        return self.current

    def SetCurrentFolder(self, folder: Folder) -> bool:
        if not isinstance(folder, Folder):
            raise StandInError("SetCurrentFolder takes a Folder")
        self.current = folder
        return True

    def GetSelectedClips(self) -> List[MediaPoolItem]:
        return list(self.selected)

    def ImportMedia(self, items: List[Any]) -> List[MediaPoolItem]:
        made = []
        for item in items:
            if isinstance(item, dict):
                if set(item) - {"FilePath", "StartIndex", "EndIndex"}:
                    raise StandInError(f"ImportMedia clip info takes FilePath, StartIndex, EndIndex, not {sorted(item)}")
                pattern, first, last = item["FilePath"], int(item["StartIndex"]), int(item["EndIndex"])
                match = _PRINTF.search(os.path.basename(pattern))
                if not match:
                    raise StandInError(f"ImportMedia: {pattern} has no %d frame token")
                width = int(match.group(1) or 0)
                files = [_frame(pattern, frame, width) for frame in range(first, last + 1)]
                if not all(os.path.isfile(path) for path in files):
                    continue
                folder, name = os.path.split(pattern)
                label = name[:match.start()] + f"[{first:0{width}d}-{last:0{width}d}]" + name[match.end():]
                clip = MediaPoolItem(label, os.path.join(folder, label))
            else:
                if not os.path.isfile(item):
                    continue
                clip = MediaPoolItem(os.path.basename(item), item)
            self.current.clips.append(clip)
            made.append(clip)
        self.imports += len(made)
        return made

    def GetClipMatteList(self, item: MediaPoolItem) -> List[str]:
        return list(item.mattes)


class MediaStorage(Strict):
    __slots__ = ()

    def AddClipMattesToMediaPool(self, item: MediaPoolItem, paths: List[str], stereo_eye: Optional[str] = None
                                 ) -> bool:
        if not isinstance(item, MediaPoolItem) or not paths or not all(os.path.isfile(p) for p in paths):
            return False
        item.mattes.extend(paths)
        return True


class TimelineItem(Strict):
    __slots__ = ("item", "source_start", "duration", "version")

    def __init__(self, item: Optional[MediaPoolItem], source_start: int, duration: int, version: tuple) -> None:
        self.item = item
        self.source_start = source_start
        self.duration = duration
        self.version = version

    def GetName(self) -> str:
        return self.item.name if self.item else "Text+"

    def GetMediaPoolItem(self) -> Optional[MediaPoolItem]:
        return self.item

    def GetDuration(self, subframe_precision: bool = False) -> int:
        return self.duration

    def GetLeftOffset(self, subframe_precision: bool = False) -> int:
        return self.source_start

    def GetSourceStartFrame(self) -> int:
        if self.version[:2] < (19, 0):
            raise StandInError("TimelineItem.GetSourceStartFrame arrived in Resolve 19.0")
        return self.source_start


class Timeline(Strict):
    __slots__ = ("current",)

    def __init__(self) -> None:
        self.current: Optional[TimelineItem] = None

    def GetCurrentVideoItem(self) -> Optional[TimelineItem]:
        return self.current


class Project(Strict):
    __slots__ = ("pool", "timeline")

    def __init__(self) -> None:
        self.pool = MediaPool()
        self.timeline = Timeline()

    def GetMediaPool(self) -> MediaPool:
        return self.pool

    def GetCurrentTimeline(self) -> Timeline:
        return self.timeline


class ProjectManager(Strict):
    __slots__ = ("project",)

    def __init__(self) -> None:
        self.project = Project()

    def GetCurrentProject(self) -> Project:
        return self.project


class Resolve(Strict):
    __slots__ = ("product", "version", "manager", "storage", "fusion")

    def __init__(self, product: str = "DaVinci Resolve Studio", version: tuple = (20, 2, 1),
                 fusion: Optional[Fusion] = None) -> None:
        self.product = product
        self.version = version
        self.manager = ProjectManager()
        self.storage = MediaStorage()
        self.fusion = fusion

    def GetProductName(self) -> str:
        return self.product

    def GetVersion(self) -> List[Any]:
        return [*self.version, 0, ""][:5]

    def GetProjectManager(self) -> ProjectManager:
        return self.manager

    def GetMediaStorage(self) -> MediaStorage:
        return self.storage

    def Fusion(self) -> Optional[Fusion]:
        return self.fusion

    # -- for tests ----------------------------------------------------------------------------
    @property
    def pool(self) -> MediaPool:
        return self.manager.project.pool

    def add_clip(self, name: str, file_path: str, selected: bool = True) -> MediaPoolItem:
        clip = MediaPoolItem(name, file_path)
        self.pool.root.clips.append(clip)
        if selected:
            self.pool.selected.append(clip)
        return clip

    def put_on_timeline(self, clip: Optional[MediaPoolItem], source_start: int, duration: int) -> TimelineItem:
        item = TimelineItem(clip, source_start, duration, self.version)
        self.manager.project.timeline.current = item
        return item


def _frame(pattern: str, frame: int, width: int) -> str:
    return _PRINTF.sub(str(frame).zfill(width), pattern, count=1)
