"""Colour in torch: a plate's conversion into the model's sRGB and back, baked from OCIO to run on any device.

``PlateColour`` converts through OCIO on the CPU. Most plates need only a 3x3 matrix (and an
offset) and a per-channel curve on the way in (scene-linear Rec.709, ACEScg, ACES2065-1, P3 or
Rec.2020 to sRGB-encoded), and the inverse curve and matrix on the way out. ``bake`` learns that
structure from OCIO itself, by converting probe colours through the very call ``PlateColour``
makes, turns the curves into dense 1D LUTs, and checks the result against OCIO on a probe set
(scene-linear values, greys, highlights up to 65504, negatives; 0..1 for the inverse). It is used
only when every value agrees within ``TOLERANCE`` as the engine uses them; any other transform
(a display view's tone curve mixes channels, a log plate needs a curve before the matrix too) is
left to OCIO, and the log says so once. See docs/plates_and_colour.md.

Layouts are the engine's: plates ``[H, W, 3]`` as read, model-space images ``[3, H, W]`` as the
network takes and gives them.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from rvm_engine.colour import DISPLAY_INVERSE_CAP, SAFE_MAX, PlateColour
from rvm_engine.errors import FrameInputError

log = logging.getLogger("rvm_engine.colour")

#: Largest difference from OCIO, on the probe set, that a baked transform may show.
TOLERANCE = 1e-4
# The curve into the model is indexed by the bits of the float32 value: the top 10 mantissa bits
# pick a knot, the low 13 interpolate, so there are 1024 knots per octave from 2^-32 up to the
# largest plate value, for either sign (interpolation is linear in the value between two knots;
# magnitudes under 2^-32 are read as 0). The curve out of the model reads 0..1 on a uniform grid.
_FRACTION_BITS = 13
_SMALLEST_BITS = (127 - 32) << 23  # float32 bits of 2^-32
_INFINITY_KEY = 0x7F800000 - _SMALLEST_BITS  # past it, a NaN's bits
_INVERSE_KNOTS = 65537


class TorchColour:
    """A ``PlateColour`` as a matrix and per-channel LUTs on one device; read-only, thread-safe.

    Into the model: ``curve(M @ (plate - offset))``, clamped to 0..1. Out of it:
    ``M⁻¹ @ curve⁻¹(model) + offset``, with ``PlateColour.foreground_to_plate``'s rules. Made by
    :func:`bake`; :meth:`to` gives a copy on another device.
    """

    def __init__(self, colour: PlateColour, *, offset: np.ndarray, to_curve: np.ndarray, from_curve: np.ndarray,
                 curve: np.ndarray, first_knot: int, inverse_curve: np.ndarray,
                 device: torch.device | str = "cpu") -> None:
        self.colour = colour
        self.device = torch.device(device)
        self.identity = colour.identity
        self.display_cap = DISPLAY_INVERSE_CAP if colour.display is not None else None
        as_tensor = functools.partial(torch.as_tensor, dtype=torch.float32, device=self.device)
        self._arrays = (offset, to_curve, from_curve, curve, first_knot, inverse_curve)
        self._to_curve = as_tensor(to_curve)
        self._to_curve_bias = as_tensor(-(to_curve @ offset))[:, None]
        self._from_curve = as_tensor(from_curve)
        self._offset = as_tensor(offset)[:, None]
        self._curve = as_tensor(curve).reshape(-1)
        self._knots = curve.shape[1]
        self._first_key = first_knot << _FRACTION_BITS
        self._last_key = ((first_knot + self._knots - 1) << _FRACTION_BITS) - 1
        self._inverse = as_tensor(inverse_curve).reshape(-1)
        self._rows = torch.arange(3, device=self.device)[:, None]
        self._copies: dict[str, TorchColour] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TorchColour({self.colour!r}, device={str(self.device)!r})"

    def to(self, device: torch.device | str) -> TorchColour:
        """This transform on ``device`` (made once per device)."""
        device = torch.device(device)
        if device == self.device:
            return self
        with self._lock:
            if str(device) not in self._copies:
                offset, to_curve, from_curve, curve, first_knot, inverse_curve = self._arrays
                self._copies[str(device)] = TorchColour(
                    self.colour, offset=offset, to_curve=to_curve, from_curve=from_curve, curve=curve,
                    first_knot=first_knot, inverse_curve=inverse_curve, device=device)
            return self._copies[str(device)]

    # -- into the model -------------------------------------------------------------------------
    def to_model(self, plate: Tensor) -> tuple[Tensor, int]:
        """Plate ``[H, W, 3]`` (half or float, plate space, on this device) -> (model ``[3, H, W]``
        float32 in 0..1, pixels that held NaN or Inf), as ``PlateColour.to_model`` gives them:
        NaN and -Inf become 0 and +Inf ``SAFE_MAX`` first. Raises FrameInputError for a wrong shape."""
        safe, bad = make_finite(_check_plate(plate))
        height, width = safe.shape[:2]
        flat = safe.reshape(-1, 3).T  # [3, N], a view
        if self.identity:
            model = flat
        else:
            model = self._through_curve(torch.addmm(self._to_curve_bias, self._to_curve, flat))
        # The LUTs are finite and every key lands on one of them, so no NaN comes out (as PlateColour).
        model = model.clamp(0.0, 1.0) if self.identity else model.clamp_(0.0, 1.0)
        return model.contiguous().reshape(3, height, width), bad

    def _through_curve(self, values: Tensor) -> Tensor:
        """The curve into the model on ``[3, N]`` float32, each row through its channel's LUT."""
        bits = values.contiguous().view(torch.int32)
        # Float bits ordered as the values are, counted from 2^-32: negatives count down from 0.
        magnitude = (bits & 0x7FFFFFFF).sub_(_SMALLEST_BITS).clamp_(min=0)
        # A NaN (inf - inf in the matrix, from float plates near 3e38) reads as the far negative
        # end, so it becomes 0 as through OCIO whatever its sign bit (x86 sets it, CUDA does not).
        negative = (bits < 0) | (magnitude > _INFINITY_KEY)
        key = torch.where(negative, -magnitude, magnitude).clamp_(self._first_key, self._last_key)
        fraction = (key & ((1 << _FRACTION_BITS) - 1)).to(torch.float32).mul_(1.0 / (1 << _FRACTION_BITS))
        index = (key >> _FRACTION_BITS).to(torch.int64).sub_(self._first_key >> _FRACTION_BITS).add_(self._rows * self._knots)
        low = torch.take(self._curve, index)
        return low.add_(torch.take(self._curve, index.add_(1)).sub_(low).mul_(fraction))

    # -- out of the model -----------------------------------------------------------------------
    def from_model(self, model: Tensor) -> Tensor:
        """Model-space ``[3, ...]`` in 0..1 (values outside are read as 0 or 1) -> plate space ``[3, ...]``."""
        if self.identity:  # the plate is in the model's space: nothing was baked
            return model.clamp(0.0, 1.0)
        shape = model.shape
        flat = model.reshape(3, -1)
        position = flat.clamp(0.0, 1.0).mul_(_INVERSE_KNOTS - 1)
        index = position.floor().clamp_(max=_INVERSE_KNOTS - 2)
        fraction = position.sub_(index)
        index = index.to(torch.int64).add_(self._rows * _INVERSE_KNOTS)
        low = torch.take(self._inverse, index)
        curve = low.add_(torch.take(self._inverse, index.add_(1)).sub_(low).mul_(fraction))
        return torch.addmm(self._offset, self._from_curve, curve).reshape(shape)

    def foreground_to_plate(self, fgr_model: Tensor, model_rgb: Tensor, plate_rgb: Tensor, *,
                            alpha: Optional[Tensor] = None) -> Tensor:
        """The foreground in the plate's space, ``[H, W, 3]`` float32: plate + lin(fgr) - lin(model input).

        ``fgr_model`` and ``model_rgb`` are ``[3, H, W]`` (model space), ``plate_rgb`` ``[H, W, 3]``
        as read and ``alpha`` ``[H, W]``, all on this device. The rules are
        ``PlateColour.foreground_to_plate``'s: the plate value exactly where the model left a
        channel alone, no correction that is not finite, the display cap, and outside the
        rectangle around alpha > 0 the plate. Raises FrameInputError when the shapes differ.
        """
        plate, _ = make_finite(_check_plate(plate_rgb))
        height, width = plate.shape[:2]
        if not fgr_model.shape == model_rgb.shape == (3, height, width):
            raise FrameInputError(f"Foreground {tuple(fgr_model.shape)}, model input {tuple(model_rgb.shape)} and "
                                  f"plate {tuple(plate.shape)} must be the same size.")
        fgr, model = fgr_model.to(torch.float32), model_rgb.to(torch.float32)
        if self.identity:
            correction = fgr - model
        else:
            if self.display_cap is not None:  # as PlateColour: the steep top of the inverse out of reach
                fgr, model = fgr.clamp(max=self.display_cap), model.clamp(max=self.display_cap)
            both = self.from_model(torch.stack([fgr, model]).transpose(0, 1))  # [3, 2, H, W]
            correction = both[:, 0] - both[:, 1]
            correction = correction.masked_fill_((fgr == model) | ~torch.isfinite(correction), 0.0)
        result = plate + correction.permute(1, 2, 0)
        if alpha is None:
            return result
        return torch.where(_covered_region(alpha, height, width)[..., None], result, plate)


def make_finite(rgb: Tensor) -> tuple[Tensor, int]:
    """(``rgb`` as float32, NaN/-Inf -> 0 and +Inf -> SAFE_MAX; pixels that held any), as ``colour.make_finite``."""
    rgb = rgb.to(torch.float32)
    bad = int((~torch.isfinite(rgb)).any(dim=-1).sum())
    if not bad:
        return rgb, 0
    return torch.nan_to_num(rgb, nan=0.0, posinf=SAFE_MAX, neginf=0.0), bad


def _covered_region(alpha: Tensor, height: int, width: int) -> Tensor:
    """``[H, W]`` bool: the rectangle around alpha > 0 (empty without any), made on the device without a sync."""
    if alpha.numel() != height * width:
        raise FrameInputError(f"Alpha of shape {tuple(alpha.shape)} does not fit a {width}x{height} plate.")
    covered = alpha.reshape(height, width) > 0

    def span(any_of: Tensor) -> Tensor:
        places = torch.arange(any_of.shape[0], device=any_of.device)
        first = torch.where(any_of, places, any_of.shape[0]).min()
        last = torch.where(any_of, places, -1).max()
        return (places >= first) & (places <= last)

    return span(covered.any(dim=1))[:, None] & span(covered.any(dim=0))[None, :]


def _check_plate(rgb: Tensor) -> Tensor:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise FrameInputError(f"The plate must be RGB of shape [height, width, 3], not {tuple(rgb.shape)}.")
    return rgb


# ---------------------------------------------------------------- baking


_baked: collections.OrderedDict[PlateColour, Optional[TorchColour]] = collections.OrderedDict()
_baking = threading.Lock()


def bake(colour: PlateColour) -> Optional[TorchColour]:
    """``colour`` as a ``TorchColour`` on the CPU, or None when it is not a matrix and per-channel
    curves that agree with OCIO within ``TOLERANCE`` (logged once: OCIO on the CPU is used).
    Made once per conversion (about 0.3 s of OCIO calls; reader threads asking at once wait for
    the first); ``.to(device)`` moves it."""
    with _baking:
        if colour not in _baked:
            _baked[colour] = _bake(colour)
            while len(_baked) > 32:
                _baked.popitem(last=False)
        return _baked[colour]


def _bake(colour: PlateColour) -> Optional[TorchColour]:
    if colour.identity:
        empty = np.zeros((3, 2), np.float32)
        return TorchColour(colour, offset=np.zeros(3), to_curve=np.eye(3), from_curve=np.eye(3), curve=empty,
                           first_knot=0, inverse_curve=empty)
    baked, problem = _learn(colour)
    if baked is None:
        log.warning("colour %s stays on the CPU through OCIO: %s", colour, problem)
    return baked


def _learn(colour: PlateColour) -> tuple[Optional[TorchColour], str]:
    """Learn ``colour``'s structure from OCIO, bake it, and check it against OCIO."""

    def convert(rgb: np.ndarray, inverse: bool) -> np.ndarray:
        flat = np.ascontiguousarray(rgb, np.float32).reshape(-1, 1, 3)
        return colour.convert(flat, inverse=inverse).reshape(-1, 3).astype(np.float64)

    # Out of the model: lin(m) = offset + from_curve @ curve⁻¹(m), with curve⁻¹(0) = 0 and
    # curve⁻¹(1) = 1 on every channel, so the offset is lin(0) and the columns are lin(e_c) - lin(0).
    offset = convert(np.zeros((1, 3)), inverse=True)[0]
    from_curve = (convert(np.eye(3), inverse=True) - offset).T
    if not (np.isfinite(offset).all() and np.isfinite(from_curve).all()) or abs(np.linalg.det(from_curve)) < 1e-6:
        return None, "its inverse is not a matrix after a per-channel curve"
    to_curve = np.linalg.inv(from_curve)

    # Each channel's curve out of the model: lin(v e_c) - offset, measured along its column.
    grid = np.linspace(0.0, 1.0, _INVERSE_KNOTS)
    inverse_curve = np.empty((3, _INVERSE_KNOTS))
    for c in range(3):
        axis = np.zeros((_INVERSE_KNOTS, 3))
        axis[:, c] = grid
        inverse_curve[c] = (convert(axis, inverse=True) - offset) @ from_curve[:, c] / (from_curve[:, c] @ from_curve[:, c])

    # Each channel's curve into the model: model(offset + u · column c)[c], at every knot u the
    # plate can reach (|u| up to 65504 times the matrix's largest row sum).
    reach = float(SAFE_MAX * np.abs(to_curve).sum(axis=1).max())
    first_knot = _key(-reach) >> _FRACTION_BITS
    last_knot = (_key(reach) >> _FRACTION_BITS) + 1
    knots = _values(np.arange(first_knot, last_knot + 1, dtype=np.int64) << _FRACTION_BITS).astype(np.float64)
    curve = np.empty((3, knots.size))
    for c in range(3):
        curve[c] = convert(offset + knots[:, None] * from_curve[:, c], inverse=False)[:, c]
    if not (np.isfinite(curve).all() and np.isfinite(inverse_curve).all()):
        return None, "OCIO gives values that are not finite along its curves"

    baked = TorchColour(colour, offset=offset, to_curve=to_curve, from_curve=from_curve, curve=curve,
                        first_knot=first_knot, inverse_curve=inverse_curve)
    error = _worst_error(baked, convert)
    if not error <= TOLERANCE:
        return None, f"a matrix and per-channel curves differ from OCIO by up to {error:.2g} (over {TOLERANCE:g})"
    return baked, ""


def _worst_error(baked: TorchColour, convert) -> float:
    """Largest difference from OCIO on the probe set, compared as the engine uses the values."""
    plates, models = probe_set()
    ocio_in = np.fmin(np.fmax(convert(plates, inverse=False), 0.0), 1.0)
    torch_in = baked.to_model(torch.from_numpy(plates[:, None, :]))[0][:, :, 0].T.numpy()
    if baked.display_cap is not None:
        models = np.minimum(models, DISPLAY_INVERSE_CAP)
    ocio_out = convert(models, inverse=True)
    torch_out = baked.from_model(torch.from_numpy(models.T.copy())).T.numpy()
    if not np.isfinite(ocio_out).all():
        return float("inf")
    return float(max(np.abs(ocio_in - torch_in).max(), np.abs(ocio_out - torch_out).max()))


def probe_set(seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """(plate colours, model colours) to check a baked transform on: scene-linear values around
    mid grey, greys from 0 to 100, highlights up to 65504 (one channel, two or all three hot),
    negatives and tiny values; and model values over 0..1 with its corners and greys. float32 ``[N, 3]``."""
    rng = np.random.default_rng(seed)
    greys = np.repeat(np.concatenate([np.linspace(0.0, 1.0, 1025), np.geomspace(1.0, 100.0, 200)])[:, None], 3, 1)
    scale = np.exp(rng.uniform(np.log(1e-6), np.log(SAFE_MAX), (4000, 1)))
    highlights = scale * rng.choice([0.0, 0.5, 1.0], (4000, 3)) + rng.random((4000, 3)) * 0.2
    corners = np.array([[SAFE_MAX] * 3, [SAFE_MAX, 0, 0], [0, SAFE_MAX, 0], [0, 0, SAFE_MAX], [-SAFE_MAX] * 3,
                        [1e-30, -1e-30, 0.0], [18.0, 0.18, 0.0018]])
    plates = np.concatenate([rng.normal(0.18, 0.3, (6000, 3)), rng.random((4000, 3)) * 2.0, greys, highlights,
                             -np.exp(rng.uniform(np.log(1e-6), np.log(SAFE_MAX), (1000, 3))), corners])
    unit = np.linspace(0.0, 1.0, 1025)
    models = np.concatenate([rng.random((8000, 3)), np.repeat(unit[:, None], 3, 1), np.stack([unit, 1 - unit, unit**3], 1),
                             np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).reshape(3, -1).T])
    return plates.astype(np.float32), models.astype(np.float32)


def _key(value: float) -> int:
    """The float32 ``value``'s bits as an int ordered as the values are (see ``_through_curve``)."""
    bits = int(np.array([value], np.float32).view(np.int32)[0])
    magnitude = max((bits & 0x7FFFFFFF) - _SMALLEST_BITS, 0)
    return -magnitude if bits < 0 else magnitude


def _values(keys: np.ndarray) -> np.ndarray:
    """The float32 values of ordered keys (the inverse of ``_key``; key 0 is 0)."""
    magnitude = np.where(keys == 0, 0, np.abs(keys) + _SMALLEST_BITS).astype(np.int32).view(np.float32)
    return np.where(keys < 0, -magnitude, magnitude)
