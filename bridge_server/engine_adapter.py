"""The one place the bridge server calls the engine (``rvm_engine``).

Everything the server does to pixels goes through ``Engine``: loading models, making, resetting
and cloning a clip's recurrent states (a ``ClipMatter`` per frame-order head), reading plates,
turning inline buffers into plates, matting, writing, planning renders, and mapping engine
errors to protocol error codes. The rest of ``bridge_server`` treats plates, states and
results as opaque objects.
"""

from __future__ import annotations

import copy
import os
import traceback
from typing import Any, Callable, Dict, Hashable, List, Optional, Sequence, Tuple, Union

import fileseq
import numpy as np
import torch

from rvm_engine import ocio_direct
from rvm_engine.clip import ClipMatter, ClipSettings, MatteResult, PreparedPlate, matte_clips, prepare_plate, reads_half
from rvm_engine.colour import colour_space_names
from rvm_engine.errors import ColourError, FrameInputError, PlateError, RVMError, WeightsError
from rvm_engine.movie_frames import is_movie, picture_size, read_movie_frame
from rvm_engine.plate_writing import EXR_COMPRESSIONS, check_compression
from rvm_engine.plates import Plate, check_plate_file, read_plate
from rvm_engine.ratio_guidance import guided_ratio
from rvm_engine.render import plan_render
from rvm_engine.sequences import output_sequence, parse_sequence
from rvm_engine.weights import load_model

from .client.errors import BridgeError, TooLarge
from .client.parameters import TRY_RATIOS_SETTINGS
from .client.protocol import MAX_LISTED_FRAMES, InlineImage

_CODES = ((PlateError, "plate_error"), (FrameInputError, "frame_input"), (WeightsError, "weights_error"),
          (ColourError, "colour_error"))
_NUMPY_DTYPES: Dict[str, Any] = {"float16": np.dtype("<f2"), "float32": np.dtype("<f4")}


class Engine:
    """The engine on one device (``cpu``, ``cuda``, ``cuda:1``)."""

    compressions = EXR_COMPRESSIONS

    def __init__(self, device: str = "cpu", threads: Optional[int] = None, colour_on: str = "auto") -> None:
        self.device = device
        self.colour_on = colour_on  # ClipSettings.colour_on for every clip (serve --colour-on)
        if threads:
            # Several workers each running a many-threaded network on few cores spend their
            # time spinning; one or two threads per worker is far faster on a CPU server.
            torch.set_num_threads(threads)

    # -- models and states -------------------------------------------------------------------
    def load_model(self, variant: str, checkpoint: Optional[str], refiner: str) -> Any:
        """Raises WeightsError (weights_error) when the weights are missing or do not fit."""
        return load_model(variant, checkpoint, refiner, self.device)

    def clip_settings(self, settings: Dict[str, Any]) -> ClipSettings:
        outputs = settings["outputs"]
        return ClipSettings(
            variant=settings["variant"], checkpoint=settings["checkpoint"], refiner=settings["refiner"],
            downsample_ratio=settings["downsample_ratio"], framing=settings["framing"], colour_space=settings["colour_space"],
            ocio_config=settings["ocio_config"], to_model=settings["to_model"],
            rgba_premultiplied=settings["rgba_premultiplied"], precision=settings["precision"], device=self.device,
            backend=settings["backend"], colour_on=self.colour_on,
            alpha=outputs["alpha"], foreground=outputs["foreground"], rgba=outputs["rgba"],
            pixel_type=settings["pixel_type"], compression=settings["compression"], layer=settings["layer"])

    def check_outputs(self, settings: Dict[str, Any]) -> None:
        """Check what a clip writes before it opens (the server checked the folders are under its
        roots): the compression, a frame token in every output of a clip that writes more than
        one frame, outputs that would write two plates to one file or over the source plates, and
        usable output folders (created). Raises PlateError."""
        check_compression(settings["compression"])
        self.clip_settings(settings).check()
        outputs = {name: pattern for name, pattern in settings["outputs"].items() if pattern}
        sample = [settings["first_frame"] or 0, (settings["first_frame"] or 0) + 1]
        for name, pattern in outputs.items():
            output_sequence(pattern, sample, create_folder=True)  # no token: two frames would share one file
            if settings["source"]:
                source = settings["source"]
                if any(os.path.normpath(_path_of(pattern, f)) == os.path.normpath(_path_of(source, f)) for f in sample):
                    raise PlateError(f"the {name} output {pattern} names the source plates {source}; choose another "
                                     "output name so the source is not overwritten")

    @staticmethod
    def plan_render(source: str, frames: Union[None, str, List[int]], outputs: Dict[str, str], *, resume: bool,
                    shot_start: Optional[int], preroll: int, resume_limit: int) -> Dict[str, Any]:
        """Plan a render of ``frames`` of ``source`` into ``outputs`` by the in-process render's own
        rules (``rvm_engine.render.plan_render``): the frames (a missing one is a PlateError now),
        the checked outputs, and the frames to run in order from where the network starts cold,
        each with the outputs to write (none for a pre-roll frame; never a complete plate of a
        resumed render). JSON-ready."""
        if isinstance(frames, str):
            # A range is as short to send as it may be long to check (each frame is looked for on
            # disk): it is held to the bound a list of frames has.
            try:
                count = len(fileseq.FrameSet(frames.strip()))
            except fileseq.MaxSizeException:  # over fileseq's own limit of 10 million frames
                count = MAX_LISTED_FRAMES + 1
            except ValueError:
                count = 0  # not a range: plan_render says so
            if count > MAX_LISTED_FRAMES:
                raise TooLarge(f"the frame range {frames[:40]!r} holds more than {MAX_LISTED_FRAMES} frames; "
                               "render it in shorter ranges")
        settings = ClipSettings(alpha=outputs.get("alpha"), foreground=outputs.get("foreground"),
                                rgba=outputs.get("rgba"))
        prepared = plan_render(source, frames, settings, resume=resume, preroll=preroll, resume_limit=resume_limit,
                               shot_start=shot_start)
        plan, names = prepared.plan, list(settings.outputs())
        run = [[frame, [name for name in names if name not in plan.complete.get(frame, ())] if keep else []]
               for frame, keep in prepared.run]
        return {"frames": plan.frames, "run": run, "exact": plan.exact, "line": plan.describe(),
                "write_from": plan.write_from, "run_from": plan.run_from, "stray_temps": prepared.stray_temps}

    def try_ratios(self, source: str, frames: Union[str, List[int]], ratios: List[float], settings: Dict[str, Any],
                   model: Any, *, preroll: int, sheet: Optional[str],
                   check_sheet: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
        """``rvm_engine.ratio_sweep.sweep_ratios`` on ``model``, the contact sheet written to
        ``sheet`` when given (never over a file rvm-bridge did not write; ``check_sheet(sheet)``
        runs again right before it is written); the figures, JSON-ready.
        Raises PlateError/FrameInputError/ColourError, and what ``check_sheet`` raises."""
        from rvm_engine.contact_sheet import check_sheet_path, write_sheet
        from rvm_engine.ratio_sweep import sweep_ratios

        clip = ClipSettings(device=self.device, **{name: settings[name] for name in TRY_RATIOS_SETTINGS})
        if sheet:
            check_sheet_path(sheet)
        sweep = sweep_ratios(source, frames, ratios, settings=clip, preroll=preroll, model=model)
        if sheet:
            if check_sheet is not None:
                check_sheet(sheet)
            write_sheet(sweep, sheet)
        return dict(sweep.to_json(), sheet=sheet)

    def first_frame_on_disk(self, pattern: str) -> Optional[int]:
        """The lowest frame of ``pattern`` on disk, or None when none is there yet."""
        try:
            return min(parse_sequence(pattern, None).frames)
        except (PlateError, ValueError):
            return None

    def new_state(self, settings: Dict[str, Any], model: Any) -> ClipMatter:
        """A cold recurrent state for a clip. Raises PlateError/ColourError/FrameInputError for
        settings that cannot work (compression, precision on this device, colour space)."""
        matter = ClipMatter(self.clip_settings(settings), model)
        if settings["colour_space"]:
            matter.colour_for(Plate(np.zeros((1, 1, 3), np.float32), ["R", "G", "B"], (0, 0, 1, 1)))
        return matter

    @staticmethod
    def reset(state: ClipMatter) -> None:
        state.reset()

    @staticmethod
    def clone_state(state: ClipMatter) -> ClipMatter:
        """An independent copy of ``state`` (its recurrent tensors copied), sharing the model."""
        clone = copy.copy(state)
        clone.session = state.session.clone()
        return clone

    @staticmethod
    def downsample_ratio(state: ClipMatter) -> Optional[float]:
        """The ratio the state's network runs at: the clip's, or the automatic one its first frame fixed."""
        return state.session.downsample_ratio

    @staticmethod
    def state_nbytes(state: ClipMatter) -> int:
        return state.state_nbytes()

    @staticmethod
    def plate_nbytes(plate: Union[Plate, PreparedPlate]) -> int:
        """Bytes a queued frame holds: the plate as read and, once prepared, its model-space
        image and, on the torch colour road, its float32 copy for the way back (a half plate's is
        a second image twice its size; a float32 plate's on the CPU is the plate itself)."""
        if isinstance(plate, PreparedPlate):
            held = plate.plate.pixels.nbytes + plate.model_rgb.nbytes
            if plate.pixels is not None and plate.pixels.data_ptr() != plate.plate.pixels.ctypes.data:
                held += plate.pixels.nbytes
            return int(held)
        return int(plate.pixels.nbytes)

    # -- plates ------------------------------------------------------------------------------
    @staticmethod
    def source_path(pattern: str, frame: int) -> str:
        """The file of ``frame`` in ``pattern``; raises PlateError when it does not exist."""
        return parse_sequence(pattern, [frame]).path(frame)

    @staticmethod
    def source_exists(pattern: str, frame: int) -> bool:
        try:
            parse_sequence(pattern, [frame])
        except PlateError:
            return False
        return True

    def read(self, path: str, settings: Dict[str, Any], max_side: int = 16384, max_pixels: int = 8192 ** 2,
             frame: int = 0) -> Plate:
        """The plate at ``path``, its header checked first: a plate whose display or data window
        is over ``max_side`` on a side or ``max_pixels`` in all is refused (TooLarge) before its
        pixels are read (an 8000x8000 plate takes gigabytes). A movie gives its picture ``frame``
        (its header's size checked first, then decoded). Raises PlateError."""
        import OpenImageIO as oiio

        check_plate_file(path)  # a named pipe would block OpenImageIO (or PyAV) and, with it, the whole server
        if is_movie(path):
            width, height = picture_size(path)
            if max(width, height) > max_side or width * height > max_pixels:
                raise TooLarge(f"movie {path} is {width}x{height}, over this server's limit of "
                               f"{max_side} px a side and {max_pixels} pixels (serve --max-image-side)")
            plate = read_movie_frame(path, frame)
            if max(plate.width, plate.height) > max_side or plate.width * plate.height > max_pixels:
                raise TooLarge(f"movie {path} is {plate.width}x{plate.height}, over this server's limit of "
                               f"{max_side} px a side and {max_pixels} pixels (serve --max-image-side)")
            return plate
        source = oiio.ImageInput.open(path)
        if source is not None:
            spec = source.spec()
            source.close()
            for what, width, height in (("data window", spec.width, spec.height),
                                        ("display window", spec.full_width, spec.full_height)):
                if max(width, height) > max_side or width * height > max_pixels:
                    raise TooLarge(f"plate {path} has a {width}x{height} {what}, over this server's limit of "
                                   f"{max_side} px a side and {max_pixels} pixels (serve --max-image-side)")
        else:
            oiio.geterror()  # read_plate says what is wrong with the file
        return read_plate(path, layer=settings.get("layer"), half=self.reads_half())

    def prepare(self, plate: Plate, settings: Dict[str, Any]) -> PreparedPlate:
        """The plate in the model's space, made on a reader thread so the network's thread does
        only the network. Raises ColourError/FrameInputError."""
        return prepare_plate(self.clip_settings(settings), plate)

    def reads_half(self) -> bool:
        """Whether half plates and half inline frames stay half (``clip.reads_half``: colour in
        torch, which this bridge's ``--colour-on`` and device decide for every clip)."""
        return reads_half(ClipSettings(device=self.device, colour_on=self.colour_on))

    def inline_plate(self, data: Any, image: InlineImage) -> Plate:
        """A plate from an inline buffer (RGB or RGBA; alpha is not used). Inline pixels are
        scene-linear floats unless the clip names its ``colour_space``. Half pixels stay half
        where the clip's colour runs in torch (``reads_half``), as half plates read from files do."""
        height, width, channels = image.shape
        pixels = np.frombuffer(data, dtype=_NUMPY_DTYPES[image.dtype]).reshape(height, width, channels)
        keep_half = image.dtype == "float16" and self.reads_half()
        rgb = np.ascontiguousarray(pixels[..., :3], dtype=np.float16 if keep_half else np.float32)
        return Plate(rgb, ["R", "G", "B"], (0, 0, width, height),
                     pixel_type="half" if image.dtype == "float16" else "float")

    # -- matting and writing -----------------------------------------------------------------
    @staticmethod
    def matte(state: ClipMatter, plate: Union[Plate, PreparedPlate], frame: int, keep: bool = True,
              foreground: Optional[bool] = None) -> MatteResult:
        """Run one frame on ``state`` (advancing it); ``keep=False`` for pre-roll frames;
        ``foreground=True`` makes the foreground even when no foreground plate is written."""
        return state.matte(plate, frame, keep=keep, foreground=foreground)

    @staticmethod
    def batch_key(settings: Dict[str, Any], model: Any, plate: PreparedPlate) -> Optional[Hashable]:
        """What clips whose next frames may run as one batch share: the model (variant, refiner,
        checkpoint), precision, backend, frame size and ratio. None: this clip runs alone (an
        OpenVINO clip: its step takes one frame). The engine checks again, on the states."""
        if settings["backend"] == "openvino":
            return None
        rgb = plate.model_rgb  # numpy [H,W,3] through OCIO, a tensor [3,H,W] through torch colour (CUDA)
        height, width = rgb.shape[1:] if isinstance(rgb, torch.Tensor) else rgb.shape[:2]
        ratio = settings["downsample_ratio"] or guided_ratio(height, width, settings["framing"])
        return (id(model), settings["precision"], settings["backend"], height, width, ratio)

    @staticmethod
    def matte_together(states: Sequence[ClipMatter], plates: Sequence[PreparedPlate], frames: Sequence[int],
                       foregrounds: Sequence[Optional[bool]]) -> List[Union[MatteResult, Exception]]:
        """The next frame of several clips (each on its own state), their network steps run as one
        batch where the engine can; each result is what ``matte`` gives that clip alone, within
        float rounding, or the exception its frame raised (that clip's alone)."""
        return matte_clips(states, plates, frames, foregrounds)

    @staticmethod
    def output_paths(state: ClipMatter, frame: int) -> Dict[str, str]:
        return state.output_paths(frame)

    @staticmethod
    def write(state: ClipMatter, result: MatteResult, skip: Sequence[str] = ()) -> Dict[str, str]:
        """Write the clip's plates for ``result`` atomically, except the outputs in ``skip``;
        returns ``{output: path}`` of those written. Raises PlateError (also for a file in the
        way that rvm-bridge did not write)."""
        return state.write(result, skip=tuple(skip))

    @staticmethod
    def inline_outputs(result: MatteResult, dtype: str) -> List[Tuple[str, List[int], str, bytes]]:
        """Alpha ``[H,W,1]`` and foreground ``[H,W,3]`` (when made) as reply buffers."""
        height, width = result.alpha.shape
        images = [("alpha", [height, width, 1], dtype, _encode(result.alpha, dtype))]
        if result.foreground is not None:
            images.append(("foreground", [height, width, 3], dtype, _encode(result.foreground, dtype)))
        return images

    @staticmethod
    def colour_road() -> Dict[str, str]:
        """How OCIO runs on the CPU here: straight on the arrays, or through OpenImageIO and why."""
        return ocio_direct.describe()

    @staticmethod
    def colour_spaces() -> List[str]:
        try:
            return colour_space_names()
        except RVMError:
            return []

    @staticmethod
    def error_code(error: BaseException) -> Tuple[str, str]:
        """The protocol error code and message for an exception raised while serving a request."""
        if isinstance(error, BridgeError):
            return error.code, error.message
        for kind, code in _CODES:
            if isinstance(error, kind):
                return code, str(error)
        if isinstance(error, RVMError):
            return "frame_input", str(error)
        if isinstance(error, MemoryError):
            return "too_large", "the server ran out of memory for this frame; send a smaller image"
        return "internal", "".join(traceback.format_exception_only(type(error), error)).strip()


def _path_of(pattern: str, frame: int) -> str:
    try:
        return output_sequence(pattern, [frame]).path(frame)
    except PlateError:
        return pattern


def _encode(pixels: np.ndarray, dtype: str) -> bytes:
    """Pixels as little-endian ``dtype`` bytes. torch's float32 -> float16 cast is vectorised, about
    five times faster than numpy's (bench/bench_bridge.py, inline)."""
    if dtype == "float16":
        pixels = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).to(torch.float16).numpy()
    return np.ascontiguousarray(pixels, dtype=_NUMPY_DTYPES[dtype]).tobytes()
