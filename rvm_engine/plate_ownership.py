"""Whose plate is this: the header marks on the plates we write, and the checks that read them.

Plates we write say so in their header (``rvm:software``, ``rvm:output``), which is how a render
tells its own plates, safe to replace or to resume after, from anybody else's files (a source
plate, another output, another tool's render). Formats whose header cannot say so are ours
only when this process wrote them. See docs/plates_and_colour.md.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any, Iterable, Mapping, Sequence

import OpenImageIO as oiio

from rvm_engine import __version__
from rvm_engine.errors import PlateError
from rvm_engine.sequences import frame_path

SOFTWARE = "rvm-bridge"
# Formats whose header keeps any string attribute (checked through OpenImageIO 3.2: EXR
# attributes, PNG text chunks). TIFF, JPEG, DPX and Targa drop rvm:* but keep the standard
# Software field, which then says ours and which output; BMP, SGI, PNM keep neither.
_KEEPS_CUSTOM_STRINGS = (".exr", ".sxr", ".mxr", ".png")
_SOFTWARE_OUTPUT = re.compile(r"\((\w+) plate\)")

# Plates this process wrote, for formats whose header cannot say so: path -> (output, stat).
_written_here: dict[str, tuple[str, tuple[int, int, int]]] = {}
_written_lock = threading.Lock()


def ours_metadata(path: str | os.PathLike[str], output: str) -> dict[str, Any]:
    """Header entries that mark ``path`` as our ``output`` plate ("alpha", "foreground", "rgba")."""
    marks: dict[str, Any] = {"rvm:software": f"{SOFTWARE} {__version__}", "rvm:output": output}
    if not os.fspath(path).lower().endswith(_KEEPS_CUSTOM_STRINGS):
        marks["Software"] = f"{SOFTWARE} {__version__} ({output} plate)"
    return marks


def _header(path: str) -> dict[str, Any] | None:
    """The first part's header attributes of ``path``; None when it is missing, empty or no image."""
    try:
        if os.path.getsize(path) == 0:
            return None
    except OSError:
        return None
    inp = oiio.ImageInput.open(path)
    if inp is None:
        oiio.geterror()
        return None
    try:
        return {a.name: a.value for a in inp.spec().extra_attribs}
    finally:
        inp.close()


def _ours(path: str, header: dict[str, Any], output: str | None) -> bool:
    software = header.get("rvm:software")
    if isinstance(software, str) and software.startswith(SOFTWARE):
        marked = header.get("rvm:output")
        return output is None or marked is None or marked == output
    software = header.get("Software")
    if isinstance(software, str) and software.startswith(SOFTWARE):
        named = _SOFTWARE_OUTPUT.search(software)
        return output is None or named is None or named.group(1) == output
    with _written_lock:
        known = _written_here.get(os.path.abspath(path))
    return known is not None and (output is None or known[0] == output) and known[1] == _identity(path)


def _identity(path: str) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1, -1)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def plate_is_ours(path: str | os.PathLike[str], output: str | None = None) -> bool:
    """True when ``path`` is a plate rvm-bridge wrote: its header's ``rvm:software`` (or, in TIFF,
    JPEG, DPX and Targa, its ``Software``) starts with "rvm-bridge" and, when it names its output,
    that is ``output`` (None accepts any). A plate in a format that keeps neither (BMP, SGI, PNM) is
    ours only when this process wrote it. False for a missing, empty or unreadable file."""
    p = os.fspath(path)
    header = _header(p)
    return header is not None and _ours(p, header, output)


def remember_written(path: str, output: str) -> None:
    """Note that this process has just written our ``output`` plate at ``path``, for the formats
    whose header cannot say whose it is (see :func:`plate_is_ours`)."""
    with _written_lock:
        _written_here[os.path.abspath(path)] = (output, _identity(path))


def plate_is_complete(path: str | os.PathLike[str], output: str | None = None) -> bool:
    """True when ``path`` exists, is not empty, OpenImageIO reads its header and it is ours (see
    :func:`plate_is_ours`; ``output`` names which of our plates it must be).

    Our plates are written atomically, so this only catches files others left broken (a copy
    killed half-way, a full disk, a hand ``touch``) or put there; a body truncated after an intact
    header is found when the plate is read.
    """
    return plate_is_ours(path, output)


def first_incomplete(frames: Sequence[int], patterns: Iterable[str] | Mapping[str, str]) -> int:
    """Index in ``frames`` of the first frame missing a complete plate for one of the output
    ``patterns`` (see :func:`plate_is_complete`); ``len(frames)`` when every plate is there.
    ``patterns`` may map output names to patterns (``{"alpha": "a.####.exr"}``) so each plate must
    also be our plate of that output."""
    named = list(patterns.items()) if isinstance(patterns, Mapping) else [(None, p) for p in patterns]
    for index, frame in enumerate(frames):
        if not all(plate_is_complete(frame_path(pattern, frame), output) for output, pattern in named):
            return index
    return len(frames)


def check_may_replace(path: str | os.PathLike[str], output: str, *, overwrite: bool = False) -> None:
    """Raise PlateError when writing our ``output`` plate to ``path`` would replace a file that is
    not ours (see :func:`plate_is_ours`): a source plate, another output, another tool's render.

    Nothing there, an empty file or a file that is no image at all (a copy killed before its
    header) may be replaced: there is no picture to lose. ``overwrite`` allows any replacement,
    for formats whose header cannot say whose they are (BMP, SGI, PNM) from an earlier run.
    """
    p = os.fspath(path)
    if overwrite or not os.path.lexists(p):
        return
    if os.path.isdir(p):
        raise PlateError(f"Cannot write the {output} plate {p}: it is a folder, not a file; choose another output pattern.")
    if not os.access(p, os.R_OK):
        raise PlateError(f"Cannot write the {output} plate {p}: a file is there that cannot be read to check whose it "
                         "is; delete it or choose another output pattern.")
    header = _header(p)
    if header is None or _ours(p, header, output):
        return
    software = header.get("rvm:software") or header.get("Software")
    marked = header.get("rvm:output")
    whose = (f"our {marked} plate" if isinstance(software, str) and software.startswith(SOFTWARE) and marked
             else "not a plate rvm-bridge wrote")
    raise PlateError(f"Cannot write the {output} plate {p}: a file is there that is {whose}, so replacing it could "
                     "destroy a source or another render; delete it or choose another output pattern.")
