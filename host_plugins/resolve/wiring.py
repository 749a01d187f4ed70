"""Loaders for the alpha and foreground plates, and a MatteControl that shows the keyed result.

The tools are named for the tool they matte (``RVM_Loader1_Alpha``, ``RVM_Loader1_Foreground``,
``RVM_Loader1_Matte``), so running RVM Matte again on the same tool finds and updates them
instead of adding more. The foreground plate is straight (not premultiplied) colour; the
MatteControl takes the alpha plate's alpha into the foreground (Combine: Alpha, Operation: Copy)
and post-multiplies, so the comp shows the premultiplied keyed person. The Lua launcher
(``scripts/Comp/RVM Matte (Lua).lua``) makes the same calls with the same names and values.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Dict, Iterator

if TYPE_CHECKING:
    from .fusion_api import Comp, Tool

# MatteControl inputs (Fusion's tool reference): Combine = Alpha, Combine Op = Copy, Post-Multiply Image on.
MATTE_CONTROL = {"MatteCombine": 4, "CombineOp": 0, "PostMultiplyImage": 1}
UNDO_NAME = "RVM Matte"


def tool_names(source_name: str) -> Dict[str, str]:
    return {"alpha": f"RVM_{source_name}_Alpha", "foreground": f"RVM_{source_name}_Foreground",
            "matte": f"RVM_{source_name}_Matte"}


@contextlib.contextmanager
def one_undo(comp: Comp, name: str = UNDO_NAME) -> Iterator[None]:
    """Everything inside is one undo step, with the comp locked (no dialogs, no re-renders)."""
    comp.Lock()
    comp.StartUndo(name)
    try:
        yield
    finally:
        comp.EndUndo(True)
        comp.Unlock()


def _tool(comp: Comp, tool_id: str, name: str) -> Tool:
    found = comp.FindTool(name)
    if found is not None:
        return found
    tool = comp.AddTool(tool_id, -32768, -32768)  # -32768: Fusion places it beside the selection
    tool.SetAttrs({"TOOLS_Name": name})
    return tool


def wire(comp: Comp, source_name: str, plates: Dict[str, str], global_in: int, count: int) -> Dict[str, Tool]:
    """Point the alpha and foreground Loaders at ``plates`` (each the file of the first frame),
    starting at comp frame ``global_in`` for ``count`` frames, and wire the MatteControl.
    Call inside ``one_undo``; returns the tools by role (alpha, foreground, matte)."""
    names = tool_names(source_name)
    tools: Dict[str, Tool] = {}
    for role in ("alpha", "foreground"):
        loader = _tool(comp, "Loader", names[role])
        loader.SetInput("Clip", plates[role])
        loader.SetInput("GlobalIn", global_in)
        loader.SetInput("GlobalOut", global_in + count - 1)
        tools[role] = loader
    matte = _tool(comp, "MatteControl", names["matte"])
    matte.ConnectInput("Background", tools["foreground"])
    matte.ConnectInput("Foreground", tools["alpha"])
    for name, value in MATTE_CONTROL.items():
        matte.SetInput(name, value)
    tools["matte"] = matte
    return tools


def loader(comp: Comp, name: str, clip: str) -> Tool:
    """The Loader ``name`` (made once, then updated) pointed at ``clip``. Call inside ``one_undo``."""
    tool = _tool(comp, "Loader", name)
    tool.SetInput("Clip", clip)
    return tool
