"""OCIO transforms applied in place to numpy arrays by PyOpenColorIO, a band of rows per thread.

OpenImageIO's ``colorconvert``/``ociodisplay`` spend most of a frame moving pixels: at 1920x1080
float on this project's 2-core machine, the copy into an ImageBuf took 23 ms, the transform 39 ms
and the copy out 11 ms. OCIO's own CPU processor, applied in place to the array in two bands of
rows on two threads (it lets Python's lock go), takes about 10 ms for the same transform.

OpenImageIO carries its own OCIO inside. This road is taken only when the PyOpenColorIO module is
the same major.minor release: then both read a config the same way, the built-in configs are the
same, and the numbers agree bit for bit (tests/test_colour.py checks every space and display view
of the built-in config both ways). Otherwise, or with ``RVM_BRIDGE_OCIO_DIRECT=0`` in the environment,
:func:`cpu_processor` answers None and ``colour.PlateColour`` keeps OpenImageIO's road.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import OpenImageIO as oiio

try:  # an optional speed-up: without it OpenImageIO does the same work, slower
    import PyOpenColorIO as _ocio
except ImportError:  # pragma: no cover - exercised where the wheel is missing
    _ocio = None

#: Bands thinner than this are not worth a thread of their own.
MIN_ROWS_PER_BAND = 32
_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def why_not() -> str | None:
    """None when this road can be taken, else why not (for status lines and tests)."""
    if os.environ.get("RVM_BRIDGE_OCIO_DIRECT", "1").strip() == "0":
        return "RVM_BRIDGE_OCIO_DIRECT=0 in the environment"
    if _ocio is None:
        return "PyOpenColorIO is not installed (pip install 'opencolorio==<OpenImageIO's OCIO version>')"
    ours = str(_ocio.GetVersion())
    theirs = str(oiio.get_string_attribute("opencolorio_version"))
    if ours.split(".")[:2] != theirs.split(".")[:2]:
        return f"PyOpenColorIO {ours} is not the OCIO {theirs} built into OpenImageIO"
    return None


def describe() -> dict[str, str]:
    """Which road colour takes on the CPU, for status reports: ``{"road": "direct", "ocio": version}`` or
    ``{"road": "openimageio", "ocio": version, "why": why_not()}``."""
    ocio = str(oiio.get_string_attribute("opencolorio_version"))
    why = why_not()
    if why is None:
        return {"road": "direct", "ocio": str(_ocio.GetVersion())}
    return {"road": "openimageio", "ocio": ocio, "why": why}


def cpu_processor(config: str, source: str, target: str, display: str | None, view: str | None, inverse: bool) -> Any:
    """OCIO's CPU processor for what ``PlateColour.convert`` does, or None where this road is not taken.

    Without a display: ``source`` -> ``target`` (``target`` -> ``source`` with ``inverse``). With one:
    the display view transform from ``source``, inverted with ``inverse``. Raises OCIO's own exception
    when the config cannot make the transform (the caller words it)."""
    if why_not() is not None:
        return None
    return _cached_processor(config, source, target, display, view, inverse)


@functools.lru_cache(maxsize=32)
def _cached_processor(config: str, source: str, target: str, display: str | None, view: str | None, inverse: bool) -> Any:
    cfg = _config(config)
    if display is None or view is None:
        src, dst = (target, source) if inverse else (source, target)
        processor = cfg.getProcessor(src, dst)
    else:
        transform = _ocio.DisplayViewTransform(src=source, display=display, view=view)
        direction = _ocio.TransformDirection
        transform.setDirection(direction.TRANSFORM_DIR_INVERSE if inverse else direction.TRANSFORM_DIR_FORWARD)
        processor = cfg.getProcessor(transform)
    return processor.getDefaultCPUProcessor()


@functools.lru_cache(maxsize=8)
def _config(name: str) -> Any:
    return _ocio.Config.CreateFromFile(name)


def apply_in_place(processor: Any, rgb: np.ndarray) -> None:
    """Apply ``processor`` to C-contiguous float32 ``[H, W, 3]`` ``rgb`` in place, in bands of rows on
    as many threads as OpenImageIO's ``threads`` attribute (the calling thread takes the first band)."""
    if rgb.dtype != np.float32 or rgb.ndim != 3 or rgb.shape[2] != 3 or not rgb.flags.c_contiguous:
        raise ValueError(f"OCIO needs C-contiguous float32 [H, W, 3] pixels, not {rgb.dtype} {rgb.shape}.")
    rows = rgb.shape[0]
    bands = max(1, min(int(oiio.get_int_attribute("threads", 1)), rows // MIN_ROWS_PER_BAND))
    edges = np.linspace(0, rows, bands + 1).astype(int)
    pool = _thread_pool() if bands > 1 else None
    waiting: list[Future[None]] = []
    if pool is not None:
        waiting = [pool.submit(_apply, processor, rgb[a:b]) for a, b in zip(edges[1:-1], edges[2:])]
    try:
        _apply(processor, rgb[edges[0] : edges[1]])
    finally:
        for future in waiting:  # wait for every band before the array can go, even after an error
            future.exception()
    for future in waiting:
        future.result()


def _apply(processor: Any, band: np.ndarray) -> None:
    if band.shape[0]:
        processor.apply(_ocio.PackedImageDesc(band, band.shape[1], band.shape[0], 3))


def _thread_pool() -> ThreadPoolExecutor:
    """One pool per process (a forked child makes its own: the parent's threads are not in it)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            workers = max(2, os.cpu_count() or 2)
            _pool = (os.getpid(), ThreadPoolExecutor(workers, thread_name_prefix="rvm-ocio"))
        return _pool[1]
