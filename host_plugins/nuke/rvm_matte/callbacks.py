"""Nuke callbacks for every RVMMatte, registered once by the plug-in's init.py.

- onCreate: a node whose clip id another RVMMatte in the script already has (copy-paste,
  duplicate) gets a new one; a node loaded from a saved script keeps its own.
- knobChanged: the output mode, settings and input connection update what the node shows.
  Nuke 17.1 fires knobChanged for changes made from Python too, so a callback that sets knobs
  would call itself: it is guarded (re-entrant safe) and only sets knobs whose value differs.
- updateUI: the cheap staleness check (no bridge, no model).
- beforeRender (Write nodes): before Nuke renders a Write (``nuke -x`` on a render node, or the
  artist's render), every RVMMatte upstream whose matte is stale or missing renders its range
  once. The viewer never drives the model.
"""

import os
from typing import Any, Iterator, List, Set

import nuke

from . import node

_busy: Set[str] = set()  # nodes a callback is working on (knobChanged may fire inside it)
FRAMES_VARIABLE = "RVM_MATTE_FRAMES"  # "1005-1008": a farm chunk's frames, for the before-render


_registered: List[bool] = []


def register() -> None:
    """Register the callbacks once (init.py may run twice when a folder is added twice)."""
    if _registered:
        return
    _registered.append(True)
    nuke.addOnCreate(on_create, nodeClass="Group")
    nuke.addKnobChanged(knob_changed, nodeClass="Group")
    nuke.addUpdateUI(update_ui, nodeClass="Group")
    nuke.addBeforeRender(before_render, nodeClass="Write")


def all_rvm_mattes() -> List[Any]:
    return [found for found in nuke.allNodes(filter="Group", group=nuke.root(), recurseGroups=True) if node.is_rvm_matte(found)]


def on_create() -> None:
    group = nuke.thisNode()
    if not node.is_rvm_matte(group):
        return
    clip = str(group["rvm_clip_id"].value())
    others = [other for other in all_rvm_mattes() if other is not group and other.fullName() != group.fullName()]
    if not clip or any(str(other["rvm_clip_id"].value()) == clip for other in others):
        with guard(group) as entered:
            if entered:
                group["rvm_clip_id"].setValue(node.new_clip_id())
                for name in ("rendered_stamp", "rendered_frames", "render_summary", "input_stamp"):
                    group[name].setValue("")
                node.show_state(group, "not rendered yet: press Render matte (a copy is a new clip)", stale=True)


class guard:
    """``with guard(group) as entered``: entered is False when a callback for this node is
    already running further up the stack (knobChanged fired by our own setValue)."""

    def __init__(self, group: Any) -> None:
        self.key = group.fullName()
        self.entered = False

    def __enter__(self) -> bool:
        self.entered = self.key not in _busy
        _busy.add(self.key)
        return self.entered

    def __exit__(self, *exc: object) -> None:
        if self.entered:
            _busy.discard(self.key)


def knob_changed() -> None:
    group = nuke.thisNode()
    if not node.is_rvm_matte(group):
        return
    name = nuke.thisKnob().name()
    if name in node.HIDDEN_KNOBS or name in ("info", "label", "render", "refresh", "start_bridge", "try_ratios",
                                                     "use_suggested"):
        return
    with guard(group) as entered:
        if entered:
            from .render import refresh_state

            refresh_state(group)


def update_ui() -> None:
    group = nuke.thisNode()
    if node.is_rvm_matte(group):
        with guard(group) as entered:
            if entered:
                from .render import refresh_state

                refresh_state(group)


def upstream_mattes(start: Any) -> Iterator[Any]:
    """The RVMMattes upstream of ``start``, each after every RVMMatte feeding it (a matte made
    from another matte's output needs that one rendered first)."""
    from .upstream import walk

    ordered: List[Any] = []  # nodes are told apart by full name (Nuke's Python objects are not kept)

    def visit(current: Any, path: Set[str]) -> None:
        for found in walk(current):
            name = found.fullName()
            outside = _group_input(found)
            if outside is not None and outside.fullName() not in path:
                visit(outside, path | {outside.fullName()})  # a Write inside a studio's write gizmo
                if node.is_rvm_matte(outside) and all(done.fullName() != outside.fullName() for done in ordered):
                    ordered.append(outside)
            if name not in path and node.is_rvm_matte(found):
                visit(found, path | {name})
                if all(done.fullName() != name for done in ordered):
                    ordered.append(found)

    visit(start, {start.fullName()})
    return iter(ordered)


def _group_input(found: Any) -> Any:
    """For an Input node inside a Group (a studio's write gizmo: a Group around a Write), the node
    feeding that Group's input; else None. Not for RVMMatte's own internal Input."""
    name = found.fullName()
    if found.Class() != "Input" or "." not in name:
        return None
    root = nuke.root()
    root.begin()
    try:
        group = nuke.toNode(name.rsplit(".", 1)[0])
    finally:
        root.end()
    if group is None or node.is_rvm_matte(group):
        return None
    return group.input(int(found["number"].value()))


def before_render() -> None:
    """Render, once, each stale RVMMatte feeding the Write that Nuke is about to render."""
    from .render import MatteError, is_current, render_matte

    write = nuke.thisNode()
    mattes = list(upstream_mattes(write))
    variable = os.environ.get(FRAMES_VARIABLE, "").strip()
    if mattes and variable and node.parse_frames(variable) is None:
        # Never fall back to the whole range: every chunk would render the same clip at once.
        raise MatteError("%s=%r should look like 1009-1012 (this farm task's frames)" % (FRAMES_VARIABLE, variable))
    for group in mattes:
        if group["disable"].value():
            continue  # a disabled RVMMatte passes its input through: no matte is needed
        with guard(group) as entered:
            if not entered:
                continue  # a render of this node is already running further up the stack
            node_first, node_last = node.frame_range(group)
            chunk = node.parse_frames(variable)
            first, last = (max(chunk[0], node_first), min(chunk[1], node_last)) if chunk else (node_first, node_last)
            if first > last and chunk:
                continue  # this chunk needs none of this node's frames
            if not is_current(group, first, last):
                render_matte(group, (first, last))
