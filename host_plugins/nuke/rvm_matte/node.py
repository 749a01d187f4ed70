"""The RVMMatte node: a Group built in Python, its knobs and its internal graph.

Inside: ``plate`` (Input) -> ``rvm_input`` (a disabled Write, executed only to hand the bridge a
plate it cannot read itself); ``rvm_rgba`` and ``rvm_fg`` (Reads of the plates the bridge
wrote, raw: they are in the working space already) -> one branch per output mode ->
``rvm_output`` (Switch) -> Output. The Switch's last input is ``rvm_stale`` (transparent black):
a matte that no longer belongs to its input is not shown as current.
"""

import os
import uuid
from typing import Any, Dict, List, Optional, Sequence, Tuple, cast

import nuke

from . import MARKER
from .colour import WORKING_SPACE

OUTPUT_MODES = ("premultiplied RGBA", "alpha only", "foreground (unpremultiplied)", "green-screen check")
STALE_INPUT = len(OUTPUT_MODES)
DEFAULT_TIMEOUT = 30
HIDDEN_KNOBS = ("rvm_clip_id", "rendered_stamp", "rendered_frames", "input_stamp", "render_summary", "suggested_ratio",
                "ratios_summary", "ratios_stamp")
TRY_FRAMES = 8  # "try ratios on": frames around the current frame
TRY_MAX_FRAMES = 100  # the most the bridge judges (TRY_RATIOS_MAX_FRAMES): more is held to it
SETTINGS_KNOBS = ("server", "variant", "checkpoint", "downsample_ratio", "colour_space", "plates_folder")


def is_rvm_matte(node: Any) -> bool:
    return node is not None and node.knob(MARKER) is not None


def _choices(client: Any, name: str) -> List[str]:
    """A parameter's choices from the client's table (the one the server describes)."""
    for parameter in client.CLIP_PARAMETERS if client is not None else ():
        if parameter.name == name:
            return list(parameter.choices)
    return []


def create(client: Any = None) -> nuke.Node:
    """Make an RVMMatte under the selected node (the toolbar and Tab menu call this)."""
    group = cast(nuke.Group, nuke.createNode("Group", inpanel=False))
    group.setName("RVMMatte1")
    build(group, client)
    return group


def build(group: nuke.Group, client: Any = None) -> None:
    """Add RVMMatte's knobs and internal graph to an empty Group. Nuke 17.1 fires knobChanged
    for each knob set here: the callbacks wait (guard) until the graph is complete."""
    from .callbacks import guard

    with guard(group):
        _build(group, client)
    show_state(group, "not rendered yet", stale=True)


def _build(group: nuke.Group, client: Any) -> None:
    address = client.DEFAULT_ADDRESS if client is not None else "tcp://127.0.0.1:5701"
    variants = _choices(client, "variant") or ["mobilenetv3"]
    knobs: List[nuke.Knob] = [
        nuke.Tab_Knob(MARKER, "RVMMatte"),
        nuke.String_Knob("server", "bridge"),
        nuke.Enumeration_Knob("variant", "model", variants),
        nuke.File_Knob("checkpoint", "checkpoint"),
        nuke.String_Knob("downsample_ratio", "downsample ratio"),
        nuke.Enumeration_Knob("colour_space", "input colour space", [WORKING_SPACE]),
        nuke.Enumeration_Knob("output", "output", list(OUTPUT_MODES)),
        nuke.Boolean_Knob("use_input_range", "input's frame range"),
        nuke.Int_Knob("first", "first"),
        nuke.Int_Knob("last", "last"),
        nuke.File_Knob("plates_folder", "plates folder"),
        nuke.Int_Knob("timeout", "time-out (s)"),
        nuke.String_Knob("render_frames", "render only frames"),
        nuke.PyScript_Knob("render", "Render matte", "import rvm_matte.render; rvm_matte.render.render_button()"),
        nuke.PyScript_Knob("refresh", "Refresh from bridge",
                           "import rvm_matte.render; rvm_matte.render.refresh_button()"),
        nuke.PyScript_Knob("start_bridge", "Start a local bridge",
                           "import rvm_matte.render; rvm_matte.render.start_bridge_button()"),
        nuke.Int_Knob("try_frames", "try ratios on (frames)"),
        nuke.PyScript_Knob("try_ratios", "Try ratios", "import rvm_matte.render; rvm_matte.render.try_ratios_button()"),
        nuke.PyScript_Knob("use_suggested", "Use suggested ratio",
                           "import rvm_matte.render; rvm_matte.render.use_suggested_button()"),
        nuke.Text_Knob("info", "", "not rendered yet"),
        nuke.String_Knob("rvm_clip_id", "clip"),
        nuke.String_Knob("rendered_stamp", ""),
        nuke.String_Knob("rendered_frames", ""),
        nuke.String_Knob("input_stamp", ""),
        nuke.String_Knob("render_summary", ""),
        nuke.String_Knob("suggested_ratio", ""),
        nuke.String_Knob("ratios_summary", ""),
        nuke.String_Knob("ratios_stamp", ""),  # the input and model the suggestion was judged on
    ]
    for knob in knobs:
        group.addKnob(knob)
    for name in HIDDEN_KNOBS:
        group[name].setFlag(nuke.INVISIBLE)
    group["server"].setValue(address)
    group["downsample_ratio"].setValue("auto")
    group["use_input_range"].setValue(True)
    group["timeout"].setValue(DEFAULT_TIMEOUT)
    group["try_frames"].setValue(TRY_FRAMES)
    group["rvm_clip_id"].setValue(new_clip_id())
    group.begin()
    try:
        _internal_graph()
    finally:
        group.end()


def _internal_graph() -> None:
    plate = nuke.nodes.Input(name="plate")
    write = nuke.nodes.Write(name="rvm_input", channels="rgb", raw=True, disable=True)
    write["file_type"].setValue("exr")
    write["datatype"].setValue("16 bit half")  # an exr knob: it exists once file_type is exr
    write.setInput(0, plate)
    rgba = nuke.nodes.Read(name="rvm_rgba", raw=True)
    foreground = nuke.nodes.Read(name="rvm_fg", raw=True)
    alpha = nuke.nodes.Copy(name="rvm_alpha_only", from0="rgba.alpha", to0="rgba.red", from1="rgba.alpha",
                            to1="rgba.green", from2="rgba.alpha", to2="rgba.blue")
    alpha.setInput(0, rgba)
    alpha.setInput(1, rgba)
    straight = nuke.nodes.Copy(name="rvm_fg_alpha", from0="rgba.alpha", to0="rgba.alpha")
    straight.setInput(0, foreground)
    straight.setInput(1, rgba)
    green = nuke.nodes.Constant(name="rvm_green")
    green["color"].setValue([0.0, 1.0, 0.0, 1.0])
    check = nuke.nodes.Merge2(name="rvm_check", operation="over")
    check.setInput(0, green)
    check.setInput(1, rgba)
    stale = nuke.nodes.Constant(name="rvm_stale")
    stale["color"].setValue([0.0, 0.0, 0.0, 0.0])
    switch = nuke.nodes.Switch(name="rvm_output")
    for index, branch in enumerate((rgba, alpha, straight, check, stale)):
        switch.setInput(index, branch)
    output = nuke.nodes.Output(name="Output1")
    output.setInput(0, switch)


def new_clip_id() -> str:
    return uuid.uuid4().hex[:16]


def inner(group: nuke.Node, name: str) -> nuke.Node:
    """An internal node by name (raises LookupError when the group was edited by hand)."""
    inside = cast(nuke.Group, group)
    inside.begin()
    try:
        found = nuke.toNode(name)
    finally:
        inside.end()
    if found is None:
        raise LookupError(f"RVMMatte {group.name()} lost its internal node {name}: make a new RVMMatte")
    return found


def frame_range(group: nuke.Node) -> Tuple[int, int]:
    """The node's frame range, both ends included: its input's, or the first/last knobs."""
    source = group.input(0)
    if group["use_input_range"].value() and source is not None:
        return int(source.firstFrame()), int(source.lastFrame())
    return int(group["first"].value()), int(group["last"].value())


def settings_items(group: nuke.Node) -> List[Tuple[str, str]]:
    """The settings a matte depends on, the script's working space included (a change of the
    Project Settings' colour management makes the matte stale too)."""
    from .colour import working_space

    items = [(name, str(group[name].value())) for name in SETTINGS_KNOBS if name != "plates_folder"]
    items.append(("plates_folder", plates_folder(group)))  # where plates go now (next to the saved script)
    return items + [("working_space", repr(tuple(working_space(nuke.root())[:2])))]


def plates_folder(group: nuke.Node) -> str:
    """The plates folder: the knob's, else ``rvm_matte/`` next to the saved script ("" unsaved)."""
    folder = str(group["plates_folder"].value()).strip()
    if folder:
        return folder
    script = str(nuke.root()["name"].value())
    return os.path.join(os.path.dirname(script), "rvm_matte") if script else ""


def show_state(group: nuke.Node, text: str, stale: bool) -> None:
    """Say ``text`` in the node's info and label, and show the matte or, when stale, nothing."""
    if group["info"].value() != text:
        group["info"].setValue(text)
    label = (text.splitlines()[0] if text else "").replace("[", "(").replace("]", ")")  # labels run TCL in [ ]
    if group["label"].value() != label:
        group["label"].setValue(label)
    which = STALE_INPUT if stale else OUTPUT_MODES.index(str(group["output"].value()))
    switch = inner(group, "rvm_output")
    if int(switch["which"].value()) != which:
        switch["which"].setValue(which)


def set_choices(group: nuke.Node, described: Dict[str, Any]) -> None:
    """Fill the model and colour-space menus from what the server describes (``describe_models``)."""
    for parameter in described.get("parameters", []):
        if parameter.get("name") == "variant" and parameter.get("choices"):
            _set_values(group["variant"], [str(choice) for choice in parameter["choices"]])
    spaces = [str(space) for space in described.get("colour_spaces", [])]
    _set_values(group["colour_space"], [WORKING_SPACE] + spaces)


def _set_values(knob: Any, values: Sequence[str]) -> None:
    current = str(knob.value())
    if list(knob.values()) != list(values):
        knob.setValues(list(values))
        knob.setValue(current if current in values else values[0])


def parse_frames(text: str) -> Optional[Tuple[int, int]]:
    """``"1005-1008"`` or ``"1005"`` -> (first, last); None for an empty or unreadable range."""
    text = text.strip()
    if not text:
        return None
    head, _, tail = text.partition("-") if not text.startswith("-") else (text, "", "")
    try:
        first = int(head)
        last = int(tail) if tail else first
    except ValueError:
        return None
    return (first, last) if first <= last else None
