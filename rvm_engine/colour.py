"""Colour between a plate's own space and the model's display-referred sRGB 0..1, via OCIO.

RVM was trained on sRGB-encoded images in 0..1. A plate (scene-linear Rec.709, ACEScg, or
an sRGB-encoded PNG) is converted into that space through OpenColorIO as bundled with
OpenImageIO: the built-in config (``ocio://default``) or the user's ``$OCIO``. The model's
foreground comes back as a difference added to the original plate, so what the model did
not touch keeps its exact values, highlights above 1.0 included. Alpha is coverage and is
never colour-converted. See docs/plates_and_colour.md for the maths and the defaults.
"""

from __future__ import annotations

import difflib
import functools
import os
from typing import Any

import numpy as np
import OpenImageIO as oiio

from rvm_engine import ocio_direct
from rvm_engine.errors import ColourError, FrameInputError

BUILTIN_CONFIG = "ocio://default"
SCENE_LINEAR_REC709 = "Linear Rec.709 (sRGB)"
SRGB_ENCODED = "sRGB Encoded Rec.709 (sRGB)"
#: +Inf in a plate becomes this (the largest half float), NaN and -Inf become 0.
SAFE_MAX = 65504.0
#: Display-view values are capped here before inverting: the ACES SDR view's inverse is
#: so steep near 1.0 (0.99 -> 34, 1.0 -> 128 scene-linear) that tiny model changes there
#: would become huge linear ones; above the cap the plate's own highlight is kept.
DISPLAY_INVERSE_CAP = 0.95

# Names the model's sRGB space goes by in common configs (built-in, ACES studio, Nuke).
_MODEL_SPACE_NAMES = (SRGB_ENCODED, "srgb_tx", "sRGB - Texture", "Utility - sRGB - Texture", "srgb_texture", "sRGB")
_LINEAR_EXTENSIONS = {".exr", ".sxr", ".mxr", ".hdr", ".rgbe", ".pfm"}
_FLOAT_TYPES = {"half", "float", "double"}


def active_config(config: str | None = None) -> str:
    """The OCIO config in use: ``config``, else ``$OCIO``, else OIIO's built-in config."""
    return config or os.environ.get("OCIO") or BUILTIN_CONFIG


def default_colour_space(path: str | os.PathLike[str], pixel_type: str | None = None) -> str:
    """The colour space a plate is assumed to be in when none is given.

    EXR (and HDR/PFM) plates, and any still plate stored as half or float (e.g. a float
    TIFF, when ``pixel_type`` is given), are scene-linear Rec.709; 8/16-bit images (PNG,
    JPEG, DPX, TIFF) and videos are sRGB-encoded. Names are the built-in config's.
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext in _LINEAR_EXTENSIONS or (pixel_type or "").lower() in _FLOAT_TYPES:
        return SCENE_LINEAR_REC709
    return SRGB_ENCODED


def colour_space_names(config: str | None = None) -> list[str]:
    """Every colour space name in the config (for menus and error messages)."""
    return list(_load_config(active_config(config)).getColorSpaceNames())


def display_views(config: str | None = None) -> list[str]:
    """Every ``"display/view"`` pair in the config, usable as ``to_model="display:..."``."""
    cfg = _load_config(active_config(config))
    return [f"{d}/{v}" for d in cfg.getDisplayNames() for v in cfg.getViewNames(d)]


class PlateColour:
    """Converts one clip's plates to the model's space and its foreground back.

    ``colour_space`` is a colour space name, alias or role of the config (``config``, else
    ``$OCIO``, else the built-in one). ``to_model`` is ``"srgb"`` (the plain sRGB curve,
    clamped to 0..1), ``"display"`` (the config's default display and view; in the
    built-in config ``sRGB - Display`` / ``ACES 2.0 - SDR 100 nits (Rec.709)``, which rolls
    highlights off like graded footage), or ``"display:<display>/<view>"``.

    Raises ColourError for an unreadable config, an unknown space (listing close names),
    an unknown display/view, or a config without an sRGB-encoded space for the model.
    """

    def __init__(self, colour_space: str, *, config: str | None = None, to_model: str = "srgb") -> None:
        self.config = active_config(config)
        cfg = _load_config(self.config)
        self.colour_space = _resolve_space(cfg, colour_space, self.config)
        self.model_space = _model_space(cfg, self.config)
        self.display, self.view = _parse_to_model(cfg, to_model)
        self.to_model_name = "srgb" if self.display is None else f"display:{self.display}/{self.view}"
        # An sRGB plate (PNG, JPEG, video) is already in the model's space: skip OCIO.
        self.identity = self.display is None and bool(cfg.equivalent(self.colour_space, self.model_space))

    def __repr__(self) -> str:
        return f"PlateColour({self.colour_space!r}, config={self.config!r}, to_model={self.to_model_name!r})"

    def to_model(self, rgb: np.ndarray) -> tuple[np.ndarray, int]:
        """Plate RGB (float ``[H, W, 3]``, plate space) -> (model RGB in 0..1, bad pixels).

        Pixels holding NaN or Inf in any channel are counted first, then made safe
        (NaN and -Inf -> 0, +Inf -> ``SAFE_MAX``); the result is clamped to 0..1 and never
        holds NaN. Raises FrameInputError for a wrong shape, ColourError if OCIO fails.
        """
        safe, bad = make_finite(_check_rgb(rgb, "plate"))
        # fmax before fmin: NaN -> 0, +Inf -> 1, -Inf -> 0, all else clamped to 0..1 (in place on
        # the converted copy; an identity plate is the caller's, so fmax makes the copy).
        if self.identity:
            out = np.fmax(safe, 0.0)
        else:
            out = self.convert(safe, inverse=False)
            np.fmax(out, 0.0, out=out)
        return np.fmin(out, 1.0, out=out), bad

    def foreground_to_plate(
        self,
        fgr_model: np.ndarray,
        model_rgb: np.ndarray,
        plate_rgb: np.ndarray,
        *,
        alpha: np.ndarray | None = None,
    ) -> np.ndarray:
        """The model's foreground in the plate's space: plate + lin(fgr) - lin(model input).

        ``fgr_model`` is the network's foreground and ``model_rgb`` the input it was given
        (both 0..1, model space); ``plate_rgb`` the plate as read. ``lin`` is the inverse
        of the plate-to-model transform. Where the model left a channel unchanged the plate
        value is returned exactly (highlights above 1.0 included); a correction that is
        not finite (an undefined inverse) is dropped. With ``alpha`` (``[H, W]``) only the
        rectangle around alpha > 0 is converted (outside it the plate is kept: it vanishes
        once premultiplied), which saves time on small mattes. Plate NaN/Inf are made safe
        as in :meth:`to_model`. Raises FrameInputError when the shapes differ.
        """
        fgr = _check_rgb(fgr_model, "foreground")
        model = _check_rgb(model_rgb, "model input")
        plate, _ = make_finite(_check_rgb(plate_rgb, "plate"))
        if not fgr.shape == model.shape == plate.shape:
            raise FrameInputError(
                f"Foreground {fgr.shape}, model input {model.shape} and plate {plate.shape} must be the same size."
            )
        region = _covered_region(alpha, plate.shape[:2])
        result = plate.copy()
        if region is None:
            return result
        fgr, model = fgr[region], model[region]
        if self.identity:
            result[region] += fgr - model
            return result
        # Both in one array, one OCIO call, converted in place.
        rows = fgr.shape[0]
        both = np.empty((2 * rows, *fgr.shape[1:]), np.float32)
        if self.display is not None:  # keep the steep top of the inverse out of reach
            np.minimum(fgr, DISPLAY_INVERSE_CAP, out=both[:rows])
            np.minimum(model, DISPLAY_INVERSE_CAP, out=both[rows:])
        else:
            both[:rows], both[rows:] = fgr, model
        # Keep the plate exactly where the model left a channel alone (without a conversion,
        # equal values give 0.0 already).
        unchanged = both[:rows] == both[rows:]
        self.convert_in_place(both, inverse=True)
        correction = np.subtract(both[:rows], both[rows:], out=both[:rows])
        # Drop corrections the inverse cannot make.
        correction[unchanged | ~np.isfinite(correction)] = 0.0
        result[region] += correction
        return result

    def convert(self, rgb: np.ndarray, *, inverse: bool) -> np.ndarray:
        """One OCIO call, nothing else: float ``[H, W, 3]`` plate -> model (or model -> plate with
        ``inverse``) in a new array, no clamp, no NaN handling. ``colour_torch`` bakes and checks its
        LUTs with it. Raises ColourError if OCIO fails."""
        out = np.array(_check_rgb(rgb, "image to convert"), dtype=np.float32, order="C", copy=True)
        self.convert_in_place(out, inverse=inverse)
        return out

    def convert_in_place(self, rgb: np.ndarray, *, inverse: bool) -> None:
        """:meth:`convert` into writable C-contiguous float32 ``[H, W, 3]`` ``rgb`` itself: with
        PyOpenColorIO straight on the array (``ocio_direct``), else through OpenImageIO and copied
        back. Raises FrameInputError for other pixels, ColourError if OCIO fails."""
        _check_rgb(rgb, "image to convert")
        problem = ocio_direct.in_place_problem(rgb)
        if problem:
            raise FrameInputError(f"Converting in place needs {problem}; use convert(), which copies.")
        try:
            processor = ocio_direct.cpu_processor(
                self.config, self.colour_space, self.model_space, self.display, self.view, inverse
            )
            if processor is not None:
                ocio_direct.apply_in_place(processor, rgb)
                return
        except ocio_direct.ocio_errors() as exc:
            raise ColourError(f"OCIO could not convert {self!r}: {_ocio_message(exc)}") from exc
        rgb[...] = self._convert_oiio(rgb, inverse=inverse)

    def _convert_oiio(self, rgb: np.ndarray, *, inverse: bool) -> np.ndarray:
        """The same conversion through OpenImageIO's ImageBufAlgo (copies in and out)."""
        buf = _image_buf(rgb)
        if self.display is None or self.view is None:
            src, dst = (self.model_space, self.colour_space) if inverse else (self.colour_space, self.model_space)
            out = oiio.ImageBufAlgo.colorconvert(buf, src, dst, unpremult=False, colorconfig=self.config)
        else:
            out = oiio.ImageBufAlgo.ociodisplay(
                buf,
                self.display,
                self.view,
                fromspace=self.colour_space,
                looks="",
                unpremult=False,
                inverse=inverse,
                context_key="",
                context_value="",
                colorconfig=self.config,
            )
        if out.has_error:
            raise ColourError(f"OCIO could not convert {self!r}: {_oiio_error(out)}")
        return np.asarray(out.get_pixels(oiio.FLOAT), dtype=np.float32).reshape(rgb.shape)


def _image_buf(rgb: np.ndarray) -> Any:
    """An ImageBuf holding a copy of float ``[H, W, 3]`` ``rgb``. ``ImageBuf(array)`` copies with
    Python's lock held (25 ms a 1080p frame, every other thread stopped); ``set_pixels`` lets it go."""
    height, width = rgb.shape[:2]
    buf = oiio.ImageBuf(oiio.ImageSpec(width, height, 3, oiio.FLOAT))
    buf.set_pixels(oiio.ROI(0, width, 0, height, 0, 1, 0, 3), np.ascontiguousarray(rgb, dtype=np.float32))
    return buf


def _ocio_message(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):  # OCIO quoted a binary file's bytes in its message
        return _undecodable(exc)
    return str(exc).strip()


def _oiio_error(holder: Any) -> str:
    """``holder.geterror()``, also when OCIO's message quotes a binary file's bytes."""
    try:
        return str(holder.geterror()).strip()
    except UnicodeDecodeError as exc:
        return _undecodable(exc)


def _undecodable(exc: UnicodeDecodeError) -> str:
    text = bytes(exc.object).decode("utf-8", "replace").strip()
    return f"{text[:500]} (a file that is not text: check the config and the LUT files it names)"


def make_finite(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """(``rgb``, or a copy with NaN/-Inf -> 0 and +Inf -> SAFE_MAX; pixels that held any)."""
    finite = np.isfinite(rgb)
    if finite.all():
        return rgb, 0
    bad = int((~finite).reshape(rgb.shape[0], rgb.shape[1], -1).any(axis=2).sum())
    return np.nan_to_num(rgb, nan=0.0, posinf=SAFE_MAX, neginf=0.0), bad


def _covered_region(alpha: np.ndarray | None, shape: tuple[int, ...]) -> tuple[slice, slice] | None:
    """The rows and columns holding alpha > 0 (all of them without alpha; None if empty)."""
    if alpha is None:
        return slice(None), slice(None)
    if np.size(alpha) != shape[0] * shape[1]:
        raise FrameInputError(f"Alpha of shape {np.shape(alpha)} does not fit a {shape[1]}x{shape[0]} plate.")
    covered = np.asarray(alpha).reshape(shape) > 0
    rows, cols = np.flatnonzero(covered.any(axis=1)), np.flatnonzero(covered.any(axis=0))
    if rows.size == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _check_rgb(rgb: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise FrameInputError(f"The {what} must be RGB of shape [height, width, 3], not {arr.shape}.")
    return np.asarray(arr, dtype=np.float32)


def _load_config(name: str) -> Any:
    """OpenImageIO's view of a config, read again when its file changes (``ocio_direct.config_stamp``)."""
    return _load_config_stamped(name, ocio_direct.config_stamp(name))


@functools.lru_cache(maxsize=8)
def _load_config_stamped(name: str, stamp: tuple[Any, ...]) -> Any:
    if os.path.exists(name) and not os.path.isfile(name):
        # OpenImageIO would read a named pipe or device with Python's lock held: every thread hangs.
        raise ColourError(f"Cannot use the OCIO config {name}: it is not a regular file; name the config.ocio file.")
    oiio.geterror()
    cfg = oiio.ColorConfig(name)
    problem = _oiio_error(cfg) or ("" if cfg.getNumColorSpaces() else "it holds no colour spaces")
    if problem:
        hint = " (from $OCIO)" if name == os.environ.get("OCIO") else ""
        raise ColourError(
            f"Cannot use the OCIO config {name}{hint}: {problem.strip()}. Fix the path, or "
            f"unset $OCIO to use the built-in config {BUILTIN_CONFIG}."
        )
    return cfg


def _resolve_space(cfg: Any, name: str, config: str) -> str:
    resolved = str(cfg.resolve(name)) if name else ""
    names = list(cfg.getColorSpaceNames())
    if resolved in names:
        return resolved
    lowered = {n.lower(): n for n in names}
    if name.lower() in lowered:
        return lowered[name.lower()]
    known = names + [a for n in names for a in cfg.getAliases(n)] + list(cfg.getRoles())
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.4)
    close += [k for k in known if name and name.lower() in k.lower() and k not in close][: 5 - len(close)]
    suggestion = ", ".join(repr(c) for c in close) if close else ", ".join(repr(n) for n in names[:6])
    raise ColourError(
        f"Unknown colour space {name!r} in OCIO config {config}. Close names: {suggestion}. "
        "Use a colour space name, alias or role of that config."
    )


def _model_space(cfg: Any, config: str) -> str:
    names = set(cfg.getColorSpaceNames())
    for candidate in _MODEL_SPACE_NAMES:
        resolved = str(cfg.resolve(candidate))
        if resolved in names:
            return resolved
    raise ColourError(
        f"The OCIO config {config} has no sRGB-encoded Rec.709 colour space (looked for "
        f"{', '.join(_MODEL_SPACE_NAMES)}), which the model needs. Add one, or use "
        f"the built-in config {BUILTIN_CONFIG}."
    )


def _parse_to_model(cfg: Any, to_model: str) -> tuple[str | None, str | None]:
    """(display, view) for a display option; (None, None) for the plain sRGB curve."""
    text = (to_model or "srgb").strip()
    kind, _, rest = text.partition(":")
    if kind.lower() == "srgb" and not rest:
        return None, None
    if kind.lower() != "display":
        raise ColourError(
            f"Unknown to_model option {to_model!r}; use 'srgb', 'display' or "
            "'display:<display>/<view>' (e.g. 'display:sRGB - Display/ACES 2.0 - SDR 100 nits (Rec.709)')."
        )
    displays = list(cfg.getDisplayNames())
    display, view = str(cfg.getDefaultDisplayName()), ""
    rest = rest.strip()
    for name in sorted(displays, key=len, reverse=True):  # longest first: names can share a start
        if rest.lower() == name.lower() or rest.lower().startswith(name.lower() + "/"):
            display, view = name, rest[len(name) + 1 :].strip()
            break
    else:
        view = rest  # "display:<view>" on the default display
    views = list(cfg.getViewNames(display))
    if not view:
        view = str(cfg.getDefaultViewName(display))
    match = [v for v in views if v.lower() == view.lower()]
    if not match:
        raise ColourError(
            f"Unknown display/view {rest!r} in OCIO config {cfg.configname()}. Display "
            f"{display!r} has views: {', '.join(views)}; displays: {', '.join(displays)}."
        )
    return display, match[0]
