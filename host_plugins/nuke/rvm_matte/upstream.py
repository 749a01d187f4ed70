"""What feeds the node: a plain EXR Read the bridge can read itself, and the stamp that says
whether the matte on disk still belongs to the input.

The stamp is a hash of every node upstream (class and the saved value of every knob that can
change pixels: file names, frame ranges, grades...), the node's own settings and frame range.
Any change makes the matte "re-render needed". File contents changed on disk under the same
names are not seen (the bridge's own check of sizes and times covers plates it reads itself).
"""

import hashlib
from typing import Iterator, List, Optional, Tuple

# Knobs that move, colour or annotate a node in the DAG: they never change its pixels.
_COSMETIC = {"xpos", "ypos", "selected", "label", "note_font", "note_font_size", "note_font_color", "tile_color",
             "gl_color", "hide_input", "postage_stamp", "postage_stamp_frame", "bookmark", "indicators",
             "dope_sheet", "icon", "help", "onCreate", "onDestroy", "knobChanged", "updateUI", "autolabel",
             "panel", "cached", "name", "reload", "rvm_clip_id", "rendered_stamp", "rendered_frames",
             "input_stamp", "render_summary", "info", "render", "refresh", "start_bridge", "output", "try_frames",
             "try_ratios", "use_suggested", "suggested_ratio", "ratios_summary", "ratios_stamp"}
_PLAIN_COLOURSPACES = ("linear", "scene_linear", "default", "default (linear)", "default (scene_linear)")


def walk(node) -> Iterator:
    """Every node upstream of ``node`` (itself first), each once; Dots included. Nodes are told
    apart by full name: Nuke hands out a new Python object for a node at each ``input()``, and
    an ``id()`` of one freed may come back for another node (which would then be skipped)."""
    seen = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if current is None or current.fullName() in seen:
            continue
        seen.add(current.fullName())
        yield current
        for index in range(current.inputs() - 1, -1, -1):
            stack.append(current.input(index))


def source_node(node):
    """The node feeding ``node``'s input, through Dots."""
    current = node.input(0)
    while current is not None and current.Class() == "Dot":
        current = current.input(0)
    return current


def plain_exr_read(node, first: int, last: int) -> Optional[str]:
    """The file pattern when ``node``'s input is a Read of an EXR sequence whose pixels reach the
    node unchanged over ``first``-``last`` (no colour conversion, no frame offset, not disabled,
    frames inside its range), else None: the node then writes its input itself."""
    read = source_node(node)
    if read is None or read.Class() != "Read":
        return None
    path = str(read["file"].value())
    if "[" in path:
        return None  # a TCL expression ([getenv SHOT], [value root.name]...): Nuke expands it, the bridge cannot
    if not path.lower().endswith(".exr") or _on(read, "disable") or _on(read, "premultiplied"):
        return None
    colourspace = str(read["colorspace"].value()).lower() if read.knob("colorspace") is not None else "default"
    if not (_on(read, "raw") or colourspace in _PLAIN_COLOURSPACES or colourspace.startswith("default")):
        return None
    if read.knob("frame") is not None and str(read["frame"].value()).strip():
        return None  # a frame offset or expression: Nuke's frame N is not the file's N
    if not int(read["first"].value()) <= first <= last <= int(read["last"].value()):
        return None
    return path


def _on(node, name: str) -> bool:
    knob = node.knob(name)
    return bool(knob is not None and knob.value())


def stamp(node, settings: List[Tuple[str, str]], first: int, last: int) -> str:
    """A short hash of the input graph, the node's ``settings`` and its frame range."""
    digest = hashlib.sha1()
    digest.update(("%d-%d|" % (first, last)).encode("utf-8"))
    for name, value in settings:
        digest.update((f"{name}={value}|").encode())
    upstream = node.input(0)
    for current in walk(upstream) if upstream is not None else []:
        digest.update((f"node:{current.Class()}|").encode())
        knobs = current.knobs()
        for name in sorted(knobs):
            if name not in _COSMETIC:
                digest.update((f"{name}={knobs[name].toScript()}|").encode())
    return digest.hexdigest()[:16]
