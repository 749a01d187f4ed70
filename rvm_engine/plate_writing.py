"""Writing matted plates through OpenImageIO: the format's pixel type, EXR compression, the
source's shot metadata kept, and the file written atomically and durably.

Writing goes to a temporary file beside the target, flushed to the disk and renamed into
place, so a failed frame or a crash never leaves a half-written plate (the temporary files
themselves are ``temp_plates``). See docs/plates_and_colour.md.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import OpenImageIO as oiio

from rvm_engine.errors import PlateError
from rvm_engine.plate_ownership import remember_written
from rvm_engine.plates import Plate, _oiio_message
from rvm_engine.temp_plates import clean_stray_temps as clean_stray_temps  # one door for renders and the server
from rvm_engine.temp_plates import make_durable, sync_folder, temp_path

#: EXR compressions accepted by :func:`write_plate` ("htj2k" means "htj2k256").
EXR_COMPRESSIONS = tuple("none rle zips zip piz pxr24 b44 b44a dwaa dwab htj2k htj2k256 htj2k32".split())
_LEVELLED = {"zip", "zips", "dwaa", "dwab"}  # take an optional ":level", e.g. "dwaa:45"
_HTJ2K = {"htj2k", "htj2k256", "htj2k32"}

# Header entries that describe one file's layout or encoding, not the shot: never copied
# from a source plate onto a new one.
_LAYOUT_KEYS = set(
    "compression PixelAspectRatio planarconfig channelformats ICCProfile BitsPerSample chunkCount version "
    "tiles type name dataWindow displayWindow lineOrder maxSamplesPerPixel view multiView".split()
)
_LAYOUT_PREFIXES = ("oiio:", "openexr:", "tiff:", "png:", "jpeg:", "dpx:", "ICCProfile:", "exr:")


def check_compression(compression: str) -> str:
    """Return the EXR compression name OpenImageIO expects for ``compression``.

    Accepts the names in ``EXR_COMPRESSIONS`` (any case) and ``name:level`` for zip, zips,
    dwaa and dwab. Raises PlateError for an unknown name, a bad level, or HTJ2K when the
    OpenEXR library in use is older than 3.4.
    """
    text = compression.strip().lower()
    name, _, level = text.partition(":")
    if name not in EXR_COMPRESSIONS or (level and name not in _LEVELLED):
        raise PlateError(
            f"Unknown EXR compression {compression!r}; choose one of "
            f"{', '.join(EXR_COMPRESSIONS)} (zip, zips, dwaa, dwab also take ':level')."
        )
    if level and not level.isdigit():
        raise PlateError(f"EXR compression level in {compression!r} must be a whole number.")
    if name in _HTJ2K:
        if not _openexr_has_htj2k():
            raise PlateError(
                f"EXR compression {compression!r} needs OpenEXR 3.4 or newer; this "
                "OpenImageIO uses an older one. Choose zip, piz or dwaa instead."
            )
        name = "htj2k256" if name == "htj2k" else name
    return f"{name}:{level}" if level else name


def _openexr_has_htj2k() -> bool:
    libs = oiio.get_string_attribute("library_list")
    match = re.search(r"OpenEXR (\d+)\.(\d+)", libs)
    return match is not None and (int(match.group(1)), int(match.group(2))) >= (3, 4)


def write_plate(
    path: str | os.PathLike[str],
    pixels: np.ndarray,
    channels: list[str],
    *,
    like: Plate | None = None,
    metadata: dict[str, Any] | None = None,
    pixel_type: str = "half",
    compression: str = "zip",
) -> None:
    """Write ``pixels`` (float ``[H, W, C]``, or ``[H, W]`` for one channel) to ``path``.

    The format follows the extension. EXR is written ``half`` or ``float`` with
    ``compression``; 8/16-bit formats (PNG, JPEG, DPX, TIFF with ``uint8``/``uint16``) get
    values clamped to 0..1 and rounded to the nearest code; with ``half``/``float`` asked
    for a format that cannot hold them, PNG and JPEG are written 8-bit and DPX 16-bit.
    ``like`` gives the display window (written as both display and data window), the
    pixel aspect and the shot metadata (timecode, frame rate, camera, comments ...) to
    keep; ``metadata`` entries are added on top (e.g. ``"rvm:model"``).

    The file appears complete or not at all: written to a hidden temporary file in the
    same folder (named for this host and process, see ``temp_plates``), flushed to the disk
    (fsync), renamed over ``path``, and the folder flushed too; the temporary file is removed
    on failure. This function replaces what is at ``path`` whatever it is: callers writing
    renders check :func:`check_may_replace` first.

    Raises PlateError when the folder is missing or not writable, the extension is
    unknown, the arguments do not fit (channel count, size differing from ``like``'s
    display window, pixel type, compression), OpenImageIO fails to write, or the plate at
    ``path`` is held open by another program (Windows, SMB shares).
    """
    p = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(folder):
        raise PlateError(
            f"Cannot write plate {p}: the folder {folder} does not exist. Create it or choose another output path."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PlateError(
            f"Cannot write plate {p}: the folder {folder} is not writable. Fix its "
            "permissions or choose another output folder."
        )
    arr = np.asarray(pixels)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] != len(channels) or arr.shape[2] == 0:
        raise PlateError(
            f"Cannot write plate {p}: pixels of shape {arr.shape} do not match the "
            f"{len(channels)} channel names {channels}."
        )
    height, width = int(arr.shape[0]), int(arr.shape[1])
    if like is not None:
        window = like.display_window
        if (window[3], window[2]) != (height, width):
            raise PlateError(
                f"Cannot write plate {p}: pixels are {width}x{height} but the source plate's "
                f"display window is {window[2]}x{window[3]}."
            )
    else:
        window = (0, 0, width, height)

    oiio.geterror()
    out = oiio.ImageOutput.create(p)
    if out is None:
        oiio.geterror()  # consumed: our message says it better
        raise PlateError(
            f"Cannot write plate {p}: OpenImageIO has no writer for this extension. Use .exr, .tif, .png, .jpg or .dpx."
        )
    fmt = out.format_name()
    if len(channels) > 3 and not out.supports("alpha") and "A" in channels:
        raise PlateError(f"Cannot write plate {p}: {fmt} cannot hold alpha; use EXR, PNG or TIFF.")
    stored, data = _encode(p, fmt, arr, pixel_type)
    spec = oiio.ImageSpec(width, height, len(channels), stored)
    spec.channelnames = tuple(channels)
    if "A" in channels:
        spec.alpha_channel = channels.index("A")
    spec.x, spec.y = window[0], window[1]
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = window
    spec.attribute("PixelAspectRatio", float(like.pixel_aspect if like else 1.0))
    if fmt == "openexr":
        spec.attribute("compression", check_compression(compression))
    _add_metadata(spec, like, metadata or {})
    _write_atomically(p, out, spec, data)


def _encode(path: str, fmt: str, arr: np.ndarray, pixel_type: str) -> tuple[str, np.ndarray]:
    """Choose the stored type for ``fmt`` and the array handed to OIIO."""
    if pixel_type not in ("half", "float", "uint8", "uint16"):
        raise PlateError(f"Unknown pixel_type {pixel_type!r} for {path}; use half, float, uint8 or uint16.")
    if fmt == "openexr" and pixel_type not in ("half", "float"):
        raise PlateError(f"EXR plate {path} must be half or float, not {pixel_type}.")
    if fmt in ("openexr", "tiff") and pixel_type in ("half", "float"):
        data = np.asarray(arr, dtype=np.float32)
        if pixel_type == "half":  # beyond half's range would turn into Inf
            data = np.clip(data, -65504.0, 65504.0)
        return pixel_type, np.ascontiguousarray(data)
    if pixel_type in ("half", "float"):
        pixel_type = "uint16" if fmt == "dpx" else "uint8"
    if fmt == "jpeg":
        pixel_type = "uint8"
    top = 255.0 if pixel_type == "uint8" else 65535.0
    values = np.nan_to_num(np.asarray(arr, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    codes = np.rint(np.clip(values, 0.0, 1.0) * top)
    return pixel_type, np.ascontiguousarray(codes.astype(np.uint8 if top == 255.0 else np.uint16))


def _keep_from_source(name: str) -> bool:
    return name not in _LAYOUT_KEYS and not name.startswith(_LAYOUT_PREFIXES)


def _add_metadata(spec: Any, like: Plate | None, extra: dict[str, Any]) -> None:
    types = dict(like.metadata_types) if like is not None else {}
    if like is not None:
        for name, value in like.metadata.items():
            if _keep_from_source(name):
                _set_attribute(spec, name, value, types.get(name))
    for name, value in extra.items():
        _set_attribute(spec, name, value, types.get(name))


def _set_attribute(spec: Any, name: str, value: Any, type_name: str | None) -> None:
    if type_name:
        desc = oiio.TypeDesc(type_name)
        if desc != oiio.UNKNOWN:
            try:
                spec.attribute(name, desc, value)
                return
            except (TypeError, ValueError):
                pass  # the caller's value no longer fits the source type: infer below
    if isinstance(value, bool):
        spec.attribute(name, int(value))
    elif isinstance(value, (int, float, str)):
        spec.attribute(name, value)
    elif isinstance(value, (np.integer, np.floating)):
        spec.attribute(name, value.item())
    else:
        spec.attribute(name, str(value))


def _write_atomically(path: str, out: Any, spec: Any, data: np.ndarray) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    temp = temp_path(path)
    try:
        if not out.open(temp, spec):
            raise PlateError(f"Cannot write plate {path}: {_oiio_message(out)}.")
        if not out.write_image(data):
            raise PlateError(f"Cannot write plate {path}: {_oiio_message(out)}.")
        if not out.close():
            raise PlateError(f"Cannot finish plate {path}: {_oiio_message(out)}.")
        # The bytes reach the disk before the name does, so a power cut leaves the old plate or the
        # new one, never a plate-sized hole of zeros.
        make_durable(temp)
        try:
            os.replace(temp, path)
        except PermissionError as exc:
            raise PlateError(
                f"Cannot replace plate {path}: it is held open by another program (a viewer or a Nuke "
                "Read?); close it and render again. (If nothing holds it, check that you may replace it.)"
            ) from exc
        sync_folder(folder)
    except OSError as exc:
        _discard(out, temp)
        raise PlateError(f"Cannot write plate {path}: {exc}. Check free space and permissions.") from exc
    except BaseException:
        _discard(out, temp)
        raise
    output = spec.get_string_attribute("rvm:output")
    if output:
        remember_written(path, output)


def _discard(out: Any, temp: str) -> None:
    try:
        out.close()
    finally:
        try:
            os.remove(temp)
        except OSError:
            pass  # never made (a name too long, a folder gone): the error that brought us here says why
