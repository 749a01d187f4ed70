"""Plates on disk: read one frame's R, G, B and write matted plates, through OpenImageIO.

A plate is always handed over on its *display window* (the frame the compositor sees); a
smaller or offset data window is placed inside it with zeros around, overscan is cropped.
Writing goes to a temporary file beside the target, flushed to the disk and renamed into
place, so a failed frame or a crash never leaves a half-written plate. Plates we write say
so in their header (``rvm:software``, ``rvm:output``), which is how a render tells its own
plates, safe to replace or to resume after, from anybody else's files. See
docs/plates_and_colour.md.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import OpenImageIO as oiio

from rvm_engine import __version__
from rvm_engine.errors import PlateError
from rvm_engine.sequences import frame_path
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

_COLOUR_ROLES = {"r": "R", "red": "R", "g": "G", "green": "G", "b": "B", "blue": "B"}
_PREFERRED_LAYERS = ("", "rgba", "rgb", "beauty")  # "" is plain R, G, B


@dataclass
class Plate:
    """One frame of a plate, R, G, B over the display window.

    ``pixels`` is float32 ``[height, width, 3]`` in the file's own values (no colour
    conversion); ``display_window`` and ``data_window`` are ``(x, y, width, height)`` as in
    the file; ``channels`` are the file's names of the channels read (e.g. ``beauty.R``).
    """

    pixels: np.ndarray
    channels: list[str]
    display_window: tuple[int, int, int, int]
    pixel_aspect: float = 1.0
    metadata: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    layer: str | None = None  # None = plain R, G, B
    data_window: tuple[int, int, int, int] | None = None
    file_channels: list[str] = field(default_factory=list)
    format_name: str = ""  # OIIO's name: "openexr", "png", "tiff", "dpx", "jpeg", ...
    pixel_type: str = "float"  # stored type of the channels read: "half", "uint8", ...
    metadata_types: dict[str, str] = field(default_factory=dict)  # OIIO type names

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


# ---------------------------------------------------------------- reading


def check_plate_file(path: str) -> None:
    """Raise PlateError unless ``path`` is a regular file. OpenImageIO opens a FIFO or a device
    with Python's lock held, so one named pipe given as a plate would hang every thread."""
    if not os.path.isfile(path):
        what = ("is a folder, not a plate" if os.path.isdir(path) else
                "is not a regular file (a named pipe, socket or device)" if os.path.exists(path) else "does not exist")
        raise PlateError(f"Plate {path} {what}; check the path and frame number.")


def read_plate(path: str | os.PathLike[str], *, layer: str | None = None, half: bool = False) -> Plate:
    """Read one frame's R, G, B from ``path`` (EXR, DPX, TIFF, PNG, JPEG, ...).

    ``layer`` picks an EXR layer or part (``"beauty"`` reads ``beauty.R/G/B``; ``"rgba"``
    also accepts plain ``R, G, B``). With no layer: plain R, G, B, else the ``rgba``,
    ``rgb`` or ``beauty`` layer, else the only layer holding R, G, B. Channel names match
    ``R``/``r``/``red`` (and G, B alike); other channels are ignored.

    ``half``: channels stored as half stay half (``float16`` pixels; every half is exactly a
    float32, so nothing changes but who converts): reading is about a fifth cheaper and the frame
    half the bytes to move, for the torch colour road, which converts on its device. Channels
    stored otherwise are read as ``float32`` either way.

    Raises PlateError when the file is missing, unreadable, truncated or corrupt, when it
    has no complete R, G, B (e.g. a 1-channel matte), or when the choice of layer is
    ambiguous or the named layer does not exist; the message names the file and lists the
    channels and layers found.
    """
    p = os.fspath(path)
    check_plate_file(p)
    oiio.geterror()  # drop stale messages so a failure reports this file's own
    inp = oiio.ImageInput.open(p)
    if inp is None:
        raise PlateError(
            f"Cannot read plate {p}: {_oiio_message()}. The file is corrupt, truncated "
            "or not an image format OpenImageIO reads; re-render or re-copy it."
        )
    try:
        specs = _subimage_specs(inp)
        subimage, indices, chosen = _select_rgb(p, specs, layer)
        spec = specs[subimage]
        if spec.deep:
            raise PlateError(f"Plate {p} is a deep image; flatten it to a regular EXR first.")
        lo, hi = min(indices), max(indices) + 1
        stored = spec.channelformats or [spec.format] * spec.nchannels
        as_half = half and all(stored[i] == oiio.HALF for i in range(lo, hi))
        data = inp.read_image(subimage, 0, lo, hi, oiio.HALF if as_half else oiio.FLOAT)
        if data is None or inp.has_error:
            raise PlateError(
                f"Cannot read the pixels of plate {p}: {_oiio_message(inp)}. The file is "
                "probably truncated or corrupt; re-render or re-copy it."
            )
        data = np.asarray(data, dtype=np.float16 if as_half else np.float32).reshape(spec.height, spec.width, hi - lo)
        # Plain R, G, B in file order (most plates) need no reordering copy.
        rgb = data if indices == list(range(lo, hi)) else data[..., [i - lo for i in indices]]
        format_name = inp.format_name()
    finally:
        inp.close()

    metadata = {a.name: a.value for a in spec.extra_attribs}
    types = {a.name: str(a.type) for a in spec.extra_attribs}
    data_window = (spec.x, spec.y, spec.width, spec.height)
    display = (spec.full_x, spec.full_y, spec.full_width, spec.full_height)
    if display[2] <= 0 or display[3] <= 0:  # formats without a display window
        display = data_window
    return Plate(
        pixels=_over_display_window(rgb, data_window, display),
        channels=[spec.channelnames[i] for i in indices],
        display_window=display,
        pixel_aspect=float(spec.get_float_attribute("PixelAspectRatio", 1.0)) or 1.0,
        metadata=metadata,
        path=p,
        layer=chosen or None,
        data_window=data_window,
        file_channels=[n for s in specs for n in s.channelnames],
        format_name=format_name,
        pixel_type=str(spec.channelformat(indices[0])),
        metadata_types=types,
    )


def _oiio_message(obj: Any = None) -> str:
    text = (obj.geterror() if obj is not None else "") or oiio.geterror()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "unknown OpenImageIO error"


def _subimage_specs(inp: Any) -> list[Any]:
    specs: list[Any] = []
    while inp.seek_subimage(len(specs), 0):
        specs.append(oiio.ImageSpec(inp.spec()))
    inp.geterror()  # the failed seek past the last subimage is not an error of the file
    return specs


def _select_rgb(path: str, specs: list[Any], layer: str | None) -> tuple[int, list[int], str]:
    """Return (subimage, [R, G, B] channel indices, layer name) for the chosen layer."""
    found: dict[str, tuple[int, dict[str, int]]] = {}
    for s, spec in enumerate(specs):
        part = spec.get_string_attribute("oiio:subimagename") if len(specs) > 1 else ""
        for c, name in enumerate(spec.channelnames):
            prefix, _, suffix = name.rpartition(".")
            role = _COLOUR_ROLES.get(suffix.lower())
            if role is None:
                continue
            # Plain R, G, B of a later EXR part belong to that part's name.
            key = prefix if prefix else ("" if s == 0 else part)
            sub, roles = found.setdefault(key, (s, {}))
            if sub == s:
                roles.setdefault(role, c)
    complete = {k: v for k, v in found.items() if len(v[1]) == 3}
    if complete and "" in complete and len(specs) > 1:
        part0 = specs[0].get_string_attribute("oiio:subimagename")
        if part0 and part0 not in complete:  # the first part answers to its name too
            complete[part0] = complete[""]

    def pick(key: str) -> tuple[int, list[int], str]:
        sub, roles = complete[key]
        return sub, [roles["R"], roles["G"], roles["B"]], key

    names = ", ".join(repr(k) if k else "plain R,G,B" for k in complete) or "none"
    if not complete:
        raise PlateError(_no_rgb_message(path, specs))
    if layer is not None:
        wanted = [layer] + (["", "rgba"] if layer.lower() in ("rgba", "") else [])
        for want in wanted:
            for key in complete:
                if key.lower() == want.lower():
                    return pick(key)
        raise PlateError(
            f"Plate {path} has no layer {layer!r} with R, G, B. Layers with R, G, B: "
            f"{names}. Choose one of those (layer=...)."
        )
    for want in _PREFERRED_LAYERS:
        for key in complete:
            if key.lower() == want:
                return pick(key)
    if len(complete) == 1:
        return pick(next(iter(complete)))
    raise PlateError(
        f"Plate {path} has several layers with R, G, B and none is plain RGB, 'rgba' or "
        f"'beauty': {names}. Choose one with layer=..."
    )


def _no_rgb_message(path: str, specs: list[Any]) -> str:
    channels = [n for s in specs for n in s.channelnames]
    shown = ", ".join(channels[:24]) + (f", ... ({len(channels)} in all)" if len(channels) > 24 else "")
    if len(channels) == 1:
        return (
            f"Plate {path} has a single channel ({shown}); it looks like a matte or a "
            "luminance plate. RVM mattes colour plates: give it the plate with R, G and B."
        )
    return (
        f"Plate {path} has no complete R, G, B channels (channels found: {shown}). "
        "Give a colour plate, or name the layer holding R, G, B with layer=..."
    )


def _over_display_window(
    rgb: np.ndarray, data: tuple[int, int, int, int], display: tuple[int, int, int, int]
) -> np.ndarray:
    """Place data-window pixels inside the display window; zeros elsewhere, overscan cropped.
    Half pixels stay half (``read_plate(half=True)``), all others become float32."""
    dtype = np.float16 if rgb.dtype == np.float16 else np.float32
    if data == display:
        return np.ascontiguousarray(rgb, dtype=dtype)
    dx, dy, dw, dh = data
    fx, fy, fw, fh = display
    out = np.zeros((fh, fw, rgb.shape[2]), dtype=dtype)
    x0, x1 = max(dx, fx), min(dx + dw, fx + fw)
    y0, y1 = max(dy, fy), min(dy + dh, fy + fh)
    if x0 < x1 and y0 < y1:
        out[y0 - fy : y1 - fy, x0 - fx : x1 - fx] = rgb[y0 - dy : y1 - dy, x0 - dx : x1 - dx]
    return out


# ---------------------------------------------------------------- writing


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
        with _written_lock:
            _written_here[os.path.abspath(path)] = (output, _identity(path))


def _discard(out: Any, temp: str) -> None:
    try:
        out.close()
    finally:
        try:
            os.remove(temp)
        except OSError:
            pass  # never made (a name too long, a folder gone): the error that brought us here says why
