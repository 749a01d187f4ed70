"""One clip being matted: a session, the clip's colour, and the plates it writes.

``ClipMatter`` is what the batch renderer and the bridge server hold per clip. It turns a
plate as read from disk into alpha and foreground plates: plate -> model space (OCIO) ->
network (advancing the clip's recurrent state) -> foreground back into the plate's space ->
plates written atomically with our metadata.

On a GPU the colour runs there too (``colour_torch``): the plate goes to the device once, is
converted, matted and converted back there, and only alpha and foreground come back. On a CPU
OCIO through OpenImageIO is as fast as the same LUTs in torch (docs/speed.md), so it stays.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Collection, Iterable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from .colour import PlateColour, default_colour_space
from .colour_torch import TorchColour, bake
from .errors import ColourError, PlateError
from .model import MattingNetwork
from .plate_ownership import check_may_replace, ours_metadata
from .plate_writing import check_compression, write_plate
from .plates import Plate
from .sequences import frame_path, output_sequence
from .session import MattingSession, run_sessions
from .weights import load_model

OUTPUTS = ("alpha", "foreground", "rgba")
#: Where colour is converted: ``auto`` (torch on a CUDA device, OCIO on the CPU), ``ocio``, ``torch``.
COLOUR_ON = ("auto", "ocio", "torch")


@dataclass
class ClipSettings:
    """How one clip is matted and which plates it writes.

    ``alpha``, ``foreground`` and ``rgba`` are output patterns (``shot_alpha.####.exr``) or
    None. ``colour_space`` None means the default for the plate's format (scene-linear
    Rec.709 for EXR, sRGB for 8/16-bit images). ``rgba`` is premultiplied unless
    ``rgba_premultiplied`` is False. ``overwrite`` lets plates replace files that are not
    ours (see ``plate_ownership.check_may_replace``); leave it off unless the outputs are BMP, SGI or
    PNM from an earlier run, whose headers cannot say they are ours. ``colour_on`` is where colour is
    converted (``COLOUR_ON``); leave it at ``auto``, which is what the bridge uses, so that a render
    in this process and one through a bridge on the same device write the same plates.
    """

    variant: str = "mobilenetv3"
    checkpoint: Optional[str] = None
    refiner: str = "deep_guided_filter"
    downsample_ratio: Optional[float] = None
    framing: str = "portrait"
    colour_space: Optional[str] = None
    ocio_config: Optional[str] = None
    to_model: str = "srgb"
    precision: str = "float32"
    backend: str = "auto"
    device: str = "cpu"
    alpha: Optional[str] = None
    foreground: Optional[str] = None
    rgba: Optional[str] = None
    rgba_premultiplied: bool = True
    pixel_type: str = "half"
    compression: str = "zip"
    layer: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)
    overwrite: bool = False
    colour_on: str = "auto"

    def outputs(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in OUTPUTS if getattr(self, name)}

    def check(self, frames: Optional[Iterable[int]] = None) -> None:
        """Raise ``PlateError`` for settings that would fail on the first frame, and for outputs
        that would write two plates to one file (the same pattern, however spelled: ``a.####.exr``
        and ``./a.%04d.exr`` are one file per frame). Patterns are compared on frame 1001 and on
        the lowest and highest of ``frames`` when given (a lone ``#`` and ``%05d`` meet only from
        frame 10000)."""
        if self.pixel_type not in ("half", "float"):
            raise PlateError(f"pixel type {self.pixel_type!r}: plates are written as half or float")
        if self.colour_on not in COLOUR_ON:
            raise ColourError(f"colour_on {self.colour_on!r} is not one of {', '.join(COLOUR_ON)}")
        check_compression(self.compression)
        outputs = self.outputs()
        # Two spellings of one file differ for no frame or from some digit count on, so the
        # lowest and highest frames (negative frames pad too) find any clash in the range.
        given = sorted(set(frames)) if frames is not None else []
        samples = [1001] + given[:1] + given[-1:]
        for index, (name, pattern) in enumerate(outputs.items()):
            for other, other_pattern in list(outputs.items())[:index]:
                if _same_file(pattern, other_pattern, samples):
                    raise PlateError(
                        f"the {other} and {name} outputs would write to the same file ({other_pattern} and "
                        f"{pattern}); give each output its own name, e.g. shot_alpha.####.exr and shot_fg.####.exr"
                    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _foreground_on_device(baked: TorchColour, fgr: Tensor, model_rgb: Tensor, pixels: Tensor,
                          alpha: Tensor) -> np.ndarray:
    """The foreground made on the device and brought back as float32 ``[H,W,3]``."""
    return baked.foreground_to_plate(fgr, model_rgb, pixels, alpha=alpha).cpu().numpy()


def _same_file(a: str, b: str, frames: Iterable[int]) -> bool:
    def norm(path: str) -> str:
        return os.path.normcase(os.path.normpath(os.path.abspath(path)))

    return norm(a) == norm(b) or any(norm(frame_path(a, f)) == norm(frame_path(b, f)) for f in frames)


@dataclass
class PreparedPlate:
    """A plate already converted into the model's space (see :meth:`ClipMatter.prepare`).

    Through OCIO ``model_rgb`` is numpy ``[H, W, 3]``; through torch it is ``[3, H, W]`` on the
    clip's device, and ``pixels`` holds the plate there, uploaded once for the way back.
    """

    plate: Plate
    model_rgb: Union[np.ndarray, Tensor]
    bad_pixels: int
    pixels: Optional[Tensor] = None


@functools.lru_cache(maxsize=32)
def plate_colour(space: str, config: Optional[str], to_model: str) -> PlateColour:
    """The conversion for plates in ``space``; shared (it is read-only and thread-safe)."""
    return PlateColour(space, config=config, to_model=to_model)


def colour_for_plate(settings: ClipSettings, plate: Plate) -> PlateColour:
    """The conversion ``settings`` give ``plate``: its named space, else the default for its format."""
    space = settings.colour_space or default_colour_space(plate.path or ".exr", plate.pixel_type)
    return plate_colour(space, settings.ocio_config, settings.to_model)


def torch_colour(settings: ClipSettings, colour: PlateColour) -> Optional[TorchColour]:
    """``colour`` baked for torch on the settings' device when colour runs there, else None (OCIO).

    ``auto`` runs torch on a CUDA device and OCIO on the CPU (measured: docs/speed.md); a
    transform that does not bake within 1e-4 of OCIO stays on OCIO whatever the setting (logged once).
    The choice depends on the settings alone, so the bridge and a render in this process agree.
    """
    on = settings.colour_on
    if on == "ocio" or (on == "auto" and torch.device(settings.device).type != "cuda"):
        return None
    baked = bake(colour)
    return None if baked is None else baked.to(settings.device)


def reads_half(settings: ClipSettings) -> bool:
    """Whether this clip's plates stored as half are read as half (``read_plate``): where colour
    runs in torch (``colour_on`` torch, or auto on CUDA), which converts them on the device, so a
    1080p RGB frame crosses to a GPU as 12 MB instead of 25. Plates whose transform does not bake
    fall back to OCIO and are converted to float32 there."""
    return settings.colour_on == "torch" or (settings.colour_on == "auto" and
                                             torch.device(settings.device).type == "cuda")


def prepare_plate(settings: ClipSettings, plate: Plate, colour: Optional[PlateColour] = None) -> PreparedPlate:
    """``plate`` converted into the model's space (NaN/Inf made safe and counted) by ``colour``
    (default: :func:`colour_for_plate`), through OCIO or torch as :func:`torch_colour` says.
    Thread-safe, so it runs on reader threads ahead of the network. Raises ``ColourError``/``FrameInputError``."""
    colour = colour or colour_for_plate(settings, plate)
    baked = torch_colour(settings, colour)
    if baked is None:
        if plate.pixels.dtype != np.float32:  # read as half for torch colour, which fell back to OCIO
            plate = dataclasses.replace(plate, pixels=plate.pixels.astype(np.float32))
        model_rgb, bad = colour.to_model(plate.pixels)
        return PreparedPlate(plate, model_rgb, bad)
    # Half plates go to the device as half and become float32 there (exactly: a half is a float32).
    host = np.ascontiguousarray(plate.pixels, dtype=np.float16 if plate.pixels.dtype == np.float16 else np.float32)
    pixels = torch.from_numpy(host if host.flags.writeable else host.copy()).to(baked.device).float()
    on_device, bad = baked.to_model(pixels)
    return PreparedPlate(plate, on_device, bad, pixels)


class MatteResult:
    """One matted frame: alpha ``[H,W]`` and, on first use, the foreground ``[H,W,3]`` in the plate's space.

    The foreground's trip back (OCIO, or torch on the device) costs about as much as the network on
    a CPU, so it is made lazily by ``make_foreground``, on whichever thread first asks (the plate
    writers), not on the network's.
    """

    def __init__(self, frame: int, alpha: np.ndarray, plate: Plate, bad_pixels: int,
                 make_foreground: Optional[Callable[[], np.ndarray]] = None) -> None:
        self.frame = frame
        self.alpha = alpha
        self.plate = plate
        self.bad_pixels = bad_pixels
        self._make = make_foreground
        self.batch = 1  # how many clips' frames ran in the network call that made it (``matte_clips``)
        self._foreground: Optional[np.ndarray] = None
        self._lock = threading.Lock()

    @property
    def foreground(self) -> Optional[np.ndarray]:
        """The foreground in the plate's colour space (float32); None for a pre-roll frame."""
        with self._lock:
            if self._foreground is None and self._make is not None:
                self._foreground = self._make()
                self._make = None  # let the model-space images (and device memory) go
            return self._foreground


class ClipMatter:
    """Mattes one clip's plates in order, holding its recurrent state.

    :meth:`prepare` (colour into the model's space) is safe to call from reader threads ahead of
    the network; :meth:`matte` runs the network and must be called in frame order.
    """

    def __init__(self, settings: ClipSettings, model: Optional[MattingNetwork] = None) -> None:
        settings.check()
        self.settings = settings
        if model is None:
            model = load_model(settings.variant, settings.checkpoint, settings.refiner, settings.device)
        self.model = model
        self.session = MattingSession(
            model, device=settings.device, precision=settings.precision, downsample_ratio=settings.downsample_ratio,
            framing=settings.framing, backend=settings.backend,
        )
        self._colour: Optional[PlateColour] = None
        self._colour_lock = threading.Lock()

    @property
    def frame(self) -> Optional[int]:
        """The frame the held recurrent state belongs to (None when cold)."""
        return self.session.frame

    def reset(self) -> None:
        self.session.reset()

    def state_nbytes(self) -> int:
        return self.session.state_nbytes()

    def colour_for(self, plate: Plate) -> PlateColour:
        """The clip's colour conversion, fixed by its first plate when no input space was given."""
        with self._colour_lock:
            if self._colour is None:
                self._colour = colour_for_plate(self.settings, plate)
            return self._colour

    def prepare(self, plate: Plate) -> PreparedPlate:
        """Convert ``plate`` into the model's space (NaN/Inf made safe and counted). Thread-safe."""
        return prepare_plate(self.settings, plate, self.colour_for(plate))

    def matte(self, plate: Union[Plate, PreparedPlate], frame: int, *, keep: bool = True,
              foreground: Optional[bool] = None) -> MatteResult:
        """Run ``plate`` as clip frame ``frame``, advancing the state.

        With ``keep=False`` (pre-roll) no foreground is made: only the state and the alpha
        matter. ``foreground`` forces the foreground on or off (default: when a foreground or
        RGBA plate is written). Raises ``FrameInputError``/``ColourError``.
        """
        return self.matte_many([plate], [frame], keep=keep, foreground=foreground)[0]

    def matte_many(self, plates: Sequence[Union[Plate, PreparedPlate]], frames: list[int], *, keep: bool = True,
                   foreground: Optional[bool] = None) -> list[MatteResult]:
        """Run consecutive plates through the network in one call (``[1,T,...]``).

        One plate gives exactly what :meth:`matte` gives; several agree with one at a time to
        within float rounding (about 1e-6).
        """
        ready = [p if isinstance(p, PreparedPlate) else self.prepare(p) for p in plates]
        if foreground is None:
            foreground = bool(self.settings.foreground or self.settings.rgba)
        wants_foreground = keep and foreground
        colour = self.colour_for(ready[0].plate)
        host = [r.model_rgb for r in ready if isinstance(r.model_rgb, np.ndarray)]
        if len(host) == len(ready):
            fgrs, phas = self.session.run_batch(np.stack(host), frames[-1])
            return [MatteResult(frame, pha, r.plate, r.bad_pixels, functools.partial(
                        colour.foreground_to_plate, fgr, model, r.plate.pixels, alpha=pha) if wants_foreground else None)
                    for r, frame, model, fgr, pha in zip(ready, frames, host, fgrs, phas)]
        return self._matte_on_device(ready, frames, colour, wants_foreground)

    def _matte_on_device(self, ready: list[PreparedPlate], frames: list[int], colour: PlateColour,
                         wants_foreground: bool) -> list[MatteResult]:
        """:meth:`matte_many` for plates prepared through torch: the network and the foreground's
        way back run on the device; alpha comes back now, the foreground when a writer asks."""
        mixed = ColourError("plates of one clip were converted both through OCIO and through torch")
        baked = torch_colour(self.settings, colour)
        if baked is None:
            raise mixed
        models: list[Tensor] = []
        pixels: list[Tensor] = []
        for r in ready:
            if not isinstance(r.model_rgb, Tensor) or r.pixels is None:
                raise mixed
            models.append(r.model_rgb)
            pixels.append(r.pixels)
        fgr_device, pha_device = self._run_on_device(torch.stack(models), frames[-1])
        phas = pha_device.float().cpu().numpy()
        return [MatteResult(frame, pha, r.plate, r.bad_pixels, functools.partial(
                    _foreground_on_device, baked, fgr, model, plate, alpha) if wants_foreground else None)
                for r, frame, model, plate, fgr, pha, alpha in zip(ready, frames, models, pixels, fgr_device, phas,
                                                                     pha_device)]

    def _result(self, ready: PreparedPlate, frame: int, fgr: Any, pha: Any, foreground: Optional[bool],
                batch: int) -> MatteResult:
        """A ``matte_clips`` frame as :meth:`matte` makes it: ``fgr``/``pha`` are numpy for a plate
        prepared through OCIO, tensors on the device for one prepared through torch."""
        if foreground is None:
            foreground = bool(self.settings.foreground or self.settings.rgba)
        colour = self.colour_for(ready.plate)
        make: Optional[Callable[[], np.ndarray]] = None
        if isinstance(ready.model_rgb, Tensor):
            baked = torch_colour(self.settings, colour)
            if baked is None or ready.pixels is None:
                raise ColourError("plates of one clip were converted both through OCIO and through torch")
            if foreground:
                make = functools.partial(_foreground_on_device, baked, fgr, ready.model_rgb, ready.pixels, pha)
            alpha = pha.float().cpu().numpy()
        else:
            if foreground:
                make = functools.partial(colour.foreground_to_plate, fgr, ready.model_rgb, ready.plate.pixels,
                                         alpha=pha)
            alpha = pha
        result = MatteResult(frame, alpha, ready.plate, ready.bad_pixels, make)
        result.batch = batch
        return result

    def _run_on_device(self, model_rgb: Tensor, last_frame: int) -> tuple[Tensor, Tensor]:
        """``[T,3,H,W]`` model-space frames on the device -> (fgr ``[T,3,H,W]``, pha ``[T,H,W]``) there."""
        if self.session.backend == "torch":
            fgr, pha = self.session.run_tensor(model_rgb[None], last_frame)
            return fgr[0], pha[0, :, 0]
        # An ONNX Runtime or OpenVINO network beside torch colour on the CPU takes numpy frames.
        fgr_np, pha_np = self.session.run_batch(model_rgb.permute(0, 2, 3, 1).cpu().numpy(), last_frame)
        return torch.from_numpy(fgr_np).permute(0, 3, 1, 2), torch.from_numpy(pha_np)

    def output_paths(self, frame: int) -> dict[str, str]:
        return {name: output_sequence(pattern, [frame]).path(frame) for name, pattern in self.settings.outputs().items()}

    def write(self, result: MatteResult, extra_metadata: Optional[dict[str, Any]] = None, *,
              skip: Collection[str] = ()) -> dict[str, str]:
        """Write the requested plates of ``result`` atomically; returns ``{output: path}``.

        ``skip`` names outputs not to write for this frame ("alpha", "foreground", "rgba"): plates a
        resumed render found complete. Each plate carries ``rvm:output`` and our ``rvm:software``
        (see ``plate_ownership.ours_metadata``), and never replaces a file that is not ours unless the
        settings say ``overwrite``.

        Raises ``PlateError`` naming the plate that could not be written: the source plate or a
        file that is not ours is in the way, or the write failed.
        """
        s = self.settings
        meta = {
            "rvm:model": "RobustVideoMatting",
            "rvm:variant": s.variant,
            "rvm:refiner": s.refiner,
            "rvm:downsample_ratio": float(self.session.downsample_ratio or 0.0),
            "rvm:downsample_ratio_from": "auto" if self.session.requested_ratio is None else "given",
            "rvm:framing": self.session.framing,
            "rvm:frame": int(result.frame),
            "rvm:colour_space": self._colour.colour_space if self._colour else "",
            "rvm:to_model": self._colour.to_model_name if self._colour else s.to_model,
            "rvm:bad_pixels": int(result.bad_pixels),
        }
        meta.update(extra_metadata or {})
        written = {}
        for name, path in self.output_paths(result.frame).items():
            if name in skip:
                continue
            source = result.plate.path
            if source and os.path.exists(path) and os.path.samefile(path, source):
                raise PlateError(f"the {name} plate {path} is the source plate of frame {result.frame}; "
                                 "choose another output name so the source is not overwritten")
            check_may_replace(path, name, overwrite=s.overwrite)
            pixels, channels = self._pixels(name, result)
            plate_meta = {**meta, **ours_metadata(path, name)}
            if name == "rgba" and not s.rgba_premultiplied and not path.lower().endswith(".exr"):
                # PNG/TIFF writers would otherwise take straight RGB for premultiplied and divide it.
                plate_meta = {**plate_meta, "oiio:UnassociatedAlpha": 1}
            write_plate(path, pixels, channels, like=result.plate, metadata=plate_meta,
                        pixel_type=s.pixel_type, compression=s.compression)
            written[name] = path
        return written

    def _pixels(self, name: str, result: MatteResult) -> tuple[np.ndarray, list[str]]:
        if name == "alpha":
            return result.alpha, ["A"]
        assert result.foreground is not None  # matte(keep=True) made it for these outputs
        if name == "foreground":
            return result.foreground, ["R", "G", "B"]
        rgb = result.foreground * result.alpha[..., None] if self.settings.rgba_premultiplied else result.foreground
        return np.concatenate([rgb, result.alpha[..., None]], axis=-1), ["R", "G", "B", "A"]



def matte_clips(matters: Sequence[ClipMatter], plates: Sequence[Union[Plate, PreparedPlate]], frames: Sequence[int],
                foregrounds: Sequence[Optional[bool]]) -> list[Union[MatteResult, Exception]]:
    """The next frame of several clips (``matters[i]`` makes ``plates[i]`` as its frame
    ``frames[i]``, with ``foregrounds[i]`` as ``ClipMatter.matte`` takes it), their network steps
    run as one batch per shape (``session.run_sessions``). Each result is what the clip's own
    ``matte`` gives, within float rounding, or the exception its frame raised (its clip alone)."""
    ready: dict[int, PreparedPlate] = {}
    results: dict[int, Union[MatteResult, Exception]] = {}
    for index, (matter, plate) in enumerate(zip(matters, plates)):
        try:
            ready[index] = plate if isinstance(plate, PreparedPlate) else matter.prepare(plate)
        except Exception as error:  # noqa: BLE001 - this clip's colour problem is its own
            results[index] = error
    order = list(ready)
    mattes = run_sessions([matters[i].session for i in order], [ready[i].model_rgb for i in order],
                          [frames[i] for i in order])
    for index, matte in zip(order, mattes):
        if isinstance(matte, Exception):
            results[index] = matte
            continue
        try:
            results[index] = matters[index]._result(ready[index], frames[index], matte.fgr, matte.pha,
                                                    foregrounds[index], matte.batch)
        except Exception as error:  # noqa: BLE001
            results[index] = error
    return [results[index] for index in range(len(matters))]
