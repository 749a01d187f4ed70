"""Where a clip's frames are on disk, and where its plates go: pure functions of paths and numbers.

Fusion and Resolve name clips three ways: a Loader's ``Clip`` is one frame's file
(``/shots/sh010/plate.1001.exr``, the sequence found around it); Resolve's ``File Path`` of an
image sequence is ``/shots/sh010/plate.[1001-1012].exr``; ``ImportMedia`` takes ``%04d``. Plates
and patterns sent to the bridge are ``%04d``-style, which the bridge, Resolve and the Lua launcher
all read. A movie is one file the bridge cannot read as a sequence (see docs/resolve.md).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from .messages import NotAFile, UserError

IMAGE_EXTENSIONS = (".exr", ".dpx", ".cin", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".tga", ".bmp", ".hdr",
                    ".sgi", ".jp2", ".j2c")
VIDEO_EXTENSIONS = (".mov", ".mp4", ".m4v", ".mxf", ".avi", ".mkv", ".webm", ".mts", ".m2ts", ".mpg", ".mpeg",
                    ".wmv", ".braw", ".r3d", ".ari", ".crm", ".dng")
_FRAME_FILE = re.compile(r"^(?P<head>.*?)(?P<digits>\d+)(?P<tail>\.[A-Za-z0-9]+)$")
_BRACKETS = re.compile(r"^(?P<head>.*?)\[(?P<first>\d+)-(?P<last>\d+)\](?P<tail>\.[A-Za-z0-9]+)$")
_PRINTF = re.compile(r"%0?(\d*)d")
_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")
OUTPUTS = ("alpha", "foreground")


@dataclass(frozen=True)
class Source:
    """Frames ``first``..``last`` (both included, file frame numbers) of ``pattern``
    (``%04d``-style for a sequence; the file itself for a movie). ``kind``: sequence or movie."""

    pattern: str
    first: int
    last: int
    kind: str = "sequence"

    @property
    def frames(self) -> str:
        return f"{self.first}-{self.last}"

    def path(self, frame: int) -> str:
        return frame_path(self.pattern, frame)

    @property
    def label(self) -> str:
        """The clip's name for plate files and bins: ``plate`` for ``plate.%04d.exr``."""
        name = os.path.basename(_PRINTF.sub("", self.pattern))
        name = os.path.splitext(name)[0].rstrip("._-") or "clip"
        return _LABEL.sub("_", name)


def extension(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def is_movie(path: str) -> bool:
    return extension(path) in VIDEO_EXTENSIONS


def frame_path(pattern: str, frame: int) -> str:
    """``pattern``'s file for ``frame`` (``%04d``, ``%d``)."""
    match = _PRINTF.search(os.path.basename(pattern))
    if not match:
        return pattern
    width = int(match.group(1) or 0)
    folder, name = os.path.split(pattern)
    return os.path.join(folder, name[:match.start()] + str(frame).zfill(width) + name[match.end():]) if folder \
        else name[:match.start()] + str(frame).zfill(width) + name[match.end():]


def sequence_of_frame_file(path: str) -> Optional[Tuple[str, int]]:
    """``/a/plate.1001.exr`` -> (``/a/plate.%04d.exr``, 1001); None without a frame number."""
    folder, name = os.path.split(path)
    match = _FRAME_FILE.match(name)
    if not match or extension(name) not in IMAGE_EXTENSIONS:
        return None
    digits = match.group("digits")
    pattern = f"{match.group('head')}%0{len(digits)}d{match.group('tail')}"
    return os.path.join(folder, pattern), int(digits)


def frames_on_disk(pattern: str) -> List[int]:
    """The frame numbers of ``pattern`` (``%04d``) present on disk, ascending."""
    folder, name = os.path.split(pattern)
    match = _PRINTF.search(name)
    if not match or not os.path.isdir(folder or "."):
        return []
    width = int(match.group(1) or 0)
    digits = r"\d{" + str(width) + ",}" if width else r"\d+"
    wanted = re.compile("^" + re.escape(name[:match.start()]) + "(" + digits + ")" + re.escape(name[match.end():]) + "$")
    found = []
    for entry in os.listdir(folder or "."):
        hit = wanted.match(entry)
        if hit:
            found.append(int(hit.group(1)))
    return sorted(found)


def resolve_file_path(path: str, name: str = "") -> Source:
    """The Source of a Media Pool clip's ``File Path``: an image sequence
    (``plate.[1001-1012].exr``, ``plate.%04d.exr``, or one frame of it) or a movie file.

    Raises NotAFile when the clip is not a file on disk (generators, titles, compound clips,
    offline media) or the sequence has no frame there.
    """
    label = name or path or "this clip"
    if not path:
        raise NotAFile(f"RVM Matte: {label} is not a file on disk (a generator, title, compound or Fusion clip); "
                       "matte the media it was made from instead.")
    folder, file_name = os.path.split(path)
    bracket = _BRACKETS.match(file_name)
    if bracket:
        width = len(bracket.group("first"))
        pattern = os.path.join(folder, f"{bracket.group('head')}%0{width}d{bracket.group('tail')}")
        return _checked(Source(pattern, int(bracket.group("first")), int(bracket.group("last"))), label)
    if _PRINTF.search(file_name):
        on_disk = frames_on_disk(path)
        if not on_disk:
            raise NotAFile(f"RVM Matte: no frame of {path} ({label}) is on disk; is the media offline?")
        return Source(path, on_disk[0], on_disk[-1])
    if not os.path.isfile(path):
        raise NotAFile(f"RVM Matte: {path} ({label}) is not on disk; relink the clip or bring its media online.")
    if is_movie(path):
        return Source(path, 0, 0, kind="movie")
    sequence = sequence_of_frame_file(path)
    if sequence:
        on_disk = frames_on_disk(sequence[0])
        return Source(sequence[0], on_disk[0], on_disk[-1])
    raise NotAFile(f"RVM Matte: {path} ({label}) is neither an image sequence nor a movie file the bridge reads.")


def _checked(source: Source, label: str) -> Source:
    if not os.path.isfile(source.path(source.first)):
        raise NotAFile(f"RVM Matte: {source.path(source.first)} ({label}) is not on disk; is the media offline?")
    return source


def per_clip(value: Any, default: Any = None) -> Any:
    """The first clip's value of a Fusion per-clip attribute table (``{1.0: value}`` in Python,
    ``{[1] = value}`` in Lua); a plain value is returned as it is."""
    if isinstance(value, dict):
        if not value:
            return default
        return value[sorted(value)[0]]
    return default if value is None else value


def loader_source(attrs: Dict[str, Any]) -> Source:
    """The frames a Loader reads: ``InitialFrame + TrimIn`` .. ``InitialFrame + TrimOut`` of the
    sequence around its ``Clip`` (the per-clip attributes of ``Loader:GetAttrs()``).

    Raises NotAFile for a Loader without a clip, or whose clip is not on disk.
    """
    name = str(per_clip(attrs.get("TOOLST_Clip_Name"), "") or "")
    tool = str(attrs.get("TOOLS_Name", "the Loader"))
    if not name:
        raise NotAFile(f"RVM Matte: {tool} has no clip; choose its file first.")
    if is_movie(name):
        if not os.path.isfile(name):
            raise NotAFile(f"RVM Matte: {name} ({tool}) is not on disk.")
        trim_in = int(per_clip(attrs.get("TOOLIT_Clip_TrimIn"), 0) or 0)
        trim_out = int(per_clip(attrs.get("TOOLIT_Clip_TrimOut"), 0) or 0)
        return Source(name, trim_in, trim_out, kind="movie")
    sequence = sequence_of_frame_file(name)
    if sequence is None:
        if os.path.isfile(name):
            return Source(name, 0, 0, kind="still")
        raise NotAFile(f"RVM Matte: {name} ({tool}) is not on disk.")
    pattern, frame = sequence
    initial = per_clip(attrs.get("TOOLIT_Clip_InitialFrame"))
    on_disk = frames_on_disk(pattern)
    if not on_disk:
        raise NotAFile(f"RVM Matte: no frame of {pattern} ({tool}) is on disk.")
    start = int(initial) if initial is not None else on_disk[0]
    trim_in = int(per_clip(attrs.get("TOOLIT_Clip_TrimIn"), 0) or 0)
    trim_out = per_clip(attrs.get("TOOLIT_Clip_TrimOut"))
    last = start + int(trim_out) if trim_out is not None else on_disk[-1]
    return _checked(Source(pattern, start + trim_in, last), tool)


def used_range(source: Source, start_offset: int, duration: int, handles: int) -> Source:
    """The part of ``source`` a timeline clip uses: ``duration`` frames from ``start_offset``
    frames into the clip, widened by ``handles`` frames each side, within the frames on disk."""
    if duration <= 0:
        return source
    first = source.first + start_offset if start_offset < source.first else start_offset
    last = first + duration - 1
    if first > source.last or last < source.first:
        raise UserError(f"RVM Matte: the timeline uses frames {first}-{last} of {source.pattern}, which holds frames "
                        f"{source.frames}; select the clip in the Media Pool to matte all of it, or relink it.")
    return Source(source.pattern, max(source.first, first - handles), min(source.last, last + handles), source.kind)


def parse_frames(text: str, default: Source) -> Tuple[int, int]:
    """``"1001-1012"`` (both included) or ``"1005"``; empty means the source's own range."""
    text = (text or "").strip()
    if not text:
        return default.first, default.last
    match = re.match(r"^\s*(-?\d+)\s*(?:-\s*(-?\d+))?\s*$", text)
    if not match:
        raise UserError(f"RVM Matte: frame range {text!r} is not like 1001-1100.")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) is not None else first
    if last < first:
        raise UserError(f"RVM Matte: frame range {text!r} ends before it starts.")
    return first, last


def output_patterns(source: Source, folder: str = "", label: str = "") -> Dict[str, str]:
    """The alpha and foreground plate patterns for ``source``: ``<folder>/<label>_alpha.%04d.exr``
    and ``<label>_fg.%04d.exr``, where ``folder`` defaults to ``rvm`` beside the source."""
    where = folder or os.path.join(os.path.dirname(source.pattern), "rvm")
    name = _LABEL.sub("_", label) if label else source.label
    return {"alpha": os.path.join(where, f"{name}_alpha.%04d.exr"),
            "foreground": os.path.join(where, f"{name}_fg.%04d.exr")}
