"""OCIO transforms applied in place to numpy arrays by PyOpenColorIO, a band of rows per thread.

OpenImageIO's ``colorconvert``/``ociodisplay`` spend most of a frame moving pixels: at 1920x1080
float on this project's 2-core machine, the copy into an ImageBuf took 23 ms, the transform 39 ms
and the copy out 11 ms. OCIO's own CPU processor, applied in place to the array in two bands of
rows on two threads (it lets Python's lock go), takes about 10 ms for the same transform.

OpenImageIO carries its own OCIO inside. This road is taken only when the PyOpenColorIO module is
the same major.minor release: then both read a config the same way, the built-in configs are the
same, and the numbers agree bit for bit (tests/test_ocio_direct.py checks every space and display
view of the built-in config both ways). Otherwise, or with ``RVM_BRIDGE_OCIO_DIRECT=0`` (off, no, false),
:func:`cpu_processor` answers None and ``colour.PlateColour`` keeps OpenImageIO's road.
"""

from __future__ import annotations

import copy
import functools
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import OpenImageIO as oiio

_import_problem = ""
try:  # an optional speed-up: without it OpenImageIO does the same work, slower
    import PyOpenColorIO as _ocio
except Exception as exc:  # pragma: no cover - missing, or a broken wheel (OSError from its library)
    _ocio = None
    _import_problem = f"{type(exc).__name__}: {exc}"

#: ``RVM_BRIDGE_OCIO_DIRECT`` set to one of these keeps colour on OpenImageIO's road.
ENV_SWITCH = "RVM_BRIDGE_OCIO_DIRECT"
_OFF = ("0", "off", "no", "false")
#: Bands thinner than this are not worth a thread of their own.
MIN_ROWS_PER_BAND = 32
_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def why_not() -> str | None:
    """None when this road can be taken, else why not (for status lines and tests)."""
    setting = os.environ.get(ENV_SWITCH, "").strip()
    if setting.lower() in _OFF:
        return f"{ENV_SWITCH}={setting} in the environment"
    theirs = str(oiio.get_string_attribute("opencolorio_version"))
    release = ".".join(theirs.split(".")[:2])
    install = f"pip install 'opencolorio=={release}.*' for OpenImageIO's OCIO {theirs}"
    if _ocio is None:
        return f"PyOpenColorIO cannot be imported ({_import_problem}); {install}"
    try:
        ours = str(_ocio.GetVersion())
    except Exception as exc:  # a broken module: the old road still works
        return f"PyOpenColorIO gives no version ({exc}); {install}"
    if not release or ours.split(".")[:2] != theirs.split(".")[:2]:
        return f"PyOpenColorIO {ours} is not the OCIO {theirs or '(unknown)'} built into OpenImageIO; {install}"
    return None


def ocio_errors() -> tuple[type[BaseException], ...]:
    """What OCIO raises for a config or transform it cannot use (its message may not be text: a
    binary LUT's bytes arrive as UnicodeDecodeError)."""
    return (UnicodeDecodeError,) if _ocio is None else (_ocio.Exception, _ocio.ExceptionMissingFile, UnicodeDecodeError)


def describe() -> dict[str, str]:
    """Which road colour takes on the CPU, for status reports: ``{"road": "direct", "ocio": version}`` or
    ``{"road": "openimageio", "ocio": version, "why": why_not()}``."""
    why = why_not()
    if why is None:
        return {"road": "direct", "ocio": str(_ocio.GetVersion())}
    return {"road": "openimageio", "ocio": str(oiio.get_string_attribute("opencolorio_version")), "why": why}


def cpu_processor(config: str, source: str, target: str, display: str | None, view: str | None, inverse: bool) -> Any:
    """OCIO's CPU processor for what ``PlateColour.convert`` does, or None where this road is not taken.

    Without a display: ``source`` -> ``target`` (``target`` -> ``source`` with ``inverse``). With one:
    the display view transform from ``source``, inverted with ``inverse``. Raises OCIO's own exception
    when the config cannot make the transform (the caller words it)."""
    if why_not() is not None:
        return None
    stamp = config_stamp(config)
    cfg = _config(*stamp)
    # A context made from the environment now, as OpenImageIO's road makes per call: a config's
    # $SHOT-style variables follow the environment of this moment, not of the config's loading.
    # A copy of the config's own context keeps what it carries besides variables (an .ocioz
    # archive's file reader); its variables are set again as loading the config would set them.
    loaded = cfg.getCurrentContext()
    context = copy.deepcopy(loaded)
    context.setEnvironmentMode(loaded.getEnvironmentMode())
    context.clearStringVars()
    for name in cfg.getEnvironmentVarNames():
        context.setStringVar(name, cfg.getEnvironmentVarDefault(name))
    context.loadEnvironment()  # about 20 us in all
    return _processor(_Request((stamp, context.getCacheID(), source, target, display, view, inverse), cfg, context))


def config_stamp(name: str) -> tuple[Any, ...]:
    """A config's cache key: a file's absolute path with what says it changed (device, inode,
    modification and change times, size: an edit, a file renamed over it, a link pointed elsewhere),
    so an edited config is read again, as OpenImageIO's road does; an ``ocio://`` name as it is."""
    if name.startswith("ocio://"):
        return (name,)
    path = os.path.abspath(name)
    try:
        info = os.stat(path)
    except (OSError, ValueError):  # OCIO says what is wrong when it tries to read it
        return (path,)
    return path, info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns, info.st_size


class _Request:
    """A processor's cache key; the config and context it is made from ride along (the key names them)."""

    __slots__ = ("key", "cfg", "context")

    def __init__(self, key: tuple[Any, ...], cfg: Any, context: Any) -> None:
        self.key, self.cfg, self.context = key, cfg, context

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Request) and other.key == self.key


@functools.lru_cache(maxsize=32)
def _processor(request: _Request) -> Any:
    source, target, display, view, inverse = request.key[2:]
    if display is None or view is None:
        src, dst = (target, source) if inverse else (source, target)
        processor = request.cfg.getProcessor(request.context, src, dst)
    else:
        transform = _ocio.DisplayViewTransform(src=source, display=display, view=view)
        direction = _ocio.TransformDirection
        transform.setDirection(direction.TRANSFORM_DIR_INVERSE if inverse else direction.TRANSFORM_DIR_FORWARD)
        processor = request.cfg.getProcessor(request.context, transform, direction.TRANSFORM_DIR_FORWARD)
    return processor.getDefaultCPUProcessor()


@functools.lru_cache(maxsize=8)
def _config(path: str, *changed: int) -> Any:
    return _ocio.Config.CreateFromFile(path)


def in_place_problem(rgb: Any) -> str | None:
    """Why ``rgb`` cannot be converted in place (what it needs, and what it is), or None. Writing
    into read-only memory would change what its owner holds, or kill the process (a read-only map)."""
    if not isinstance(rgb, np.ndarray):
        return f"C-contiguous float32 [H, W, 3] pixels, not {type(rgb).__name__}"
    if rgb.dtype != np.float32 or rgb.ndim != 3 or rgb.shape[2] != 3 or not rgb.flags.c_contiguous:
        layout = "" if rgb.flags.c_contiguous else " not laid out in one block"
        return f"C-contiguous float32 [H, W, 3] pixels, not {rgb.dtype} {list(rgb.shape)}{layout}"
    if not rgb.flags.writeable:
        return "writable pixels; these are read-only"
    return None


def apply_in_place(processor: Any, rgb: np.ndarray) -> None:
    """Apply ``processor`` to C-contiguous float32 ``[H, W, 3]`` ``rgb`` in place, in bands of rows on
    as many threads as OpenImageIO's ``threads`` attribute (the calling thread takes the first band)."""
    problem = in_place_problem(rgb)
    if problem:
        raise ValueError(f"OCIO converts in place and needs {problem}.")
    rows = rgb.shape[0]
    bands = max(1, min(int(oiio.get_int_attribute("threads", 1)), rows // MIN_ROWS_PER_BAND))
    edges = np.linspace(0, rows, bands + 1).astype(int)
    waiting: list[Future[None]] = []
    mine = [(edges[0], edges[1])]
    if bands > 1:
        pool = _thread_pool()
        for a, b in zip(edges[1:-1], edges[2:]):
            try:
                waiting.append(pool.submit(_apply, processor, rgb[a:b]))
            except RuntimeError:  # the interpreter is shutting down: no new threads, do it here
                mine.append((a, b))
    try:
        for a, b in mine:
            _apply(processor, rgb[a:b])
    finally:
        for future in waiting:  # wait for every band before the array can go, even after an error
            future.exception()
    for future in waiting:
        future.result()


def _apply(processor: Any, band: np.ndarray) -> None:
    if band.size:
        processor.apply(_ocio.PackedImageDesc(band, band.shape[1], band.shape[0], 3))


def _thread_pool() -> ThreadPoolExecutor:
    """One pool per process (a forked child makes its own: the parent's threads are not in it)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            workers = max(2, os.cpu_count() or 2)
            _pool = (os.getpid(), ThreadPoolExecutor(workers, thread_name_prefix="rvm-ocio"))
        return _pool[1]


def _forget_pool_in_child() -> None:
    """After fork: a fresh lock (the parent's may have been held by a thread that is not here) and no pool."""
    global _pool, _pool_lock
    _pool_lock = threading.Lock()
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)
