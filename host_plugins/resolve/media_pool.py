"""Utility > RVM Matte: mattes for Media Pool clips, imported beside them and attached as clip mattes.

For the selected Media Pool clips (all their frames), or else the timeline clip under the
playhead (the frames the timeline uses, plus handles), the bridge makes alpha and foreground
plates from the clip's own image sequence; both sequences are imported into a bin named for
the clip (``RVM <clip>``) and the alpha sequence is attached to the source clip as a clip matte.
A second run remakes the plates in place and imports or attaches nothing twice.

Movies (``.mov``, ``.mp4``, ``.mxf`` ...) are decoded by the bridge itself (PyAV), frame 0 first,
when they are under its roots; their plates are numbered from 0 like the movie's frames.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from . import bootstrap, bridge_calls, dialog, progress, sources
from .edition import Edition, edition_of, python_warning
from .messages import EditionCannot, UserError, explain, nothing_selected

if TYPE_CHECKING:
    from fusionscript import Folder, MediaPool, MediaPoolItem, Resolve, TimelineItem

    from .fusion_api import Bmd, Fusion

Say = Callable[[str], None]
DEFAULT_HANDLES = 12
BIN_PREFIX = "RVM "


@dataclass
class ClipResult:
    """One clip's outcome: its plates (patterns), frames, the bin and the Media Pool items."""

    name: str
    source: sources.Source
    plates: Dict[str, str] = field(default_factory=dict)
    imported: List[Any] = field(default_factory=list)
    matte_attached: bool = False
    cancelled: bool = False


Usage = Optional[Tuple[int, int]]  # a timeline clip's (source start, duration); None = the whole clip


def picked_clips(resolve: Resolve, edition: Edition) -> List[Tuple[MediaPoolItem, sources.Source, Usage]]:
    """The selected Media Pool clips (all their frames), else the timeline clip under the playhead
    with the part of it the timeline uses. Raises NothingSelected, NotAFile."""
    project = resolve.GetProjectManager().GetCurrentProject()
    pool = project.GetMediaPool()
    selected = _as_list(pool.GetSelectedClips())
    if selected:
        return [(clip, _source_of(clip), None) for clip in selected]
    timeline = project.GetCurrentTimeline()
    item: Optional[TimelineItem] = timeline.GetCurrentVideoItem() if timeline else None
    clip = item.GetMediaPoolItem() if item else None
    if item is None or clip is None:
        raise nothing_selected("resolve")
    start = item.GetSourceStartFrame() if edition.source_start_frame else item.GetLeftOffset(False)
    return [(clip, _source_of(clip), (int(start), int(item.GetDuration(False))))]


def frames_to_matte(client: ModuleType, address: str, source: sources.Source, usage: Usage, plates: Dict[str, str],
                    handles: int = DEFAULT_HANDLES) -> sources.Source:
    """The frames to matte: a movie's come from the bridge (it decodes the movie; frames start at
    0), a sequence's from its file path; a timeline clip's used part is widened by ``handles``."""
    if source.kind == "movie":
        frames = bridge_calls.frames_of(client, address, source.pattern, plates)
        if not frames:
            raise UserError(f"RVM Matte: the bridge finds no frame in the movie {source.pattern}.")
        source = sources.Source(source.pattern, frames[0], frames[-1], "movie")
    return sources.used_range(source, usage[0], usage[1], handles) if usage else source


def _source_of(clip: MediaPoolItem) -> sources.Source:
    return sources.resolve_file_path(str(clip.GetClipProperty("File Path") or ""), clip.GetName())


def _as_list(value: Any) -> List[Any]:
    """Resolve returns lists, older versions (and Lua-style calls) ``{1.0: item}`` tables."""
    if isinstance(value, dict):
        return [item for _, item in sorted(value.items())]
    return list(value or [])


def _refuse_shared_plates(picked: List[Tuple[str, sources.Source]], folder: str) -> None:
    """Two clips whose plates would be one file sequence (``take.mov`` and ``take.mp4`` side by
    side, or one plates folder for two ``plate`` sequences): the second would overwrite the first's
    plates and clip matte. Raises UserError before anything is made."""
    seen: Dict[str, str] = {}
    for name, source in picked:
        alpha = os.path.normpath(sources.output_patterns(source, folder)["alpha"])
        if alpha in seen and seen[alpha] != source.pattern:
            raise UserError(f"RVM Matte: {name} and {_name_of(seen, alpha, picked)} would write the same plates "
                            f"({alpha}); matte them one at a time, each with its own plates folder.")
        seen[alpha] = source.pattern


def _name_of(seen: Dict[str, str], alpha: str, picked: List[Tuple[str, sources.Source]]) -> str:
    return next(name for name, source in picked if source.pattern == seen[alpha])


def _frames_asked(text: str, source: sources.Source, clips: int, say: Say) -> Tuple[int, int]:
    """The frames the artist typed for the one clip picked (a movie's or a timeline clip's too),
    within what there is; for several clips each clip's own frames (said, not silently)."""
    if not (text or "").strip():
        return source.first, source.last
    if clips > 1:
        say(f"RVM Matte: frames {text.strip()} are for one clip; {clips} clips are picked, so each is matted "
            "for its own frames.")
        return source.first, source.last
    first, last = sources.parse_frames(text, source)
    if first < source.first or last > source.last:
        raise UserError(f"RVM Matte: frames {first}-{last} are outside the clip's {source.frames}.")
    return first, last


def bin_for(pool: MediaPool, name: str) -> Folder:
    """The bin ``RVM <name>`` under the Media Pool's root, made when missing."""
    root = pool.GetRootFolder()
    wanted = BIN_PREFIX + name
    for folder in _as_list(root.GetSubFolderList()):
        if folder.GetName() == wanted:
            return folder
    made = pool.AddSubFolder(root, wanted)
    if not made:
        raise UserError(f"RVM Matte: Resolve would not make the bin {wanted!r} in the Media Pool.")
    return made


def import_plates(pool: MediaPool, folder: Folder, plates: Dict[str, str], first: int, last: int) -> List[Any]:
    """Import each plate sequence into ``folder`` unless a clip there already reads it; returns
    the Media Pool items (found or imported), alpha first."""
    current = pool.GetCurrentFolder()
    items = []
    try:
        pool.SetCurrentFolder(folder)
        present = {}
        for clip in _as_list(folder.GetClipList()):
            try:
                present[_source_of(clip).pattern] = clip
            except UserError:
                continue
        for role in sources.OUTPUTS:
            if plates[role] in present:
                items.append(present[plates[role]])
                continue
            imported = _as_list(pool.ImportMedia([{"FilePath": plates[role], "StartIndex": first, "EndIndex": last}]))
            if not imported:
                raise UserError(f"RVM Matte: Resolve did not import {plates[role]} ({first}-{last}).")
            items.extend(imported)
    finally:
        if current is not None:
            pool.SetCurrentFolder(current)
    return items


def attach_matte(resolve: Resolve, pool: MediaPool, clip: MediaPoolItem, pattern: str, first: int,
                 last: int) -> bool:
    """Attach the alpha sequence to ``clip`` as a clip matte unless it already is; True if attached now."""
    files = [sources.frame_path(pattern, frame) for frame in range(first, last + 1)]
    present = {os.path.normpath(str(path)) for path in _as_list(pool.GetClipMatteList(clip))}
    if any(os.path.normpath(path) in present for path in files[:1]) or os.path.normpath(pattern) in present:
        return False
    # The stub marks stereoEye required; Blackmagic's README calls it optional (for stereo clips).
    if not resolve.GetMediaStorage().AddClipMattesToMediaPool(clip, files):  # type: ignore[call-arg]
        raise UserError(f"RVM Matte: Resolve would not attach {pattern} to {clip.GetName()} as a clip matte.")
    return True


def run(resolve: Resolve, *, fusion: Optional[Fusion] = None, bmd: Optional[Bmd] = None, say: Say = print,
        client: Optional[ModuleType] = None) -> List[ClipResult]:
    """One run of Utility > RVM Matte. Raises UserError with the artist's message."""
    edition = edition_of(resolve.GetProductName(), resolve.GetVersion())
    if not edition.supported or edition.fusion_studio:
        raise EditionCannot("RVM Matte: " + " ".join(line.strip() for line in edition.describe()))
    say("RVM Matte on " + " ".join(line.strip() for line in edition.describe()))
    warning = python_warning(edition, (sys.version_info[0], sys.version_info[1]), os.name)
    if warning:
        say(warning)
    picked = picked_clips(resolve, edition)
    unit = client or bootstrap.client_unit()
    probe_timeout, hello_timeout = bridge_calls.timeouts()
    only = picked[0][1] if len(picked) == 1 and picked[0][1].kind == "sequence" and picked[0][2] is None else None
    defaults = dialog.MatteSettings(address=dialog.default_address(), frames=only.frames if only else "",
                                    output_folder="")
    description = bridge_calls.describe(unit, defaults.address, probe_timeout)
    comp = fusion.CurrentComp if fusion is not None else None
    settings = dialog.ask(defaults, dialog.choices_from(description, unit.CLIP_PARAMETERS), fusion=fusion,
                          comp=comp, bmd=bmd, ui_manager=edition.ui_manager, say=say)
    try:
        hello = bridge_calls.hello(unit, settings.address, hello_timeout)
    except unit.BridgeError as error:
        raise UserError(explain(error, settings.address)) from error
    roots = [str(root) for root in hello.get("roots", [])]
    pool = resolve.GetProjectManager().GetCurrentProject().GetMediaPool()
    ui = getattr(fusion, "UIManager", None) if edition.ui_manager else None
    _refuse_shared_plates([(clip.GetName(), found) for clip, found, _ in picked], settings.output_folder)
    results = []
    for clip, found, usage in picked:
        plates = sources.output_patterns(found, settings.output_folder)
        try:
            source = frames_to_matte(unit, settings.address, found, usage, plates)
        except unit.BridgeError as error:
            raise UserError(explain(error, settings.address, roots)) from error
        first, last = _frames_asked(settings.frames, source, len(picked), say)
        result = ClipResult(clip.GetName(), source, plates)
        results.append(result)
        try:
            summary = progress.run(
                functools.partial(bridge_calls.render, unit, settings, source.pattern, first, last, plates),
                ui=ui, bmd=bmd, say=say, folder=os.path.dirname(plates["alpha"]))
        except unit.BridgeError as error:
            raise UserError(explain(error, settings.address, roots)) from error
        if summary.cancelled:
            result.cancelled = True
            say(f"RVM Matte: cancelled in {result.name} after {len(summary.results)} frames; their plates are "
                "complete. Nothing was imported; run RVM Matte again to make the whole range.")
            break
        result.imported = import_plates(pool, bin_for(pool, source.label), plates, first, last)
        result.matte_attached = attach_matte(resolve, pool, clip, plates["alpha"], first, last)
        say(f"RVM Matte: {result.name}: {summary.describe(settings.address)}; plates in bin {BIN_PREFIX}{source.label}"
            + ("; alpha attached as its clip matte" if result.matte_attached else ""))
    return results


def main(resolve: Any, *, fusion: Any = None, bmd: Any = None, say: Say = print) -> int:
    """The entry script's body: 0 = done, 1 = stopped with a message, 2 = cancelled."""
    if resolve is None:
        say("RVM Matte: run this from DaVinci Resolve's Workspace > Scripts menu (no Resolve object here).")
        return 1
    try:
        results = run(resolve, fusion=fusion, bmd=bmd, say=say)
    except UserError as error:
        say(str(error))
        return 2 if error.__class__.__name__ == "Cancelled" else 1
    return 2 if any(result.cancelled for result in results) else 0
