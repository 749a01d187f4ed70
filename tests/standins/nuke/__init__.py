"""A stateful stand-in for the parts of Foundry's ``nuke`` module that RVMMatte uses.

Behaviour imitated, part by part, and where Foundry documents it (Python API reference,
https://learn.foundry.com/nuke/developers/<version>/pythondevguide/ , "_autosummary/nuke.X.html"):

- Knobs (``nuke.Knob`` and the ``*_Knob`` classes): ``value``/``setValue``/``toScript``/
  ``setFlag``; ``Enumeration_Knob.values``/``setValues``; ``PyScript_Knob.execute`` runs its
  command with ``nuke.thisNode()`` set. ``node['missing']`` raises NameError, ``node.knob('missing')``
  returns None (nuke.Node.__getitem__, nuke.Node.knob).
- knobChanged: fired for changes an artist makes (``artist_sets``), and - from Nuke 17.1, as
  its release notes say - for changes made from Python too (``configure(version=(17, 1))``).
- Nodes, Groups and the Root: ``nuke.nodes.Class(**knobs)``, ``nuke.createNode``, ``setInput``,
  ``input``, ``inputs``, ``Group.begin/end`` and ``with group:``, ``nuke.toNode`` and
  ``nuke.allNodes`` in the current group context, names made unique (nuke.Node.setName).
  An Input node inside a Group outputs the Group's input of its number (Group node docs).
- Read: reads real EXR files through OpenImageIO; the format is the file's display window and the
  bounding box its data window; decoded frames are cached until the ``file`` knob changes or the
  ``reload`` button is pressed (Read node reference: "reload").
- Write and ``nuke.execute(node, first, last)``: writes real EXR files, half float when
  ``datatype`` is "16 bit half", with the node's bounding box as the data window and the format
  as the display window (Nuke writes the bbox, not clipped to the format: Write node reference,
  "EXR data window"); a disabled Write or a missing folder is a RuntimeError; before-render
  callbacks for the Write's class run first (nuke.execute, nuke.addBeforeRender).
- Grade (``multiply``), Dot, Switch (``which``) and Group/Input/Output compute pixels; other
  classes (Copy, Merge2, Constant) keep knobs and inputs but refuse to compute pixels.
- ``nuke.ProgressTask``: ``(name)`` before 17.1, ``(name, maximum, flags)`` with ``k*`` flags
  from 17.1 (pybind11); ``isCancelled`` turns True after ``state.cancel_after`` progress steps.
- Callbacks registry (nuke.callbacks: addOnCreate, addKnobChanged, addUpdateUI, addBeforeRender)
  keyed by node class; onCreate runs for nodes created from Python, loaded or pasted.
- ``nuke.frame()`` / ``nuke.frame(f)``: the current frame (nuke.frame).
- ``nuke.GUI`` (configure(gui=...)); ``nuke.message`` records the text (a dialog in Nuke).
- Scripts: ``scriptSave``/``scriptClear``/``scriptOpen`` and ``nodeCopy``/``nodePaste`` keep
  every knob value and connection (a JSON file here, a .nk script in Nuke).
Pixel coordinates stay the EXR's (y down): Nuke flips y on read and back on write, so a round
trip through Nuke changes nothing the stand-in would need to imitate.
"""

import json
import os
import re
import sys
from typing import Any, Dict, List, Optional

import numpy as np

NUKE_VERSION_MAJOR = 15
NUKE_VERSION_MINOR = 1
NUKE_VERSION_STRING = "15.1v1"
GUI = False
INVISIBLE = 0x400


class _State:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.programmatic_knob_changed = False
        self.cancel_after: Optional[int] = None
        self.progress_steps = 0
        self.tasks: List[_TaskBase] = []
        self.messages: List[str] = []
        self.callbacks: Dict[str, Dict[str, list]] = {}
        self.this_node: List[Any] = []
        self.this_knob: List[Any] = []
        self.executed: List[tuple] = []
        self.clipboard = ""
        self.frame = 1
        self.menus: Dict[str, Menu] = {}


state = _State()


def configure(version=(15, 1), gui=False) -> None:
    """Pretend to be Nuke ``version`` (major, minor), with or without a GUI; start a new session."""
    global NUKE_VERSION_MAJOR, NUKE_VERSION_MINOR, NUKE_VERSION_STRING, GUI, ProgressTask
    NUKE_VERSION_MAJOR, NUKE_VERSION_MINOR = version
    NUKE_VERSION_STRING = "%d.%dv1" % version
    GUI = gui
    state.reset()
    state.programmatic_knob_changed = tuple(version) >= (17, 1)
    ProgressTask = _ProgressTask171 if tuple(version) >= (17, 1) else _ProgressTask  # type: ignore[misc]
    scriptClear()


# -- knobs ------------------------------------------------------------------------------
class Knob:
    default: Any = ""

    def __init__(self, name, label=None, *args) -> None:
        self._name = name
        self._label = label if label is not None else name
        self._value = self.default
        self._flags = 0
        self._node = None
        self._args = list(args)

    def name(self):
        return self._name

    def label(self):
        return self._label

    def setLabel(self, label):
        self._label = label

    def node(self):
        return self._node

    def value(self):
        return self._value

    def getValue(self):
        return self._value

    def _coerce(self, value):
        return value

    def setValue(self, value, *rest):
        self._value = self._coerce(value)
        if state.programmatic_knob_changed:
            _knob_changed(self)
        return True

    def toScript(self, quote=False, context=None):
        return json.dumps(self._value)

    def setFlag(self, flag):
        self._flags |= flag

    def clearFlag(self, flag):
        self._flags &= ~flag

    def getFlag(self, flag):
        return bool(self._flags & flag)

    def setEnabled(self, enabled):
        pass

    def setVisible(self, visible):
        if visible:
            self.clearFlag(INVISIBLE)
        else:
            self.setFlag(INVISIBLE)


class String_Knob(Knob):
    def __init__(self, name, label=None, value="") -> None:
        super().__init__(name, label)
        self._value = str(value)

    def _coerce(self, value):
        return str(value)


class File_Knob(String_Knob):
    pass


class EvalString_Knob(String_Knob):
    pass


class Multiline_Eval_String_Knob(String_Knob):
    pass


class Text_Knob(String_Knob):
    pass


class Tab_Knob(Knob):
    pass


class Int_Knob(Knob):
    default = 0

    def _coerce(self, value):
        return int(value)


class Double_Knob(Knob):
    default = 0.0

    def _coerce(self, value):
        return float(value)


class Boolean_Knob(Knob):
    default = False

    def _coerce(self, value):
        return bool(value)


class AColor_Knob(Knob):
    def __init__(self, name, label=None) -> None:
        super().__init__(name, label)
        self._value = [0.0, 0.0, 0.0, 0.0]

    def _coerce(self, value):
        return [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)] * 4


class Enumeration_Knob(Knob):
    def __init__(self, name, label=None, values=()) -> None:
        super().__init__(name, label)
        self._values = [str(v) for v in values]
        self._value = self._values[0] if self._values else ""

    def values(self):
        return list(self._values)

    def setValues(self, values):
        self._values = [str(v) for v in values]

    def _coerce(self, value):
        if isinstance(value, int) and not isinstance(value, bool):
            return self._values[value]
        if str(value) not in self._values:
            raise ValueError(f"Bad value for {self._name} : {value}")  # what Nuke raises
        return str(value)


class PyScript_Knob(Knob):
    def __init__(self, name, label=None, command="") -> None:
        super().__init__(name, label)
        self._value = command

    def execute(self):
        state.this_node.append(self._node)
        try:
            if callable(self._value):
                self._value()
            else:
                exec(self._value, {"nuke": sys.modules[__name__]})
        finally:
            state.this_node.pop()


def _knob_changed(knob) -> None:
    if knob._node is not None:
        _fire("knobChanged", knob._node, knob)


def artist_sets(knob, value) -> None:
    """An artist changes ``knob`` in the panel: knobChanged fires in every Nuke version."""
    knob._value = knob._coerce(value)
    _knob_changed(knob)


# -- nodes ------------------------------------------------------------------------------
_COMMON = (("name", String_Knob, ""), ("label", Multiline_Eval_String_Knob, ""), ("disable", Boolean_Knob, False),
           ("xpos", Int_Knob, 0), ("ypos", Int_Knob, 0), ("selected", Boolean_Knob, False),
           ("knobChanged", String_Knob, ""))
_CLASS_KNOBS = {
    "Read": (("file", File_Knob, ""), ("first", Int_Knob, 1), ("last", Int_Knob, 1), ("origfirst", Int_Knob, 1),
             ("origlast", Int_Knob, 1), ("frame", String_Knob, ""), ("colorspace", String_Knob, "default"),
             ("raw", Boolean_Knob, False), ("premultiplied", Boolean_Knob, False),
             ("reload", PyScript_Knob, "")),
    "Write": (("file", File_Knob, ""), ("file_type", String_Knob, ""), ("datatype", String_Knob, "16 bit half"),
              ("channels", String_Knob, "rgb"), ("compression", String_Knob, "Zip (1 scanline)"),
              ("raw", Boolean_Knob, False), ("colorspace", String_Knob, "default")),
    "Input": (("number", Int_Knob, 0),),
    "Output": (),
    "Dot": (),
    "Grade": (("multiply", Double_Knob, 1.0),),
    "Copy": tuple((f"{d}{i}", String_Knob, "none") for i in range(4) for d in ("from", "to")),
    "Constant": (("color", AColor_Knob, None),),
    "Merge2": (("operation", String_Knob, "over"), ("mix", Double_Knob, 1.0)),
    "Switch": (("which", Int_Knob, 0),),
    "Group": (),
    "Root": (("first_frame", Int_Knob, 1), ("last_frame", Int_Knob, 100),
             ("colorManagement", Enumeration_Knob, ["Nuke", "OCIO"]), ("OCIO_config", String_Knob, "nuke-default"),
             ("customOCIOConfigPath", File_Knob, ""), ("workingSpaceLUT", String_Knob, "linear")),
}


class Node:
    def __init__(self, cls: str, parent: Optional["Group"]) -> None:
        if cls not in _CLASS_KNOBS:
            raise RuntimeError(f"{cls}: unknown command")  # what nuke.createNode raises
        self._class = cls
        self._parent = parent
        self._knobs: Dict[str, Knob] = {}
        self._user_knobs: List[str] = []
        self._inputs: List[Optional[Node]] = []
        for name, kind, default in _COMMON + _CLASS_KNOBS[cls]:
            knob = kind(name, name, default) if kind is Enumeration_Knob else kind(name, name)
            if default is not None and kind is not Enumeration_Knob:
                knob._value = knob._coerce(default)
            if kind is PyScript_Knob and name == "reload":
                knob._value = self._reload
            knob._node = self
            self._knobs[name] = knob
        self._cache: Dict[int, _Plate] = {}

    def Class(self):
        return self._class

    def name(self):
        return self._knobs["name"]._value

    def fullName(self):
        names = [self.name()]
        parent = self._parent
        while parent is not None and parent._class != "Root":
            names.insert(0, parent.name())
            parent = parent._parent
        return ".".join(names)

    def setName(self, name, uncollide=True, updateExpressions=False):
        if self._parent is not None:
            name = self._parent._unique(name, self) if uncollide else name
        self._knobs["name"]._value = name

    def knob(self, name, follow_link=True):
        return self._knobs.get(name)

    def __getitem__(self, name):
        if name not in self._knobs:
            raise NameError(f"knob {name} does not exist")
        return self._knobs[name]

    def knobs(self):
        return dict(self._knobs)

    def addKnob(self, knob):
        if knob._name in self._knobs:
            raise RuntimeError(f"{self.name()} already has a knob named {knob._name}")
        knob._node = self
        self._knobs[knob._name] = knob
        self._user_knobs.append(knob._name)

    def input(self, index):
        return self._inputs[index] if 0 <= index < len(self._inputs) else None

    def setInput(self, index, node):
        while len(self._inputs) <= index:
            self._inputs.append(None)
        self._inputs[index] = node
        while self._inputs and self._inputs[-1] is None:
            self._inputs.pop()
        _fire("knobChanged", self, _InputChange())
        return True

    def inputs(self):
        return len(self._inputs)

    def firstFrame(self):
        if self._class == "Read":
            return self["first"].value()
        upstream = self.input(0)
        return upstream.firstFrame() if upstream is not None else root()["first_frame"].value()

    def lastFrame(self):
        if self._class == "Read":
            return self["last"].value()
        upstream = self.input(0)
        return upstream.lastFrame() if upstream is not None else root()["last_frame"].value()

    # pixels (not part of Nuke's Python API: how the stand-in's nodes compute)
    def _reload(self):
        self._cache.clear()

    def _image(self, frame: int) -> "_Plate":
        if self["disable"].value() and self._class not in ("Read",):
            return self.input(0)._image(frame)
        if self._class == "Read":
            return self._read(frame)
        if self._class in ("Dot", "Output", "Write"):
            return _need(self.input(0), self)._image(frame)
        if self._class == "Grade":
            plate = _need(self.input(0), self)._image(frame)
            return plate.scaled(self["multiply"].value())
        if self._class == "Switch":
            return _need(self.input(int(self["which"].value())), self)._image(frame)
        if self._class == "Input":
            group = self._parent
            return _need(group.input(self["number"].value()), group)._image(frame)
        raise NotImplementedError(f"the nuke stand-in does not compute {self._class} pixels")

    def _read(self, frame: int) -> "_Plate":
        if self["file"].value() != getattr(self, "_cached_file", None):
            self._cache.clear()
            self._cached_file = self["file"].value()
        frame = min(max(frame, self["first"].value()), self["last"].value())
        if frame not in self._cache:
            self._cache[frame] = _Plate.load(frame_file(self["file"].value(), frame))
        return self._cache[frame]


class _InputChange:
    def name(self):
        return "inputChange"


def _need(node, owner):
    if node is None:
        raise RuntimeError(f"{owner.name()}: input not connected")
    return node


class Group(Node):
    def __init__(self, cls="Group", parent=None) -> None:
        super().__init__(cls, parent)
        self._children: List[Node] = []

    def begin(self):
        _context.append(self)
        return self

    def end(self):
        if _context[-1] is self:
            _context.pop()

    def __enter__(self):
        return self.begin()

    def __exit__(self, *exc):
        self.end()

    def nodes(self):
        return list(self._children)

    def node(self, name):
        return next((child for child in self._children if child.name() == name), None)

    def _unique(self, name, node=None):
        taken = {child.name() for child in self._children if child is not node}
        if name not in taken:
            return name
        stem = re.sub(r"\d+$", "", name)
        number = 1
        while "%s%d" % (stem, number) in taken:
            number += 1
        return "%s%d" % (stem, number)

    def _image(self, frame):
        if self["disable"].value():
            return _need(self.input(0), self)._image(frame)
        output = next((child for child in self._children if child._class == "Output"), None)
        return _need(output, self)._image(frame)


class Root(Group):
    def __init__(self) -> None:
        super().__init__("Root", None)
        self["name"]._value = ""


_root = Root()
_context: List[Group] = [_root]


def root():
    return _root


def _make(cls, knobs=None, fire=True):
    parent = _context[-1]
    node = Group(cls, parent) if cls == "Group" else Node(cls, parent)
    node.setName(cls + "1")
    parent._children.append(node)
    for name, value in (knobs or {}).items():
        node[name]._value = node[name]._coerce(value)
        if name == "name":
            node.setName(str(value))
    if fire:
        _fire("onCreate", node)
    return node


class _Nodes:
    """``nuke.nodes.Read(file=...)``: make a node with knob values, not connected."""

    def __getattr__(self, cls):
        if cls not in _CLASS_KNOBS or cls == "Root":
            raise AttributeError(f"nuke.nodes has no node class {cls}")
        return lambda **knobs: _make(cls, knobs)


nodes = _Nodes()


def createNode(typ, knobs="", inpanel=True):
    selected = [n for n in _context[-1]._children if n["selected"].value()]
    node = _make(typ)
    if GUI and selected:
        node.setInput(0, selected[-1])  # the GUI connects a new node under the selection
    return node


def toNode(name):
    group = _context[-1]
    for part in name.split("."):
        group = group.node(part) if isinstance(group, Group) else None
        if group is None:
            return None
    return group


def allNodes(filter=None, group=None, recurseGroups=False):
    found = []
    for child in (group or _context[-1])._children:
        if filter is None or child.Class() == filter:
            found.append(child)
        if recurseGroups and isinstance(child, Group):
            found.extend(allNodes(filter, child, True))
    return found


def thisNode():
    return state.this_node[-1] if state.this_node else _root


def frame(f=None):
    """The current frame (nuke.frame: "Return or set the current frame number")."""
    if f is not None:
        state.frame = int(f)
    return state.frame


def thisKnob():
    return state.this_knob[-1] if state.this_knob else None


def message(prompt):
    state.messages.append(prompt)


# -- callbacks (nuke.callbacks) -----------------------------------------------------------
def _adder(kind):
    def add(call, args=(), kwargs=None, nodeClass="*"):
        state.callbacks.setdefault(kind, {}).setdefault(nodeClass, []).append((call, args, kwargs or {}))
    add.__name__ = "add" + kind[0].upper() + kind[1:]
    return add


addOnCreate = _adder("onCreate")
addKnobChanged = _adder("knobChanged")
addUpdateUI = _adder("updateUI")
addBeforeRender = _adder("beforeRender")
addBeforeFrameRender = _adder("beforeFrameRender")
addAfterRender = _adder("afterRender")


def _fire(kind, node, knob=None) -> None:
    registered = state.callbacks.get(kind, {})
    for call, args, kwargs in registered.get("*", []) + registered.get(node.Class(), []):
        state.this_node.append(node)
        state.this_knob.append(knob)
        try:
            call(*args, **kwargs)
        finally:
            state.this_node.pop()
            state.this_knob.pop()


def update_ui(node) -> None:
    """Nuke runs updateUI callbacks as it redraws; tests call this where a redraw would come."""
    _fire("updateUI", node)


# -- rendering --------------------------------------------------------------------------
def frame_file(pattern, frame):
    pattern = re.sub(r"#+", lambda m: "%0" + str(len(m.group(0))) + "d", pattern)
    return pattern % frame if "%" in pattern else pattern


class _Plate:
    """Pixels of one frame: channels over the data window, and the display window."""

    def __init__(self, channels, data, display):
        self.channels, self.data, self.display = channels, data, display

    @classmethod
    def load(cls, path):
        import OpenImageIO as oiio

        image = oiio.ImageInput.open(path)
        if image is None:
            raise RuntimeError(f"Read error: {path}: {oiio.geterror()}")
        spec = image.spec()
        pixels = image.read_image(0, 0, 0, spec.nchannels, oiio.FLOAT)
        image.close()
        channels = {name: np.array(pixels[..., i]) for i, name in enumerate(spec.channelnames)}
        data = (spec.x, spec.y, spec.width, spec.height)
        display = (spec.full_x, spec.full_y, spec.full_width, spec.full_height)
        return cls(channels, data, display)

    def scaled(self, factor):
        return _Plate({name: (values * factor if name != "A" else values) for name, values in self.channels.items()},
                      self.data, self.display)


def execute(nameOrNode, start, end=None, incr=1, views=None, continueOnError=False):
    node = toNode(nameOrNode) if isinstance(nameOrNode, str) else nameOrNode
    if node is None or node.Class() != "Write":
        raise RuntimeError(f"{nameOrNode} cannot be executed")
    if node["disable"].value():
        raise RuntimeError(f"{node.fullName()} is disabled")
    _fire("beforeRender", node)
    import OpenImageIO as oiio

    for frame in range(start, (end if end is not None else start) + 1, incr):
        state.executed.append((node.fullName(), frame))
        plate = _need(node.input(0), node)._image(frame)
        path = frame_file(node["file"].value(), frame)
        if not os.path.isdir(os.path.dirname(path)):
            raise RuntimeError(f"{node.name()}: can't write {path}: no such folder")
        names = ["R", "G", "B", "A"] if node["channels"].value() == "rgba" else ["R", "G", "B"]
        x, y, width, height = plate.data
        kind = oiio.HALF if node["datatype"].value() == "16 bit half" else oiio.FLOAT
        spec = oiio.ImageSpec(width, height, len(names), kind)
        spec.x, spec.y = x, y
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = plate.display
        spec.channelnames = tuple(names)
        spec.attribute("compression", "zip")
        zero = np.zeros((height, width), np.float32)
        pixels = np.stack([plate.channels.get(name, zero) for name in names], axis=-1).astype(np.float32)
        out = oiio.ImageOutput.create(path)
        if not out.open(path, spec) or not out.write_image(pixels):
            raise RuntimeError(f"{node.name()}: can't write {path}: {out.geterror()}")
        out.close()
    _fire("afterRender", node)


class _TaskBase:
    def __init__(self, name):
        self.name, self.message, self.progress = name, "", 0
        state.tasks.append(self)

    def setMessage(self, s):
        self.message = s

    def setProgress(self, i):
        self.progress = int(i)
        state.progress_steps += 1

    def isCancelled(self):
        return state.cancel_after is not None and state.progress_steps >= state.cancel_after


class _ProgressTask(_TaskBase):
    """Nuke 13-17.0: ProgressTask(name); setProgress takes a percentage."""

    def __init__(self, name):
        super().__init__(name)
        self.maximum = 100

    def setProgress(self, i):
        if not 0 <= int(i) <= 100:
            raise ValueError(f"progress {i} is not a percentage")
        super().setProgress(i)


class _ProgressTask171(_TaskBase):
    """Nuke 17.1 (pybind11): ProgressTask(name, maximum=100, flags=kDefaultFlags)."""

    kUserCanCancel, kShowTimeToGo, kModal, kDelayedPopup = 1, 2, 4, 8
    kDefaultFlags = 3

    def __init__(self, name, maximum=100, flags=3):
        super().__init__(name)
        self.maximum, self.flags = int(maximum), int(flags)


ProgressTask = _ProgressTask


class Menu:
    def __init__(self, name):
        self._name, self.items = name, {}

    def name(self):
        return self._name

    def addMenu(self, name, **kwargs):
        return self.items.setdefault(name, Menu(name))

    def addCommand(self, name, command="", shortcut="", **kwargs):
        self.items[name] = command
        return None

    def findItem(self, name):
        return self.items.get(name)


def menu(name):
    return state.menus.setdefault(name, Menu(name))


# -- scripts: save, open, copy, paste ----------------------------------------------------
def _dump(node):
    user = [(type(node[name]).__name__, name, node[name].label(), node[name]._flags,
             node[name].values() if isinstance(node[name], Enumeration_Knob) else None) for name in node._user_knobs]
    values = {name: knob._value for name, knob in node._knobs.items() if not callable(knob._value)}
    return {"class": node.Class(), "user": user, "values": values,
            "inputs": [n.name() if n is not None else None for n in node._inputs],
            "children": [_dump(child) for child in node._children] if isinstance(node, Group) else []}


def _load(items, parent, rename=False):
    made = []
    _context.append(parent)
    try:
        for item in items:
            node = _make(item["class"], fire=False)
            for kind, name, label, flags, values in item["user"]:
                knob = globals()[kind](name, label, values) if values is not None else globals()[kind](name, label)
                knob._flags = flags
                node.addKnob(knob)
            for name, value in item["values"].items():
                if name in node._knobs:
                    node._knobs[name]._value = value
            node.setName(item["values"]["name"], uncollide=True) if rename else None
            made.append((node, item))
            if isinstance(node, Group):
                _load(item["children"], node)
    finally:
        _context.pop()
    names = {item["values"]["name"]: node for node, item in made}
    for node, item in made:
        node._inputs = [names.get(name) if name else None for name in item["inputs"]]
    return [node for node, _ in made]


def scriptSave(filename=None):
    path = filename or _root["name"].value()
    _root["name"]._value = path
    with open(path, "w") as handle:
        json.dump(_dump(_root), handle)


def scriptClear():
    """A new, empty script: nodes gone and the Project Settings back to their defaults."""
    global _root
    _root = Root()
    _context[:] = [_root]


def scriptOpen(path):
    with open(path) as handle:
        saved = json.load(handle)
    scriptClear()
    for name, value in saved["values"].items():
        _root._knobs[name]._value = value
    for node in _walk_all(_load(saved["children"], _root)):
        _fire("onCreate", node)


def _walk_all(nodes):
    for node in nodes:
        if isinstance(node, Group):
            yield from _walk_all(node._children)
        yield node


def nodeCopy(s):
    state.clipboard = json.dumps([_dump(n) for n in _context[-1]._children if n["selected"].value()])
    return True


def nodePaste(s):
    for node in _context[-1]._children:
        node["selected"]._value = False
    pasted = _load(json.loads(state.clipboard), _context[-1], rename=True)
    for node in _walk_all(pasted):
        _fire("onCreate", node)
    return pasted[-1] if pasted else None


