"""Plates on disk: what a plate is, and reading one frame's R, G, B through OpenImageIO.

A plate is always handed over on its *display window* (the frame the compositor sees); a
smaller or offset data window is placed inside it with zeros around, overscan is cropped.
Writing plates is ``plate_writing``; telling our plates from anybody else's files is
``plate_ownership``. See docs/plates_and_colour.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import OpenImageIO as oiio

from rvm_engine.errors import PlateError

_COLOUR_ROLES = {"r": "R", "red": "R", "g": "G", "green": "G", "b": "B", "blue": "B"}
_PREFERRED_LAYERS = ("", "rgba", "rgb", "beauty")  # "" is plain R, G, B


@dataclass
class Plate:
    """One frame of a plate, R, G, B over the display window.

    ``pixels`` is float32 ``[height, width, 3]`` in the file's own values (no colour
    conversion), or float16 when read with ``read_plate(half=True)`` from half channels (the torch
    colour road, which converts on its device; ``prepare_plate`` makes float32 of it otherwise); ``display_window`` and ``data_window`` are ``(x, y, width, height)`` as in
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
    float32, so nothing changes but who converts): reading is a fifth to a third cheaper and the frame
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

