"""Comp > RVM Matte: matte the selected Loader or MediaIn through the bridge and wire the plates.

1. The selected tool's frames: a Loader's own file sequence (its Clip, InitialFrame and trims),
   or a MediaIn's clip reached through Resolve (the timeline's current video item, its Media
   Pool item's ``File Path``), since a MediaIn exposes no path of its own.
2. The artist's settings (``dialog``): server, model, downsample ratio, colour space, frames.
3. A sequence on disk is read by the bridge itself; anything else (a movie, a still) is first
   rendered to EXRs by a temporary Saver.
4. The bridge makes the plates in frame order, with progress and a Cancel (``progress``).
5. Loaders and a MatteControl show the keyed result (``wiring``). Steps 3 to 5 are one undo step,
   and a second run on the same tool updates the same tools.

Comp > RVM Try Ratios (``try_ratios``): the selected Loader's sequence, a short stretch matted at
each downsample ratio by the bridge, which writes a contact sheet; one Loader shows it and the
table and the suggested ratio are printed.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from . import bootstrap, bridge_calls, dialog, progress, sources, wiring
from .edition import Edition, edition_of, python_warning
from .messages import EditionCannot, NotAFile, UserError, explain, nothing_selected

if TYPE_CHECKING:
    from fusionscript import Resolve

    from .fusion_api import Bmd, Comp, Fusion, Tool

MATTED_TOOLS = ("Loader", "MediaIn")
_PATH_MAP = re.compile(r"^[A-Za-z][A-Za-z0-9_]+:")  # Fusion path maps (Comp:, Footage:), not drive letters
# A Loader with any of these on shows its files out of order or held: matted through the Saver.
LOADER_PLAY_MODES = ("Reverse", "Loop", "HoldFirstFrame", "HoldLastFrame")
Say = Callable[[str], None]


@dataclass
class CompResult:
    """What a run did: the tools wired (by role), the plates (patterns), frames and whether it
    was cancelled (then no tool was changed and every plate on disk is complete)."""

    tools: Dict[str, Any] = field(default_factory=dict)
    plates: Dict[str, str] = field(default_factory=dict)
    first: int = 0
    last: int = 0
    cancelled: bool = False
    summary: Any = None


def selected_tool(comp: Comp) -> Tool:
    """The active tool when it is a Loader or MediaIn, else the one such tool selected."""
    active = comp.ActiveTool
    if active is not None and active.GetAttrs().get("TOOLS_RegID") in MATTED_TOOLS:
        return active
    picked = [tool for _, tool in sorted(comp.GetToolList(True).items())
              if tool.GetAttrs().get("TOOLS_RegID") in MATTED_TOOLS]
    if not picked:
        raise nothing_selected("comp")
    if len(picked) > 1:
        names = ", ".join(str(tool.GetAttrs().get("TOOLS_Name")) for tool in picked)
        raise UserError(f"RVM Matte: {len(picked)} Loaders/MediaIns are selected ({names}); select one.")
    return picked[0]


def mapped_clip(comp: Comp, attrs: Dict[str, Any]) -> Dict[str, Any]:
    """A Loader's attributes with its clip's Fusion path map expanded (``Comp:footage/plate.1001.exr``
    is relative to the comp's file; ``Composition:MapPath``)."""
    name = str(sources.per_clip(attrs.get("TOOLST_Clip_Name"), "") or "")
    if not _PATH_MAP.match(name):
        return attrs
    return dict(attrs, TOOLST_Clip_Name={1.0: str(comp.MapPath(name))})


def detect_edition(fusion: Fusion, resolve: Optional[Resolve]) -> Edition:
    if resolve is not None:
        return edition_of(resolve.GetProductName(), resolve.GetVersion())
    return edition_of("Fusion Studio", fusion.GetVersion())


def media_in_source(resolve: Optional[Resolve], edition: Edition, tool_name: str) -> sources.Source:
    """The file behind a MediaIn: Resolve's current video item's Media Pool clip, the frames the
    timeline uses (GetSourceStartFrame from 19.0, GetLeftOffset before)."""
    if resolve is None:
        raise NotAFile(f"RVM Matte: {tool_name} is a MediaIn, which only Resolve can trace to a file.")
    timeline = resolve.GetProjectManager().GetCurrentProject().GetCurrentTimeline()
    item = timeline.GetCurrentVideoItem() if timeline else None
    pool_item = item.GetMediaPoolItem() if item else None
    if item is None or pool_item is None:
        raise NotAFile(f"RVM Matte: {tool_name} has no Media Pool clip behind it (a generator, title or "
                       "compound clip); matte the media it was made from instead.")
    source = sources.resolve_file_path(str(pool_item.GetClipProperty("File Path") or ""), pool_item.GetName())
    start = item.GetSourceStartFrame() if edition.source_start_frame else item.GetLeftOffset(False)
    return sources.used_range(source, int(start), int(item.GetDuration(False)), 0)


def run(fusion: Fusion, comp: Comp, *, bmd: Optional[Bmd] = None, resolve: Optional[Resolve] = None, say: Say = print,
        client: Optional[ModuleType] = None) -> CompResult:
    """One run of Comp > RVM Matte. Raises UserError (and the client's BridgeError) with the
    artist's message; ``main`` prints them."""
    edition = detect_edition(fusion, resolve)
    if not edition.supported:
        raise EditionCannot("RVM Matte: " + " ".join(line.strip() for line in edition.describe()))
    say("RVM Matte on " + " ".join(line.strip() for line in edition.describe()))
    warning = python_warning(edition, (sys.version_info[0], sys.version_info[1]), os.name)
    if warning:
        say(warning)
    tool = selected_tool(comp)
    attrs = tool.GetAttrs()
    name = str(attrs.get("TOOLS_Name"))
    comp_attrs = comp.GetAttrs()
    if attrs.get("TOOLS_RegID") == "Loader":
        source = sources.loader_source(mapped_clip(comp, attrs))
        comp_start = int(tool.GetInput("GlobalIn") or 0)
        comp_end = int(tool.GetInput("GlobalOut") or comp_start)
        if source.kind == "sequence" and any(tool.GetInput(mode) for mode in LOADER_PLAY_MODES):
            # Its files do not play in order in the comp: render what the comp shows instead.
            source = sources.Source(source.pattern, comp_start, comp_end, "played")
    else:
        source = media_in_source(resolve, edition, name)
        comp_start = int(comp_attrs.get("COMPN_RenderStart", 0))
        comp_end = int(comp_attrs.get("COMPN_RenderEnd", comp_start))
    if source.kind != "sequence":  # rendered by a Saver: frames are comp frames
        source = sources.Source(source.pattern, comp_start, comp_end, source.kind)
    unit = client or bootstrap.client_unit()
    probe_timeout, hello_timeout = bridge_calls.timeouts()
    folder = os.path.dirname(sources.output_patterns(source)["alpha"])
    defaults = dialog.MatteSettings(address=dialog.default_address(), frames=source.frames, output_folder=folder)
    description = bridge_calls.describe(unit, defaults.address, probe_timeout)
    ui = getattr(fusion, "UIManager", None) if edition.ui_manager else None
    settings = dialog.ask(defaults, dialog.choices_from(description, unit.CLIP_PARAMETERS), fusion=fusion, comp=comp,
                          bmd=bmd, ui_manager=edition.ui_manager, say=say)
    first, last = sources.parse_frames(settings.frames, source)
    if source.kind == "sequence" and (first < source.first or last > source.last):
        raise UserError(f"RVM Matte: frames {first}-{last} are outside the clip's {source.frames}.")
    try:
        hello = bridge_calls.hello(unit, settings.address, hello_timeout)
    except unit.BridgeError as error:
        raise UserError(explain(error, settings.address)) from error
    roots = [str(root) for root in hello.get("roots", [])]
    plates = sources.output_patterns(source, settings.output_folder)
    result = CompResult(plates=plates, first=first, last=last)
    with wiring.one_undo(comp):
        read_from = source.pattern if source.kind == "sequence" else \
            render_with_saver(comp, tool, source, first, last, settings.output_folder)
        try:
            summary = progress.run(
                lambda report, cancel: bridge_calls.render(unit, settings, read_from, first, last, plates, report,
                                                           cancel),
                ui=ui, bmd=bmd, say=say, folder=settings.output_folder)
        except unit.BridgeError as error:
            raise UserError(explain(error, settings.address, roots)) from error
        result.summary = summary
        if summary.cancelled:
            result.cancelled = True
            say(f"RVM Matte: cancelled after {len(summary.results)} frames; their plates are complete. The comp "
                "was not changed; run RVM Matte again to make the whole range.")
            return result
        global_in = comp_start + (first - source.first)
        first_plates = {role: sources.frame_path(pattern, first) for role, pattern in plates.items()}
        result.tools = wiring.wire(comp, name, first_plates, global_in, last - first + 1)
    say(f"RVM Matte: {summary.describe(settings.address)}; wired {', '.join(wiring.tool_names(name).values())}")
    return result


def render_with_saver(comp: Comp, tool: Tool, source: sources.Source, first: int, last: int, folder: str) -> str:
    """Render comp frames ``first``..``last`` of ``tool`` to EXRs with a temporary Saver (for a
    clip the bridge cannot read itself); returns their ``%04d`` pattern. Call inside one_undo."""
    where = os.path.join(folder, "source")
    try:
        os.makedirs(where, exist_ok=True)
    except OSError as error:
        raise UserError(f"RVM Matte: cannot make the folder {where} for the frames Fusion renders for the bridge "
                        f"({error.strerror or error}); choose a plates folder you can write to.") from error
    pattern = os.path.join(where, f"{source.label}_src.%04d.exr")
    saver = comp.AddTool("Saver", -32768, -32768)
    try:
        saver.ConnectInput("Input", tool)
        saver.SetInput("Clip", sources.frame_path(pattern, 0))  # the number's digits set the padding
        saver.SetInput("OutputFormat", "OpenEXRFormat")
        if not comp.Render({"Start": first, "End": last, "Tool": saver, "Wait": True}):
            raise UserError(f"RVM Matte: Fusion could not render {source.pattern} to EXRs for the bridge (see the "
                            "console); render it to an EXR sequence and load that instead.")
    finally:
        saver.Delete()
    return pattern


TRY_FRAMES = 8  # the stretch Try Ratios judges: frames from the comp's current frame


@dataclass
class RatiosResult:
    """What Try Ratios did: the bridge's reply (rows, suggested, reason, table, sheet) and the Loader."""

    reply: Dict[str, Any]
    loader: Any
    first: int
    last: int


def ratios_loader_name(source_name: str) -> str:
    return f"RVM_{source_name}_Ratios"


def try_ratios(fusion: Fusion, comp: Comp, *, resolve: Optional[Resolve] = None, say: Say = print,
               client: Optional[ModuleType] = None, count: int = TRY_FRAMES) -> RatiosResult:
    """Comp > RVM Try Ratios: ``count`` frames of the selected Loader's sequence from the comp's
    current frame (clamped to the clip) matted at each downsample ratio by the bridge, which reads
    the files and writes ``<label>_ratios.png`` in the plates folder; one Loader (made once, then
    updated) shows the sheet, in one undo step. Raises UserError with the artist's message."""
    edition = detect_edition(fusion, resolve)
    if not edition.supported:
        raise EditionCannot("RVM Try Ratios: " + " ".join(line.strip() for line in edition.describe()))
    tool = selected_tool(comp)
    attrs = tool.GetAttrs()
    name = str(attrs.get("TOOLS_Name"))
    source = sources.loader_source(mapped_clip(comp, attrs)) if attrs.get("TOOLS_RegID") == "Loader" else None
    if source is None or source.kind != "sequence":
        raise UserError(f"RVM Try Ratios: {name} is not a Loader of an image sequence; the bridge reads the files "
                        "itself, so render it to an EXR sequence (or run RVM Matte, which does) and try that.")
    if source.last <= source.first:
        raise UserError(f"RVM Try Ratios: {name} has one frame; ratios are judged on a stretch of at least two.")
    offset = int(comp.CurrentTime) - int(tool.GetInput("GlobalIn") or 0)
    first = source.first + offset if 0 <= offset <= source.last - source.first else source.first
    first = max(source.first, min(first, source.last - max(2, count) + 1))
    last = min(source.last, first + max(2, count) - 1)
    unit = client or bootstrap.client_unit()
    address = dialog.default_address()
    sheet = os.path.join(os.path.dirname(sources.output_patterns(source)["alpha"]), f"{source.label}_ratios.png")
    _, hello_timeout = bridge_calls.timeouts()
    settings = dialog.MatteSettings().clip_settings()
    settings.pop("downsample_ratio", None)  # the very thing being tried
    try:
        os.makedirs(os.path.dirname(sheet), exist_ok=True)
    except OSError as error:
        raise UserError(f"RVM Try Ratios: cannot make the folder {os.path.dirname(sheet)} for the contact sheet "
                        f"({error.strerror or error}).") from error
    say(f"RVM Try Ratios: frames {first}-{last} of {source.pattern} at each ratio (one request; it cannot be "
        "cancelled once sent)")
    try:
        roots = [str(root) for root in bridge_calls.hello(unit, address, hello_timeout).get("roots", [])]
    except unit.BridgeError as error:
        raise UserError(explain(error, address).replace("RVM Matte", "RVM Try Ratios", 1)) from error
    try:
        with unit.BridgeClient(address, timeout=bridge_calls.RATIOS_TIMEOUT, name="resolve RVM Try Ratios") as bridge:
            reply = dict(bridge.try_ratios(source.pattern, f"{first}-{last}", sheet=sheet,
                                           settings=settings))
    except unit.BridgeError as error:
        if getattr(error, "code", "") == "busy":  # the bridge tries one stretch at a time (asked again meanwhile)
            raise UserError(f"RVM Try Ratios: the bridge at {address} is still trying ratios for another clip "
                            f"({error.message}). Run RVM Try Ratios again when it is done.") from error
        raise UserError(explain(error, address, roots).replace("RVM Matte", "RVM Try Ratios", 1)) from error
    with wiring.one_undo(comp, "RVM Try Ratios"):
        loader = wiring.loader(comp, ratios_loader_name(name), str(reply.get("sheet") or sheet))
    say(str(reply.get("table", "")).rstrip())
    say(f"RVM Try Ratios: suggested downsample ratio {float(reply['suggested']):g}: {reply.get('reason', '')}; "
        f"the contact sheet is in {loader.GetAttrs().get('TOOLS_Name')}. Use it as RVM Matte's downsample ratio.")
    return RatiosResult(reply, loader, first, last)


def main(fusion: Fusion, comp: Optional[Comp], *, bmd: Optional[Bmd] = None, resolve: Any = None,
         say: Say = print, script: str = "comp") -> int:
    """The entry script's body: run (``script`` "try_ratios": Try Ratios), and say any stop in
    the artist's words. 0 = done, 1 = stopped with a message, 2 = cancelled."""
    if comp is None:
        say("RVM Matte: open a comp on the Fusion page first.")
        return 1
    try:
        if script == "try_ratios":
            try_ratios(fusion, comp, resolve=resolve, say=say)
            return 0
        result = run(fusion, comp, bmd=bmd, resolve=resolve, say=say)
    except UserError as error:
        say(str(error))
        return 2 if error.__class__.__name__ == "Cancelled" else 1
    return 2 if result.cancelled else 0
