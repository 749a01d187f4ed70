"""Render the matte: the node's frame range through the bridge, in frame order.

A plain Read of an EXR sequence the bridge can reach is read by the bridge itself; anything
else is written first by the node's internal Write (``nuke.execute``, EXR half; Nuke writes the
bounding box as the data window, so overscan survives). The bridge writes premultiplied RGBA
and foreground plates; the internal Reads are pointed at them and reloaded. A sub-range starts
its recurrent state at the node's first frame (pre-rolled by the bridge, not written), so its
plates equal a render of the whole range.
"""

import ntpath
import os
import posixpath
import threading
from typing import Any, Dict, List, NoReturn, Optional, Tuple, cast

import nuke

from . import messages, node, upstream
from .bridge import load_client
from .colour import WORKING_SPACE, working_space
from .progress import Progress

_local_bridges: List[Any] = []  # bridges the "start a local bridge" button started (kept alive)


class MatteError(RuntimeError):
    """A render that could not be done, said in the artist's words (also shown on the node)."""


def fail(group: nuke.Node, text: str) -> NoReturn:
    node.show_state(group, text, stale=True)
    raise MatteError(text)


def ready_client(group: nuke.Node, action: str) -> Any:
    """The vendored client module, once the node has one and a plate to send; else fail with
    the artist's message (``action`` finishes "Connect a plate ..., then ...")."""
    client, problem = load_client()
    if client is None:
        fail(group, problem)
    if group.input(0) is None:
        fail(group, "Connect a plate to RVMMatte's input, then %s." % action)
    return client


def say(text: str) -> None:
    """A message box in the GUI, a printed line on a render node."""
    if nuke.GUI:
        nuke.message(text)
    else:
        print("RVMMatte: " + text)


def render_button() -> None:
    """The "Render matte" button: the node's whole range, or the frames in "render only frames"
    (``1005-1008``: a re-render of part of the range, pre-rolled from the node's first frame)."""
    group = nuke.thisNode()
    text = str(group["render_frames"].value()).strip()
    frames = node.parse_frames(text)
    try:
        if text and frames is None:
            fail(group, "render only frames should look like 1005-1008 (or stay empty for the whole range)")
        render_matte(group, frames)
    except MatteError as error:
        say(str(error))


def plates_folder(group: nuke.Node) -> str:
    folder = node.plates_folder(group)
    if not folder:
        fail(group, "Save the script first (plates go next to it, in rvm_matte/), or set \"plates folder\".")
    return folder


def clip_settings(group: nuke.Node) -> Dict[str, Any]:
    settings: Dict[str, Any] = {"variant": str(group["variant"].value())}
    checkpoint = str(group["checkpoint"].value()).strip()
    if checkpoint:
        settings["checkpoint"] = checkpoint
    ratio = str(group["downsample_ratio"].value()).strip().lower()
    if ratio not in ("", "auto"):
        try:
            value = float(ratio)
        except ValueError:
            value = -1.0
        if not 0.0 < value <= 1.0:
            fail(group, f"downsample ratio must be auto or a number above 0 and at most 1, not {ratio!r}")
        settings["downsample_ratio"] = value
    space = str(group["colour_space"].value())
    if space == WORKING_SPACE:
        working = working_space(nuke.root())
        if working.colour_space:
            settings["colour_space"] = working.colour_space
        if working.ocio_config:
            settings["ocio_config"] = working.ocio_config
    else:
        settings["colour_space"] = space
    return settings


def render_matte(group: nuke.Node, frames: Optional[Tuple[int, int]] = None) -> str:
    """Render ``frames`` (both ends included; default the node's range) and return the info line.
    Raises MatteError with the artist's message."""
    client = ready_client(group, "render")
    node_first, node_last = node.frame_range(group)
    if node_first > node_last:
        fail(group, "The node's first frame %d is after its last frame %d: swap them." % (node_first, node_last))
    first, last = frames or (node_first, node_last)
    if not node_first <= first <= last <= node_last:
        fail(group, "frames %d-%d are outside the node's range %d-%d" % (first, last, node_first, node_last))
    address = str(group["server"].value())
    out = os.path.join(plates_folder(group), str(group["rvm_clip_id"].value()))
    settings = clip_settings(group)
    matte_stamp = upstream.stamp(group, node.settings_items(group), node_first, node_last)
    source = upstream.plain_exr_read(group, node_first, last)
    cancel = threading.Event()
    progress: Optional[Progress] = None
    try:
        timeout = float(group["timeout"].value() or node.DEFAULT_TIMEOUT)
        with client.BridgeClient(address, timeout=timeout) as bridge:
            node.set_choices(group, bridge.describe_models())  # menus follow what this bridge offers
            if source is not None and not reaches(bridge, client, source):
                source = None  # a Read outside the bridge's roots: the node writes its input instead
        read_directly = source is not None
        writing = 0 if read_directly else last - node_first + 1  # progress: input frames, then mattes
        task = progress = Progress(f"RVMMatte {group.name()}", writing + last - first + 1)
        if source is None:
            source = write_input(group, node_first, last, os.path.join(out, "input"), task)
            if source is None:
                return _cancelled(group, "cancelled while writing the input; nothing was sent to the bridge")

        def on_frame(done: int, total: int, result: Any) -> None:
            how = result.how + (" after %d pre-rolled" % result.preroll_frames if result.preroll_frames else "")
            if task.step(writing + done, "frame %d: %s" % (result.frame, how)):
                cancel.set()

        summary = client.render_through_bridge(
            address, source, "%d-%d" % (first, last), rgba=os.path.join(out, "rgba.####.exr"),
            foreground=os.path.join(out, "fg.####.exr"), settings=settings,
            shot_start=node_first if first > node_first else None, progress=on_frame, cancel=cancel,
            timeout=timeout, name=f"Nuke RVMMatte {group.name()}")
    except client.BridgeError as error:
        fail(group, messages.explain(error, client, address, os.path.dirname(out), _roots(client, address, error)))
    finally:
        if progress is not None:
            progress.close()
    point_reads(group, out, node_first, node_last)
    made = _made_line(summary, first, last, read_directly)
    if summary.cancelled and len(summary.results) < last - first + 1:  # Cancel after the last frame: done
        return _cancelled(group, f"cancelled: {made}; complete plates kept, render again to finish")
    _record(group, matte_stamp, first, last, made)
    return made


def write_input(group: nuke.Node, first: int, last: int, folder: str, progress: Progress,
                remember: bool = True) -> Optional[str]:
    """Write the node's input for ``first``-``last`` with the internal Write (frames already
    written from this same input are kept; ``remember`` False: a scratch folder, always written
    afresh and not recorded); returns the pattern, or None when cancelled."""
    write = node.inner(group, "rvm_input")
    pattern = os.path.join(folder, "input.####.exr")
    input_stamp = upstream.stamp(group, [], first, first)
    keep = remember and str(group["input_stamp"].value()) == input_stamp
    try:
        os.makedirs(folder, exist_ok=True)
        if not keep:
            # Frames of an earlier input go before the new stamp is kept: a write cancelled or
            # failing half-way must not leave old frames that a later render takes as current.
            for name in os.listdir(folder):
                if name.startswith("input.") and name.endswith(".exr"):
                    os.remove(os.path.join(folder, name))
    except OSError as error:
        fail(group, "Cannot make the plates folder %s (%s): set \"plates folder\" to a folder this machine can "
                    "write, under one of the bridge's roots." % (folder, error.strerror or error))
    if remember and not keep:
        group["input_stamp"].setValue(input_stamp)
    write["file"].setValue(pattern.replace(os.sep, "/"))
    write["disable"].setValue(False)
    try:
        for index, frame in enumerate(range(first, last + 1)):
            if keep and os.path.exists(pattern.replace("####", "%04d" % frame)):
                continue
            if progress.step(index, "writing the input, frame %d" % frame):
                return None
            try:
                nuke.execute(write, frame, frame)
            except RuntimeError as error:  # a missing or unreadable frame upstream, a full disk...
                fail(group, "Nuke could not make frame %d of the input for the bridge: %s" % (frame, error))
    finally:
        write["disable"].setValue(True)
    return pattern


def reaches(bridge: Any, client: Any, path: str) -> bool:
    """Whether the bridge can read ``path`` itself: it maps to the server's view and lies under
    one of the roots the server said in ``hello`` (spelled as the server spells them)."""
    try:
        server_path = bridge.to_server(path)
    except client.errors.PathNotMapped:
        return False
    flavour = ntpath if bridge.server_windows else posixpath
    folder = flavour.normcase(flavour.normpath(flavour.dirname(server_path)))
    for root in bridge.server.get("roots", []):
        root = flavour.normcase(flavour.normpath(str(root)))
        if folder == root or folder.startswith(root.rstrip(flavour.sep) + flavour.sep):
            return True
    return False


def point_reads(group: nuke.Node, out: str, first: int, last: int) -> None:
    """Point the internal Reads at the plates and reload them (frame numbers are the input's)."""
    for name, plate in (("rvm_rgba", "rgba"), ("rvm_fg", "fg")):
        read = node.inner(group, name)
        read["file"].setValue(os.path.join(out, plate + ".####.exr").replace(os.sep, "/"))
        for knob, value in (("first", first), ("last", last), ("origfirst", first), ("origlast", last)):
            read[knob].setValue(value)
        cast(nuke.PyScript_Knob, read["reload"]).execute()


def _made_line(summary: Any, first: int, last: int, read_directly: bool) -> str:
    counts: Dict[str, int] = {}
    for result in summary.results:
        counts[result.how] = counts.get(result.how, 0) + 1
    exact = sum(1 for result in summary.results if result.exact)
    parts = ["%d %s" % (count, how) for how, count in sorted(counts.items())]
    line = "frames %d-%d: %d made (%s), %d exact" % (first, last, len(summary.results), ", ".join(parts) or "none",
                                                    exact)
    line += ", %d pre-rolled first" % summary.prerolled if summary.prerolled else ", no pre-roll"
    line += ", %d cold" % counts.get("cold", 0)
    return line + ("; plate files read by the bridge" if read_directly else "; input written by the node")


def _record(group: nuke.Node, stamp: str, first: int, last: int, made: str) -> None:
    """Remember what was rendered: the stamp, and the frames covered under that stamp."""
    covered = node.parse_frames(str(group["rendered_frames"].value()))
    if str(group["rendered_stamp"].value()) == stamp and covered and covered[0] <= last + 1 and first <= covered[1] + 1:
        first, last = min(first, covered[0]), max(last, covered[1])
    group["rendered_stamp"].setValue(stamp)
    group["rendered_frames"].setValue("%d-%d" % (first, last))
    group["render_summary"].setValue(made)
    refresh_state(group)


def _cancelled(group: nuke.Node, text: str) -> str:
    node.show_state(group, text, stale=True)
    return text


def _roots(client: Any, address: str, error: Exception) -> List[str]:
    if not isinstance(error, client.errors.PathOutsideRoots):
        return []
    try:
        with client.BridgeClient(address, timeout=5.0, retries=0) as bridge:
            return [str(root) for root in bridge.hello().get("roots", [])]
    except client.BridgeError:
        return []


def current_state(group: nuke.Node) -> Tuple[str, bool]:
    """(what the node says, whether its matte is stale) without touching the bridge."""
    rendered = str(group["rendered_stamp"].value())
    if not rendered:
        return "not rendered yet: press Render matte", True
    if group.input(0) is None:
        return "no input", True
    first, last = node.frame_range(group)
    if upstream.stamp(group, node.settings_items(group), first, last) != rendered:
        return "re-render needed: the input or the settings changed since the matte was made", True
    covered = node.parse_frames(str(group["rendered_frames"].value()))
    summary = str(group["render_summary"].value())
    if covered is None or covered[0] > first or covered[1] < last:
        done = "%d-%d" % covered if covered else "none"
        return "%s\nonly frames %s of %d-%d are rendered" % (summary, done, first, last), False
    return summary, False


def is_current(group: nuke.Node, first: int, last: int) -> bool:
    """True when plates of ``first``-``last`` were rendered from the input and settings as they are."""
    if group.input(0) is None or not str(group["rendered_stamp"].value()):
        return False
    node_first, node_last = node.frame_range(group)
    if upstream.stamp(group, node.settings_items(group), node_first, node_last) != group["rendered_stamp"].value():
        return False
    covered = node.parse_frames(str(group["rendered_frames"].value()))
    return covered is not None and covered[0] <= first and last <= covered[1]


def refresh_state(group: nuke.Node) -> None:
    text, stale = current_state(group)
    ratios = group.knob("ratios_summary")  # absent on a node saved before "Try ratios"
    if ratios is not None and str(ratios.value()):
        text += "\n" + str(ratios.value())
    node.show_state(group, text, stale)


def refresh_button() -> None:
    """Fill the model and colour-space menus from the bridge."""
    group = nuke.thisNode()
    client, problem = load_client()
    if client is None:
        say(problem)
        return
    address = str(group["server"].value())
    try:
        with client.BridgeClient(address, timeout=float(group["timeout"].value() or 5), retries=1) as bridge:
            node.set_choices(group, bridge.describe_models())
    except client.BridgeError as error:
        say(messages.explain(error, client, address, str(group["plates_folder"].value())))


def start_bridge_button() -> None:
    """Start a bridge on this machine with the bridge's own Python (recorded at install)."""
    group = nuke.thisNode()
    client, problem = load_client()
    python = messages.bridge_python()
    if client is None or python is None:
        say(problem or "The bridge is not installed on this machine: start one where it is installed with "
                       "rvm-bridge serve --root <folder holding your plates>")
        return
    folder = str(group["plates_folder"].value()).strip() or os.path.dirname(str(nuke.root()["name"].value()))
    if not folder:
        say("Save the script first (the bridge reads and writes next to it), or set \"plates folder\".")
        return
    try:
        os.makedirs(folder, exist_ok=True)  # a plates folder not made yet: the bridge needs its root to exist
    except OSError as error:
        say(f"The local bridge did not start: cannot make {folder} ({error.strerror or error})")
        return
    server = client.ServerProcess([folder], address=str(group["server"].value()), python=python)
    try:
        server.start()
    except client.BridgeError as error:
        say(f"The local bridge did not start: {error}")
        return
    _local_bridges.append(server)
    say(f"A bridge runs at {server.address}, reading and writing under {folder}.")


# -- Try ratios -------------------------------------------------------------------------------------------------------
def try_ratios_button() -> None:
    """The "Try ratios" button: a contact sheet of the downsample ratios on a short stretch."""
    group = nuke.thisNode()
    try:
        say(try_ratios(group))
    except MatteError as error:
        _, stale = current_state(group)  # a failed try leaves a current matte shown
        node.show_state(group, str(error), stale)
        say(str(error))


def use_suggested_button() -> None:
    """The "Use suggested ratio" button: the last "Try ratios" suggestion into "downsample ratio"."""
    group = nuke.thisNode()
    knob = group.knob("suggested_ratio")
    suggested = str(knob.value()).strip() if knob is not None else ""
    if not suggested:
        say("Press Try ratios first: it suggests a downsample ratio for this shot.")
        return
    judged = group.knob("ratios_stamp")  # absent on a node saved before it was kept
    if judged is not None and str(judged.value()) and str(judged.value()) != ratios_stamp(group):
        say("The input or model changed since Try ratios suggested %s: press Try ratios again for this "
            "input." % suggested)
        return
    group["downsample_ratio"].setValue(suggested)
    refresh_state(group)


def ratios_stamp(group: nuke.Node) -> str:
    """What a Try ratios suggestion depends on: the input graph and the model settings (not the
    ratio itself, the bridge, the plates folder or the frame range)."""
    kept = [(name, value) for name, value in node.settings_items(group)
            if name not in ("downsample_ratio", "server", "plates_folder")]
    return upstream.stamp(group, kept, 0, 0)


def ratio_stretch(group: nuke.Node, node_first: int, node_last: int) -> Tuple[int, int]:
    """The frames "Try ratios" judges: "try ratios on" frames (default 8) around the current frame,
    or from the start of the range when the current frame is outside it; clamped to the range.
    At least two (flicker needs a pair) and at most what the bridge judges (TRY_MAX_FRAMES)."""
    knob = group.knob("try_frames")
    count = int(knob.value()) if knob is not None and int(knob.value()) > 0 else node.TRY_FRAMES
    count = max(2, min(count, node.TRY_MAX_FRAMES))
    current = int(nuke.frame())
    start = current - count // 2 if node_first <= current <= node_last else node_first
    start = max(node_first, min(start, node_last - count + 1))
    return start, min(node_last, start + count - 1)


def try_ratios(group: nuke.Node) -> str:
    """Matte a short stretch at each downsample ratio through the bridge, write the contact sheet
    (``ratios.png`` in the node's plates), show it in a Read beside the node and remember the
    suggestion. Returns what to tell the artist; raises MatteError in the artist's words."""
    client = ready_client(group, "try ratios")
    node_first, node_last = node.frame_range(group)
    first, last = ratio_stretch(group, node_first, node_last)
    if last <= first:
        fail(group, "Try ratios needs at least two frames: the node's range %d-%d is too short." % (node_first,
                                                                                                   node_last))
    address = str(group["server"].value())
    out = os.path.join(plates_folder(group), str(group["rvm_clip_id"].value()))
    sheet = os.path.join(out, "ratios.png")
    settings = clip_settings(group)
    settings.pop("downsample_ratio", None)  # the very thing being tried
    source = upstream.plain_exr_read(group, first, last)
    progress: Optional[Progress] = None
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as error:
        fail(group, "Cannot make the plates folder %s (%s): set \"plates folder\" to a folder this machine can "
                    "write, under one of the bridge's roots." % (out, error.strerror or error))
    try:
        timeout = float(group["timeout"].value() or node.DEFAULT_TIMEOUT)
        with client.BridgeClient(address, timeout=timeout) as bridge:
            if source is not None and not reaches(bridge, client, source):
                source = None
        writing = 0 if source is not None else last - first + 1
        task = progress = Progress(f"RVMMatte {group.name()}: trying ratios", writing + 1)
        if source is None:
            source = write_input(group, first, last, os.path.join(out, "ratios_input"), task, remember=False)
            if source is None:
                return _cancelled(group, "try ratios cancelled while writing the input; nothing was sent")
        task.step(writing, "trying ratios on frames %d-%d (one request to the bridge: Cancel cannot stop it "
                           "now, it ends when the sheet is written)" % (first, last))
        with client.BridgeClient(address, timeout=timeout) as bridge:
            reply = bridge.try_ratios(source, "%d-%d" % (first, last), sheet=sheet, settings=settings,
                                      timeout=timeout)
    except client.ServerBusy as error:  # the bridge tries one stretch at a time (asked again for "timeout")
        fail(group, "The bridge at %s is still trying ratios for another node (%s). Press Try ratios again when it "
                    "is done." % (address, error.message))
    except client.BridgeError as error:
        fail(group, messages.explain(error, client, address, os.path.dirname(out), _roots(client, address, error)))
    finally:
        if progress is not None:
            progress.close()
    print(str(reply.get("table", "")))
    suggested = "%g" % float(reply["suggested"])
    read = show_sheet(group, str(reply.get("sheet") or sheet))
    line = "try ratios (frames %d-%d): suggested %s, %s" % (first, last, suggested, reply.get("reason", ""))
    group["suggested_ratio"].setValue(suggested)
    group["ratios_summary"].setValue(line)
    if group.knob("ratios_stamp") is not None:
        group["ratios_stamp"].setValue(ratios_stamp(group))
    refresh_state(group)
    return "%s\nThe contact sheet is in %s. Press \"Use suggested ratio\" to set it." % (line, read.name())


def show_sheet(group: nuke.Node, sheet: str) -> nuke.Node:
    """The Read beside ``group`` showing the contact sheet: made once, pointed and reloaded after."""
    path = group.fullName().rpartition(".")[0]  # a button runs in the group's own context: go by full name
    with nuke.root():
        parent = cast(nuke.Group, (nuke.toNode(path) if path else None) or nuke.root())
    stem, number, file = group.name() + "_ratios", 1, sheet.replace(os.sep, "/")
    with parent:
        name = stem
        read = nuke.toNode(name)
        # A node of that name showing anything but this sheet is the artist's: never repointed.
        while read is not None and not (read.Class() == "Read" and str(read["file"].value()) == file):
            number += 1
            name = "%s%d" % (stem, number)
            read = nuke.toNode(name)
        if read is None:
            read = nuke.nodes.Read(name=name)
            read["xpos"].setValue(int(group["xpos"].value()) + 150)
            read["ypos"].setValue(int(group["ypos"].value()))
    read["file"].setValue(file)
    for knob in ("first", "last", "origfirst", "origlast"):
        read[knob].setValue(1)
    cast(nuke.PyScript_Knob, read["reload"]).execute()
    return read
