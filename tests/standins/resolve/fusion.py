"""Fusion's Composition and Operator objects (Fusion Scripting Guide, "Composition", "Operator",
"Loader"; Resolve's Fusion page runs the same FusionScript).

Imitated behaviour:
- Tool attributes come back from ``GetAttrs()`` as Fusion gives them to Python: plain values for
  ``TOOLS_*`` and per-clip tables ``{1.0: value}`` for a Loader's ``TOOLST_Clip_Name``,
  ``TOOLIT_Clip_InitialFrame`` (the first frame number of the sequence on disk),
  ``TOOLIT_Clip_TrimIn``/``TrimOut`` (offsets from it), ``TOOLIT_Clip_Length``.
- A MediaIn exposes no file path (its clip is Resolve's, reached through the timeline).
- A Loader's ``Reverse`` plays its trimmed range backwards (``Loop``, ``HoldFirstFrame`` and
  ``HoldLastFrame`` are accepted as inputs; the stand-in does not play them).
- Setting a Loader's ``Clip`` finds the sequence around the file on disk and, as Fusion does,
  resets its trims and puts it at the comp's render start (``GlobalIn``/``GlobalOut``).
- ``AddTool(id, x, y)`` names tools ``Loader1``, ``Loader2`` ...; ``SetAttrs({"TOOLS_Name"})``
  renames; ``FindTool(name)`` finds by name; ``GetToolList(selected)`` is ``{1.0: tool}``.
- ``MapPath`` expands the ``Comp:`` path map to the comp file's folder (``COMPS_FileName``).
- ``Lock``/``StartUndo``/``EndUndo``/``Unlock``: every tool change is recorded in the open undo
  group; changes with no group open are recorded as loose edits (a real comp would make each its
  own undo step), so a test can say "one undo step".
- ``Render({"Start", "End", "Tool", "Wait"})`` renders a Saver: it writes a real half-float EXR
  per comp frame of whatever feeds the Saver, numbered by comp frame with the padding of the
  number in the Saver's ``Clip``.
Anything else (an unknown tool ID, input ID, attribute or method) raises StandInError.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Dict, List, Optional

import numpy as np

INPUTS = {
    "Loader": {"Clip": str, "GlobalIn": int, "GlobalOut": int, "TrimIn": int, "TrimOut": int, "Reverse": int,
               "Loop": int, "HoldFirstFrame": int, "HoldLastFrame": int},
    "MediaIn": {"GlobalIn": int, "GlobalOut": int},
    "Saver": {"Clip": str, "OutputFormat": str, "Input": "image"},
    "MatteControl": {"Background": "image", "Foreground": "image", "MatteCombine": int, "CombineOp": int,
                     "PostMultiplyImage": int, "Invert": int},
    "Merge": {"Background": "image", "Foreground": "image", "PerformDepthMerge": int},
}
# MatteControl's "Combine" menu, in Fusion's order: None, Red, Green, Blue, Alpha, ...
MATTE_COMBINE = ("None", "Combine Red", "Combine Green", "Combine Blue", "Combine Alpha", "Combine Luminance")
_FRAME = re.compile(r"^(?P<head>.*?)(?P<digits>\d+)(?P<tail>\.[A-Za-z0-9]+)$")


class StandInError(AttributeError):
    """What the real API lacks (Fusion returns nil or raises; here it is always loud)."""


class Strict:
    """Refuses attributes a class does not declare (the real objects have no such members)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        raise StandInError(f"{type(self).__name__} has no attribute {name!r} in the real API")


class Tool(Strict):
    """An Operator: GetAttrs/SetAttrs, GetInput/SetInput/ConnectInput, Delete."""

    __slots__ = ("comp", "reg_id", "name", "inputs", "derived", "connections", "selected", "media", "deleted")

    def __init__(self, comp: Comp, reg_id: str, name: str) -> None:
        self.comp = comp
        self.reg_id = reg_id
        self.name = name
        self.inputs: Dict[str, Any] = {}  # what scripts set
        self.derived: Dict[str, Any] = {}  # what Fusion set itself (a Loader's trims and place on a new clip)
        self.connections: Dict[str, Optional[Tool]] = {}
        self.selected = False
        self.media: Optional[Callable[[int], np.ndarray]] = None  # a MediaIn's pictures, by comp frame
        self.deleted = False

    @property
    def Name(self) -> str:  # Operator.Name
        return self.name

    def GetAttrs(self) -> Dict[str, Any]:
        attrs: Dict[str, Any] = {"TOOLS_Name": self.name, "TOOLS_RegID": self.reg_id, "TOOLB_Selected": self.selected,
                                 "TOOLB_PassThrough": False}
        if self.reg_id == "Loader" and self.inputs.get("Clip"):
            clip = self.inputs["Clip"]
            initial, length = sequence_on_disk(self.comp.MapPath(clip))
            attrs.update({"TOOLST_Clip_Name": {1.0: clip}, "TOOLIT_Clip_InitialFrame": {1.0: float(initial)},
                          "TOOLIT_Clip_Length": {1.0: float(length)},
                          "TOOLIT_Clip_TrimIn": {1.0: float(self.value("TrimIn") or 0)},
                          "TOOLIT_Clip_TrimOut": {1.0: float(self.value("TrimOut") or 0)},
                          "TOOLNT_Clip_Start": {1.0: float(self.value("GlobalIn") or 0)},
                          "TOOLNT_Clip_End": {1.0: float(self.value("GlobalOut") or 0)}})
        return attrs

    def SetAttrs(self, attrs: Dict[str, Any]) -> None:
        for key, value in attrs.items():
            if key != "TOOLS_Name":
                raise StandInError(f"SetAttrs: {key} is read-only or unknown (only TOOLS_Name is set here)")
            self.comp._edit(f"rename {self.name} -> {value}")
            if self.comp.FindTool(value) not in (None, self):
                value = value + "_1"  # Fusion keeps names unique the same way
            self.comp.tools[value] = self.comp.tools.pop(self.name)
            self.name = value

    def _check(self, name: str) -> Any:
        kinds = INPUTS[self.reg_id]
        if name not in kinds:
            raise StandInError(f"{self.reg_id} has no input {name!r}")
        return kinds[name]

    def GetInput(self, name: str, time: Optional[float] = None) -> Any:
        self._check(name)
        value = self.value(name)
        if name == "GlobalIn" and value is None:
            return float(self.comp.render_start)
        return float(value) if isinstance(value, int) else value

    def value(self, name: str) -> Any:
        return self.inputs.get(name, self.derived.get(name))

    def SetInput(self, name: str, value: Any, time: Optional[float] = None) -> None:
        kind = self._check(name)
        if kind == "image":
            raise StandInError(f"{name} is an image input: use ConnectInput")
        if kind is int and not isinstance(value, (int, float)) or kind is str and not isinstance(value, str):
            raise StandInError(f"{self.reg_id}.{name} takes a {kind.__name__}, not {value!r}")
        self.comp._edit(f"{self.name}.{name} = {value!r}")
        self.inputs[name] = int(value) if kind is int else value
        if self.reg_id == "Loader" and name == "Clip":
            _, length = sequence_on_disk(self.comp.MapPath(value))
            for key in ("TrimIn", "TrimOut", "GlobalIn", "GlobalOut"):
                self.inputs.pop(key, None)
            self.derived = {"TrimIn": 0, "TrimOut": length - 1, "GlobalIn": self.comp.render_start,
                            "GlobalOut": self.comp.render_start + length - 1}

    def ConnectInput(self, name: str, source: Optional[Tool]) -> bool:
        if self._check(name) != "image":
            raise StandInError(f"{self.reg_id}.{name} is not an image input")
        if source is not None and (not isinstance(source, Tool) or source.deleted):
            raise StandInError(f"ConnectInput({name!r}) needs a tool of this comp, not {source!r}")
        self.comp._edit(f"{self.name}.{name} <- {source.name if source else None}")
        self.connections[name] = source
        return True

    def Delete(self) -> None:
        self.comp._edit(f"delete {self.name}")
        self.deleted = True
        self.comp.tools.pop(self.name, None)

    # -- pictures (what the comp would show at a frame) ---------------------------------------
    def picture(self, frame: int) -> np.ndarray:
        if self.reg_id == "Loader":
            clip = self.comp.MapPath(self.inputs["Clip"])
            initial, _ = sequence_on_disk(clip)
            file_frame = initial + (self.value("TrimIn") or 0) + frame - (self.value("GlobalIn") or 0)
            if self.value("Reverse"):  # the Loader's Reverse: its trimmed range played backwards
                file_frame = initial + (self.value("TrimOut") or 0) - (frame - (self.value("GlobalIn") or 0))
            return read_rgb(frame_file(clip, file_frame))
        if self.reg_id == "MediaIn" and self.media is not None:
            return self.media(frame)
        raise StandInError(f"the stand-in cannot render a {self.reg_id}")


class Comp(Strict):
    """A Composition: tools, selection, attributes, lock and undo, Saver renders, AskUser."""

    __slots__ = ("tools", "render_start", "render_end", "file_name", "undo_groups", "open_undo", "loose_edits",
                 "locks", "active", "counters", "ask_user", "asked", "renders")

    def __init__(self, render_start: int = 0, render_end: int = 0, file_name: str = "",
                 ask_user: Optional[Callable[[str, Dict[Any, Any]], Optional[Dict[str, Any]]]] = None) -> None:
        self.tools: Dict[str, Tool] = {}
        self.render_start = render_start
        self.render_end = render_end
        self.file_name = file_name
        self.undo_groups: List[List[str]] = []
        self.open_undo: Optional[List[str]] = None
        self.loose_edits: List[str] = []
        self.locks = 0
        self.active: Optional[Tool] = None
        self.counters: Dict[str, int] = {}
        self.ask_user = ask_user  # None: this Fusion offers no AskUser (the stand-in's "absent prompt")
        self.asked: List[Dict[Any, Any]] = []
        self.renders: List[Dict[str, Any]] = []

    def _edit(self, what: str) -> None:
        (self.open_undo if self.open_undo is not None else self.loose_edits).append(what)

    # -- the API ------------------------------------------------------------------------------
    @property
    def CurrentTime(self) -> float:
        return float(self.render_start)

    @property
    def ActiveTool(self) -> Optional[Tool]:
        return self.active

    def GetToolList(self, selected: bool = False, tool_type: Optional[str] = None) -> Dict[float, Tool]:
        picked = [tool for tool in self.tools.values() if (tool.selected or not selected) and
                  (tool_type is None or tool.reg_id == tool_type)]
        return {float(index + 1): tool for index, tool in enumerate(picked)}

    def FindTool(self, name: str) -> Optional[Tool]:
        return self.tools.get(name)

    def AddTool(self, tool_id: str, x: int = -32768, y: int = -32768) -> Tool:
        if tool_id not in INPUTS:
            raise StandInError(f"the stand-in knows no tool {tool_id!r} (the scripts add Loader, Saver, MatteControl)")
        self.counters[tool_id] = self.counters.get(tool_id, 0) + 1
        name = f"{tool_id}{self.counters[tool_id]}"
        while name in self.tools:
            self.counters[tool_id] += 1
            name = f"{tool_id}{self.counters[tool_id]}"
        self._edit(f"add {name}")
        tool = Tool(self, tool_id, name)
        self.tools[name] = tool
        return tool

    def MapPath(self, path: str) -> str:
        """``Comp:`` is the comp file's folder; a path without a known map comes back as it is."""
        if path[:5].lower() == "comp:" and self.file_name:
            return os.path.join(os.path.dirname(self.file_name), path[5:].lstrip("/\\"))
        return path

    def GetAttrs(self) -> Dict[str, Any]:
        return {"COMPN_RenderStart": float(self.render_start), "COMPN_RenderEnd": float(self.render_end),
                "COMPN_GlobalStart": float(self.render_start), "COMPN_GlobalEnd": float(self.render_end),
                "COMPS_FileName": self.file_name, "COMPB_Locked": self.locks > 0}

    def Lock(self) -> None:
        self.locks += 1

    def Unlock(self) -> None:
        if self.locks == 0:
            raise StandInError("Unlock without Lock")
        self.locks -= 1

    def StartUndo(self, name: str) -> None:
        if self.open_undo is not None:
            raise StandInError("StartUndo inside an open undo group")
        self.open_undo = [f"undo: {name}"]

    def EndUndo(self, keep: bool) -> None:
        if self.open_undo is None:
            raise StandInError("EndUndo without StartUndo")
        if keep and len(self.open_undo) > 1:
            self.undo_groups.append(self.open_undo)
        self.open_undo = None

    def Render(self, settings: Dict[str, Any]) -> bool:
        unknown = set(settings) - {"Start", "End", "Tool", "Wait", "FrameRange", "RenderAll"}
        if unknown:
            raise StandInError(f"Render takes no {sorted(unknown)}")
        saver = settings.get("Tool")
        if not isinstance(saver, Tool) or saver.reg_id != "Saver":
            raise StandInError("the stand-in renders a Saver only (Render{Tool = saver})")
        upstream = saver.connections.get("Input")
        if upstream is None:
            return False
        self.renders.append(dict(settings))
        clip = saver.inputs["Clip"]
        for frame in range(int(settings["Start"]), int(settings["End"]) + 1):
            write_rgb(frame_file(clip, frame), upstream.picture(frame))
        return True

    @property
    def AskUser(self) -> Callable[[str, Dict[Any, Any]], Optional[Dict[str, Any]]]:
        """Composition:AskUser(title, controls): the artist's answers by control name, or None
        when they cancel. Absent (AttributeError) where the stand-in's edition offers none."""
        if self.ask_user is None:
            raise StandInError("this Fusion offers no AskUser")
        answer = self.ask_user

        def ask(title: str, controls: Dict[Any, Any]) -> Optional[Dict[str, Any]]:
            self.asked.append(controls)
            return answer(title, controls)
        return ask

    # -- for tests ----------------------------------------------------------------------------
    def add_loader(self, clip: str, name: str = "", selected: bool = True, global_in: Optional[int] = None) -> Tool:
        """An artist's Loader: added outside any script undo (the artist's own step)."""
        tool = self.AddTool("Loader")
        if name:
            tool.SetAttrs({"TOOLS_Name": name})
        tool.SetInput("Clip", clip)
        if global_in is not None:
            tool.SetInput("GlobalIn", global_in)
        tool.selected = selected
        self.active = tool if selected else self.active
        self.loose_edits.clear()
        return tool

    def snapshot(self, prefix: str = "RVM_") -> Dict[str, Any]:
        """The script-made tools as plain data (compared with the Lua stand-in's)."""
        return {name: {"id": tool.reg_id, "inputs": dict(sorted(tool.inputs.items())),
                       "connections": {key: (value.name if value else None)
                                       for key, value in sorted(tool.connections.items())}}
                for name, tool in sorted(self.tools.items()) if name.startswith(prefix)}


class Fusion(Strict):
    """The Fusion object: CurrentComp, UIManager (None where the edition has none), GetVersion."""

    __slots__ = ("comp", "ui", "version")

    def __init__(self, comp: Comp, ui: Any = None, version: tuple = (19, 1, 3)) -> None:
        self.comp = comp
        self.ui = ui
        self.version = version

    @property
    def CurrentComp(self) -> Comp:
        return self.comp

    @property
    def UIManager(self) -> Any:
        return self.ui

    def GetVersion(self) -> Dict[float, float]:
        return {float(i + 1): float(part) for i, part in enumerate(self.version)}


# -- files ----------------------------------------------------------------------------------------
def frame_file(clip: str, frame: int) -> str:
    folder, name = os.path.split(clip)
    match = _FRAME.match(name)
    if not match:
        return clip
    width = len(match.group("digits"))
    return os.path.join(folder, f"{match.group('head')}{frame:0{width}d}{match.group('tail')}")


def sequence_on_disk(clip: str) -> tuple:
    """(first frame, length) of the sequence around ``clip``, as a Loader finds it."""
    folder, name = os.path.split(clip)
    match = _FRAME.match(name)
    if not match:
        if not os.path.isfile(clip):
            raise StandInError(f"Loader: {clip} is not on disk")
        return 0, 1
    found = re.compile("^" + re.escape(match.group("head")) + r"(\d+)" + re.escape(match.group("tail")) + "$")
    frames = sorted(int(m.group(1)) for m in (found.match(entry) for entry in os.listdir(folder)) if m)
    if not frames:
        raise StandInError(f"Loader: no frame of {clip} is on disk")
    start = frames[0]
    length = 1
    while start + length in frames:
        length += 1
    return start, length


def read_rgb(path: str) -> np.ndarray:
    import OpenImageIO as oiio

    image = oiio.ImageBuf(path)
    return np.asarray(image.get_pixels(oiio.FLOAT))[..., :3]


def write_rgb(path: str, rgb: np.ndarray) -> None:
    from rvm_engine.plate_writing import write_plate

    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_plate(path, np.ascontiguousarray(rgb, dtype=np.float32), ["R", "G", "B"], pixel_type="half")
