"""``convert_video``: matte a whole video or image sequence in one call, with the official arguments.

Same arguments and behaviour as ``inference.py`` of the official RVM repository, plus EXR
sequences in and out, an exact frame rate, audio carried into the composition, output frames
numbered as the input's, a choice of straight or premultiplied RGBA, and cancellation that
leaves only complete files. See ``docs/convert_video.md`` for each difference.

Reading, the network and writing run as three overlapping stages (two threads and the caller's),
joined by small bounded queues, so a run goes about as fast as its slowest stage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterator, Optional, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from .colour import PlateColour
from .errors import FrameInputError, PlateError
from .model import auto_downsample_ratio
from .stages import Prefetch, WriteBehind
from .video_io import (
    IMAGE_SEQUENCE_FRAME_RATE,
    FrameSource,
    ImageSequenceWriter,
    VideoWriter,
    open_source,
    to_uint8,
)

OUTPUT_TYPES = ("video", "png_sequence", "exr_sequence")
# The official green screen of the video composition, in the model's sRGB space.
GREEN = np.array([120, 255, 155], dtype=np.float32) / 255.0
# Default bit rate: 0.1 bit per pixel per frame (about 5 Mbps for 1080p24), never under the official 1 Mbps.
DEFAULT_BITS_PER_PIXEL = 0.1
MIN_DEFAULT_MBPS = 1.0
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
_NTSC_BASES = (24, 30, 48, 60, 120)


@dataclass
class ConversionSummary:
    """What a run made: frame count, the rate and ratio used, output paths, and how audio went."""

    frames: int
    frame_rate: Optional[Fraction]  # of the video outputs; None for image sequences
    downsample_ratio: float
    outputs: dict[str, str]  # "composition" / "alpha" / "foreground" -> the path given
    audio: Optional[str] = None  # "copy", "encode", or None when the composition has no audio
    unsafe_pixels: int = 0  # input pixels holding NaN or Inf, made safe before the network


@dataclass
class _Chunk:
    numbers: list[int]
    plate_rgb: np.ndarray  # [T,H,W,3] float32, the frames in their own colour space
    model_rgb: np.ndarray  # [T,H,W,3] float32 sRGB 0..1, what the network sees
    audio: list[Any]
    likes: list[Any]  # input Plates lending EXR outputs their windows and metadata (or None)


def convert_video(
    model: torch.nn.Module,
    input_source: Union[str, os.PathLike[str]],
    input_resize: Optional[tuple[int, int]] = None,
    downsample_ratio: Optional[float] = None,
    output_type: str = "video",
    output_composition: Optional[str] = None,
    output_alpha: Optional[str] = None,
    output_foreground: Optional[str] = None,
    output_video_mbps: Optional[float] = None,
    seq_chunk: int = 1,
    num_workers: int = 0,
    progress: bool = True,
    device: Union[str, torch.device, None] = None,
    dtype: Optional[torch.dtype] = None,
    *,
    output_premultiplied: Optional[bool] = None,
    output_frame_rate: Union[Fraction, float, None] = None,
    colour_space: Optional[str] = None,
) -> ConversionSummary:
    """Matte every frame of ``input_source`` and write the requested outputs.

    ``input_source``: a video file, a folder of PNG/JPEG/TIFF/EXR frames (sorted by frame number,
    else by name), or a pattern such as ``shot.####.exr``. ``input_resize``: (width, height).
    ``downsample_ratio`` in (0, 1]; None picks ``min(512 / max(h, w), 1)``. ``output_type``:
    "video" (a file path per output), "png_sequence" or "exr_sequence" (a folder per output).
    At least one of ``output_composition``, ``output_alpha``, ``output_foreground``.
    ``output_video_mbps``: None picks 0.1 bit per pixel per frame, at least 1 Mbps.
    ``seq_chunk`` frames go through the network at once; ``num_workers`` threads decode
    image-sequence frames. ``device``/``dtype`` default to those of the model's parameters.

    ``output_premultiplied`` (True / False) sets whether the RGBA composition of image sequences is
    premultiplied; None means straight for PNG (as the official script) and premultiplied for EXR (the
    OpenEXR convention). ``output_frame_rate`` overrides the video rate (default: the input
    video's exact rate, 30 for image sequences); floats near 23.976, 29.97... snap to n*1000/1001.
    ``colour_space``: the OCIO colour space of the input; default scene-linear Rec.709 for EXR
    and float images, sRGB-encoded for videos and 8/16-bit images (``colour.default_colour_space``).
    Frames reach the network through ``colour.PlateColour`` (NaN/Inf made safe and counted in
    the summary); EXR foreground and composition go back to the input's space, video and PNG
    outputs hold the network's sRGB values as in the official script.

    Raises ``FrameInputError`` for a bad input or input argument, ``PlateError`` for a bad output
    argument or a plate that cannot be read or written, ``ColourError`` for an unknown space; ``KeyboardInterrupt`` passes through after the
    videos being written are removed (image frames already written stay, each complete).
    """
    paths = _check_outputs(output_type, output_composition, output_alpha, output_foreground)
    resize = _check_resize(input_resize)
    _check_input_arguments(downsample_ratio, seq_chunk, num_workers)
    mbps = _check_mbps(output_video_mbps)
    premultiplied = _check_premultiplied(output_premultiplied, output_type)
    rate = _as_frame_rate(output_frame_rate)
    device, dtype = _device_and_dtype(model, device, dtype)

    _refuse_the_input_folder(os.fspath(input_source), output_type, paths)
    source = open_source(os.fspath(input_source), resize, num_workers)
    try:
        colour = PlateColour(colour_space or source.colour_space)
        frame_rate = rate or source.frame_rate or IMAGE_SEQUENCE_FRAME_RATE
        width, height = source.size
        ratio = downsample_ratio or auto_downsample_ratio(height, width)
        if mbps is None:
            mbps = max(MIN_DEFAULT_MBPS, DEFAULT_BITS_PER_PIXEL * width * height * float(frame_rate) / 1e6)
        outputs = _Outputs(output_type, paths, source, frame_rate, round(mbps * 1e6), premultiplied, colour)
        summary = ConversionSummary(
            frames=0,
            frame_rate=frame_rate if output_type == "video" else None,
            downsample_ratio=ratio,
            outputs=paths,
            audio=outputs.audio,
        )
        bar = tqdm(total=source.frame_count, disable=not progress, dynamic_ncols=True, unit="frame")
        try:
            chunks = _chunks(source, seq_chunk, colour, summary)
            summary.frames = _matte_clip(model.eval(), chunks, outputs, ratio, device, dtype, bar)
        finally:
            bar.close()
    finally:
        source.close()
    return summary


def _matte_clip(
    model: torch.nn.Module,
    chunks: Iterator[_Chunk],
    outputs: _Outputs,
    ratio: float,
    device: torch.device,
    dtype: torch.dtype,
    bar: Any,
) -> int:
    """Read, matte and write every chunk, the official way; returns the frame count.

    On any failure or interruption the unfinished videos are removed and the error re-raised.
    """
    frames = 0
    reader = Prefetch(chunks, depth=2)
    writer: Optional[WriteBehind] = None
    try:
        writer = WriteBehind(outputs.write, depth=2)
        rec: list[Optional[torch.Tensor]] = [None] * 4
        with torch.no_grad():
            for chunk in reader:
                src = torch.from_numpy(chunk.model_rgb).permute(0, 3, 1, 2).unsqueeze(0).to(device, dtype)
                fgr, pha, *rec = model(src, *rec, ratio)
                fgr_np = fgr[0].permute(0, 2, 3, 1).float().cpu().numpy()
                pha_np = pha[0, :, 0].float().cpu().numpy()
                writer.put((chunk, fgr_np, pha_np))
                frames += len(chunk.numbers)
                bar.update(len(chunk.numbers))
        writer.finish()
        outputs.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        outputs.abort()
        raise
    finally:
        reader.close()
    return frames


def _chunks(source: FrameSource, seq_chunk: int, colour: PlateColour, summary: ConversionSummary) -> Iterator[_Chunk]:
    """Group the source's frames ``seq_chunk`` at a time, converted into the model's space."""
    batch: list[Any] = []

    def pack() -> _Chunk:
        plates = np.stack([f.rgb for f in batch])
        converted = [colour.to_model(p) for p in plates]
        summary.unsafe_pixels += sum(bad for _, bad in converted)
        chunk = _Chunk(
            numbers=[f.number for f in batch],
            plate_rgb=plates,
            model_rgb=np.stack([m for m, _ in converted]),
            audio=[a for f in batch for a in f.audio],
            likes=[f.like for f in batch],
        )
        batch.clear()
        return chunk

    for frame in source.frames():
        batch.append(frame)
        if len(batch) == seq_chunk:
            yield pack()
    if batch:
        yield pack()


class _Outputs:
    """The writers of one run, and how each output frame is made from the network's fgr and pha."""

    def __init__(
        self,
        output_type: str,
        paths: dict[str, str],
        source: FrameSource,
        frame_rate: Fraction,
        bit_rate: int,
        premultiplied: bool,
        colour: PlateColour,
    ) -> None:
        self.output_type = output_type
        self.premultiplied = premultiplied
        self.colour = colour
        self.writers: dict[str, Any] = {}
        self.audio: Optional[str] = None
        extension = {"png_sequence": ".png", "exr_sequence": ".exr"}.get(output_type, "")
        try:
            for kind, path in paths.items():
                if output_type == "video":
                    audio = source.audio_stream if kind == "composition" else None
                    writer = VideoWriter(
                        path, size=source.size, frame_rate=frame_rate, bit_rate=bit_rate, audio_from=audio
                    )
                    self.audio = writer.audio if audio is not None else self.audio
                    self.writers[kind] = writer
                else:
                    self.writers[kind] = ImageSequenceWriter(path, extension, source.padding)
                    _refuse_overwriting_the_source(kind, self.writers[kind], source)
        except BaseException:
            self.abort()
            raise
        # Tell the reader what to do with the input's audio now that the container is known.
        source.audio_mode = self.audio

    def write(self, item: tuple[_Chunk, np.ndarray, np.ndarray]) -> None:
        chunk, fgr, pha = item
        for t, number in enumerate(chunk.numbers):
            if self.output_type == "video":
                self._write_video_frame(fgr[t], pha[t])
            elif self.output_type == "png_sequence":
                self._write_image_frame(number, fgr[t], pha[t], None)
            else:
                plate_fgr = self.colour.foreground_to_plate(fgr[t], chunk.model_rgb[t], chunk.plate_rgb[t])
                self._write_image_frame(number, plate_fgr, pha[t], chunk.likes[t])
        if chunk.audio and "composition" in self.writers and self.output_type == "video":
            self.writers["composition"].write_audio(chunk.audio)

    def _write_video_frame(self, fgr: np.ndarray, pha: np.ndarray) -> None:
        alpha = pha[:, :, None]
        if "composition" in self.writers:
            self.writers["composition"].write(to_uint8(fgr * alpha + GREEN * (1.0 - alpha)))
        if "alpha" in self.writers:
            self.writers["alpha"].write(to_uint8(np.repeat(alpha, 3, axis=2)))
        if "foreground" in self.writers:
            self.writers["foreground"].write(to_uint8(fgr))

    def _write_image_frame(self, number: int, fgr: np.ndarray, pha: np.ndarray, like: Any) -> None:
        alpha = pha[:, :, None]
        if "composition" in self.writers:
            # Straight RGBA zeroes the colour where alpha is 0, as the official PNG writer does.
            rgb = fgr * alpha if self.premultiplied else fgr * (alpha > 0)
            self.writers["composition"].write(number, np.concatenate([rgb, alpha], axis=2), ["R", "G", "B", "A"], like)
        if "alpha" in self.writers:
            self.writers["alpha"].write(number, alpha, ["A"], like)
        if "foreground" in self.writers:
            self.writers["foreground"].write(number, fgr, ["R", "G", "B"], like)

    def close(self) -> None:
        """Finish the videos (image frames are complete as they are written)."""
        for writer in self.writers.values():
            if isinstance(writer, VideoWriter):
                writer.close()

    def abort(self) -> None:
        """Remove the videos not yet finished; image frames already written stay, each complete."""
        for writer in self.writers.values():
            if isinstance(writer, VideoWriter):
                writer.abort()


def _refuse_overwriting_the_source(kind: str, writer: ImageSequenceWriter, source: FrameSource) -> None:
    inputs = {os.path.abspath(path): number for number, path in source.files}
    for number in inputs.values():
        target = writer.path_for(number)
        if os.path.abspath(target) in inputs:
            raise PlateError(
                f"output_{kind} would write {target!r}, a frame of the input; choose another folder or name"
            )


def _refuse_the_input_folder(input_source: str, output_type: str, paths: dict[str, str]) -> None:
    """Frames written into a folder that is read as an image sequence would be read as input next time."""
    if output_type == "video" or not os.path.isdir(input_source):
        return
    folder = os.path.realpath(input_source)
    for kind, path in paths.items():
        target = path if os.path.isdir(path) or not os.path.splitext(path)[1] else os.path.dirname(path) or "."
        if os.path.realpath(target) == folder:
            raise PlateError(f"output_{kind} {path!r} writes into the input folder {input_source!r}, whose images "
                             "are all read as frames; choose another folder")


def _check_outputs(
    output_type: str, composition: Optional[str], alpha: Optional[str], foreground: Optional[str]
) -> dict[str, str]:
    if output_type not in OUTPUT_TYPES:
        raise PlateError(f"output_type {output_type!r} is not one of {', '.join(OUTPUT_TYPES)}")
    given = {"composition": composition, "alpha": alpha, "foreground": foreground}
    paths = {kind: os.fspath(path) for kind, path in given.items() if path is not None}
    if not paths:
        raise PlateError("no output requested: pass output_composition, output_alpha and/or output_foreground")
    if len({os.path.abspath(p) for p in paths.values()}) < len(paths):
        raise PlateError(f"two outputs share one path ({paths}); give each output its own")
    for kind, path in paths.items():
        is_video_name = path.lower().endswith(VIDEO_EXTENSIONS)
        if output_type == "video" and not os.path.splitext(path)[1]:
            raise PlateError(
                f"output_{kind} {path!r} needs a video file name such as {kind}.mp4 for output_type='video'"
            )
        if output_type != "video" and is_video_name:
            raise PlateError(f"output_{kind} {path!r} looks like a video file; {output_type} writes into a folder")
    return paths


def _check_resize(input_resize: Optional[tuple[int, int]]) -> Optional[tuple[int, int]]:
    if input_resize is None:
        return None
    try:
        width, height = (int(v) for v in input_resize)
    except (TypeError, ValueError):
        raise FrameInputError(f"input_resize {input_resize!r} must be (width, height)") from None
    if width < 1 or height < 1 or (width, height) != tuple(input_resize):
        raise FrameInputError(f"input_resize {input_resize!r} must be two positive whole numbers (width, height)")
    return width, height


def _check_input_arguments(downsample_ratio: Optional[float], seq_chunk: int, num_workers: int) -> None:
    if downsample_ratio is not None and not 0 < downsample_ratio <= 1:
        raise FrameInputError(f"downsample_ratio {downsample_ratio} must be in (0, 1], or None for automatic")
    if not isinstance(seq_chunk, int) or seq_chunk < 1:
        raise FrameInputError(f"seq_chunk {seq_chunk!r} must be a whole number >= 1")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise FrameInputError(f"num_workers {num_workers!r} must be a whole number >= 0")


def _check_mbps(mbps: Optional[float]) -> Optional[float]:
    if mbps is not None and not (isinstance(mbps, (int, float)) and mbps > 0):
        raise PlateError(f"output_video_mbps {mbps!r} must be a positive number of megabits per second, or None")
    return mbps


def _check_premultiplied(premultiplied: Optional[bool], output_type: str) -> bool:
    if premultiplied is None:
        return output_type == "exr_sequence"
    if not isinstance(premultiplied, bool):
        raise PlateError(f"output_premultiplied {premultiplied!r} must be True, False or None")
    return premultiplied


def _as_frame_rate(rate: Union[Fraction, float, None]) -> Optional[Fraction]:
    if rate is None:
        return None
    if not isinstance(rate, (int, float, Fraction)) or not rate > 0:
        raise PlateError(f"output_frame_rate {rate!r} must be a positive number such as Fraction(24000, 1001)")
    if isinstance(rate, float):
        for base in _NTSC_BASES:
            if abs(rate - base * 1000 / 1001) < 0.005:
                return Fraction(base * 1000, 1001)
        return Fraction(rate).limit_denominator(1001)
    return Fraction(rate)


def _device_and_dtype(
    model: torch.nn.Module, device: Union[str, torch.device, None], dtype: Optional[torch.dtype]
) -> tuple[torch.device, torch.dtype]:
    if not callable(model):
        raise FrameInputError(f"model must be the RVM network (callable), got {type(model).__name__}")
    param = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    chosen_device = (
        torch.device(device) if device is not None else (param.device if param is not None else torch.device("cpu"))
    )
    chosen_dtype = dtype or (param.dtype if param is not None else torch.float32)
    return chosen_device, chosen_dtype
