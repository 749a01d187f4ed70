"""Frames in and out for ``convert_video``: video files, image sequences and EXR sequences.

A source yields :class:`SourceFrame` objects in clip order: float32 RGB in the plate's own values
(sRGB-encoded 0..1 for videos, PNG and JPEG; scene-linear for EXR, see ``colour_space``) with the
frame number the outputs are named after. Writers put images on disk atomically (through the
plates module) and build a video under a temporary name that is renamed into place only once it
is complete, so an interrupted run never leaves a truncated file behind.
"""

from __future__ import annotations

import functools
import os
import re
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterator, Optional, Sequence, cast

import av
import numpy as np
import torch
import torch.nn.functional as F
from av.video.stream import VideoStream

from .colour import SRGB_ENCODED, default_colour_space
from .errors import FrameInputError, PlateError
from .plate_writing import write_plate
from .plates import Plate, read_plate
from .sequences import output_sequence, parse_sequence
from .stages import ordered_map

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
EXR_EXTENSION = ".exr"
_TRAILING_DIGITS = re.compile(r"(\d+)$")
IMAGE_SEQUENCE_FRAME_RATE = Fraction(30)  # what the official script uses when the input has no rate


@dataclass
class SourceFrame:
    """One input frame: ``rgb`` float32 [H,W,3]; ``audio`` holds audio that precedes the next frame."""

    number: int
    rgb: np.ndarray
    audio: list[Any] = field(default_factory=list)
    like: Optional[Plate] = None  # the input Plate (image sequences read at their own size): windows, metadata


class FrameSource:
    """Frames of one clip in order. ``size`` is (width, height) after any resize."""

    colour_space = SRGB_ENCODED  # what the frames are assumed to be in when not told
    files: Sequence[tuple[int, str]] = ()  # (frame number, path) of an image sequence's frames
    frame_rate: Optional[Fraction] = None
    audio_stream: Optional[Any] = None  # av.audio.stream.AudioStream of a video input
    # What frames carry for the writer: "copy" demuxed packets, "encode" decoded av.AudioFrames, None nothing.
    audio_mode: Optional[str] = None

    def __init__(self, size: tuple[int, int], frame_count: Optional[int], padding: int) -> None:
        self.size = size
        self.frame_count = frame_count
        self.padding = padding

    def frames(self) -> Iterator[SourceFrame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release open files; safe to call twice."""


def open_source(input_source: str, resize: Optional[tuple[int, int]] = None, num_workers: int = 0) -> FrameSource:
    """Open a video file, an image-sequence folder, or a frame pattern (``shot.####.exr``).

    ``resize`` is (width, height). ``num_workers`` > 0 decodes image-sequence frames on that many
    threads (ignored for videos, as in the official script). Raises ``FrameInputError`` when the
    source is missing, empty, mixes EXR with other images, or is a single image; ``PlateError``
    when a pattern matches nothing or a frame cannot be read.
    """
    path = os.fspath(input_source)
    if os.path.isfile(path):
        if path.lower().endswith(IMAGE_EXTENSIONS + (EXR_EXTENSION,)):
            raise FrameInputError(
                f"input_source {path!r} is a single image; pass its folder or a frame pattern such as shot.####.exr"
            )
        return VideoFileSource(path, resize)
    if os.path.isdir(path):
        files, padding = _images_in_folder(path)
    elif path.lower().endswith(IMAGE_EXTENSIONS + (EXR_EXTENSION,)):
        seq = parse_sequence(path)  # a pattern; raises PlateError naming missing frames
        files, padding = [(f, seq.path(f)) for f in seq.frames], seq.padding
    else:
        raise FrameInputError(
            f"input_source {path!r} does not exist; pass a video file, a folder of frames or a pattern like shot.####.exr"
        )
    return ImageSequenceSource(files, resize, num_workers, padding)


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize float32 [H,W,C] to (width, height), bilinear with antialiasing (like PIL's, as the official script)."""
    width, height = size
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
    out = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return out[0].permute(1, 2, 0).contiguous().numpy()


class VideoFileSource(FrameSource):
    """Frames of a video file, numbered from 0, with the stream's exact frame rate and its audio."""

    def __init__(self, path: str, resize: Optional[tuple[int, int]]) -> None:
        self.path = path
        try:
            self._container = av.open(path)
        except (av.FFmpegError, OSError) as exc:
            raise FrameInputError(f"cannot open video {path!r}: {exc}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise FrameInputError(f"{path!r} has no video stream")
        self._video = self._container.streams.video[0]
        self._video.thread_type = "AUTO"
        self.audio_stream = self._container.streams.audio[0] if self._container.streams.audio else None
        rate = self._video.average_rate or self._video.guessed_rate or self._video.base_rate
        self.frame_rate = Fraction(rate) if rate else None
        size = resize or (self._video.codec_context.width, self._video.codec_context.height)
        super().__init__(size, self._video.frames or None, padding=4)

    def frames(self) -> Iterator[SourceFrame]:
        streams = [self._video] + ([self.audio_stream] if self.audio_mode else [])
        pending: Optional[SourceFrame] = None
        audio: list[Any] = []
        audio_shift: Optional[int] = None
        try:
            for packet in self._container.demux(*streams):
                if packet.stream is self.audio_stream:
                    audio.extend(self._audio_items(packet))
                    continue
                for frame in self._video.decode(packet):
                    if audio_shift is None and self.audio_stream is not None:
                        # The output video starts at 0, so audio moves with the first picture's time.
                        audio_shift = max(0, round((frame.time or 0.0) / self.audio_stream.time_base))
                    rgb = frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0
                    number = 0 if pending is None else pending.number + 1
                    if pending is not None:
                        pending.audio = _shifted(audio, audio_shift)
                        audio = []
                        yield pending
                    pending = SourceFrame(number, resize_rgb(rgb, self.size))
        except av.FFmpegError as exc:
            raise FrameInputError(f"cannot decode {self.path!r}: {exc}") from exc
        if pending is None:
            raise FrameInputError(f"video {self.path!r} has no frames")
        pending.audio = _shifted(audio, audio_shift)
        yield pending

    def _audio_items(self, packet: Any) -> list[Any]:
        if self.audio_mode == "copy":
            return [] if packet.dts is None else [packet]  # a None dts is the demuxer's flush marker
        frames = list(self.audio_stream.decode(packet)) if self.audio_stream is not None else []
        for f in frames:
            f.pts = None  # the encoder numbers samples from the start of the output
        return frames

    def close(self) -> None:
        self._container.close()


def _shifted(items: list[Any], shift: Optional[int]) -> list[Any]:
    for item in items:
        if shift and isinstance(item, av.Packet):
            if item.pts is not None:
                item.pts -= shift
            if item.dts is not None:
                item.dts -= shift
    return items


class ImageSequenceSource(FrameSource):
    """Frames of an image sequence, numbered as the files are (or from 0 when names carry no number)."""

    def __init__(
        self, files: list[tuple[int, str]], resize: Optional[tuple[int, int]], num_workers: int, padding: int
    ) -> None:
        self.files = files
        self.num_workers = num_workers
        first = read_plate(files[0][1])
        # EXR and float images are scene-linear Rec.709, 8/16-bit ones sRGB-encoded (the colour module's rule).
        self.colour_space = default_colour_space(files[0][1], first.pixel_type)
        self.native_size = (first.width, first.height)
        super().__init__(resize or self.native_size, len(files), max(4, padding))

    def _load(self, number: int, path: str) -> SourceFrame:
        plate = read_plate(path)
        if (plate.width, plate.height) != self.native_size:
            raise FrameInputError(
                f"{path!r} is {plate.width}x{plate.height} but the clip's first frame is "
                f"{self.native_size[0]}x{self.native_size[1]}; every frame of a clip must be one size (or pass input_resize)"
            )
        resized = self.size != self.native_size
        # The plate's windows and shot metadata go onto EXR outputs, unless resizing changed the frame.
        return SourceFrame(number, resize_rgb(plate.pixels, self.size), like=None if resized else plate)

    def frames(self) -> Iterator[SourceFrame]:
        if self.num_workers <= 0:
            for number, path in self.files:
                yield self._load(number, path)
            return
        # Decode ahead on worker threads, keeping clip order and a bounded number of frames in memory.
        yield from ordered_map(lambda item: self._load(*item), self.files, self.num_workers, 2 * self.num_workers + 1)


def _images_in_folder(folder: str) -> tuple[list[tuple[int, str]], int]:
    names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS + (EXR_EXTENSION,))]
    names = [n for n in names if not n.startswith(".")]  # our own temporary files, editors' droppings
    if not names:
        raise FrameInputError(
            f"folder {folder!r} holds no frames ({', '.join(IMAGE_EXTENSIONS + (EXR_EXTENSION,))}); "
            "pass a folder of frames or a video file"
        )
    exr = [n.lower().endswith(EXR_EXTENSION) for n in names]
    if any(exr) and not all(exr):
        raise FrameInputError(f"folder {folder!r} mixes EXR and other images; keep one clip per folder")
    return _numbered(folder, sorted(names))


def _numbered(folder: str, names: list[str]) -> tuple[list[tuple[int, str]], int]:
    """(frame number, path) pairs and the digit count of the numbers.

    Numbers come from the digits ending each name when they number one clip (one prefix, no
    repeats); otherwise frames are 0, 1, 2... in name order, as the official script counts.
    """
    matches = [_TRAILING_DIGITS.search(os.path.splitext(n)[0]) for n in names]
    found = [m for m in matches if m]
    numbers = [int(m.group(1)) for m in found]
    prefixes = {os.path.splitext(n)[0][: m.start()] for n, m in zip(names, matches) if m}
    paths = [os.path.join(folder, n) for n in names]
    if len(numbers) == len(names) and len(set(numbers)) == len(names) and len(prefixes) == 1:
        return sorted(zip(numbers, paths)), min(len(m.group(1)) for m in found)
    return list(enumerate(paths)), 4


def to_uint8(values: np.ndarray) -> np.ndarray:
    """0..1 floats to 8-bit, rounded to the nearest code (the official writer truncates)."""
    return (np.clip(values, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _temporary_beside(path: str, suffix: str) -> str:
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial{suffix}")


@functools.cache
def video_codec() -> str:
    """H.264 through libx264 when this PyAV's FFmpeg has it, else MPEG-4 Part 2."""
    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except (av.FFmpegError, ValueError):  # an FFmpeg built without it
        return "mpeg4"


class VideoWriter:
    """A yuv420p video built under a temporary name; ``close`` renames it into place, ``abort`` removes it.

    With ``audio_from`` (an input audio stream) the audio is copied packet for packet when the
    container takes its codec, else re-encoded with the container's default audio codec
    (``audio`` then reads "copy" or "encode"; None when no audio goes in).
    """

    def __init__(
        self,
        path: str,
        *,
        size: tuple[int, int],
        frame_rate: Fraction,
        bit_rate: int,
        audio_from: Optional[Any] = None,
    ) -> None:
        width, height = size
        if width % 2 or height % 2:
            raise FrameInputError(
                f"{path!r}: yuv420p video needs an even width and height, the frames are {width}x{height}; "
                "pass input_resize with even numbers or use output_type='png_sequence'"
            )
        self.path = path
        self._temp = _temporary_beside(path, os.path.splitext(path)[1])
        try:
            self._container = av.open(self._temp, "w")
        except (av.FFmpegError, ValueError, OSError) as exc:
            raise PlateError(
                f"cannot create video {path!r} (is the folder there, the extension a video one?): {exc}"
            ) from exc
        codec = video_codec()
        if codec not in self._container.supported_codecs:
            self.abort()
            raise PlateError(f"video {path!r}: the {self._container.format.name} container cannot hold {codec} "
                             "video; use .mp4, .mov or .mkv")
        try:
            self._video = cast(VideoStream, self._container.add_stream(codec, rate=frame_rate))
            self._video.width, self._video.height = width, height
            self._video.pix_fmt = "yuv420p"
            self._video.bit_rate = bit_rate
            self._time_base = 1 / frame_rate
            self.audio: Optional[str] = None
            self._audio: Any = None
            if audio_from is not None:
                self._add_audio(audio_from)
        except BaseException:
            self.abort()
            raise
        self._count = 0

    def _add_audio(self, source: Any) -> None:
        if source.codec_context.name in self._container.supported_codecs:
            self._audio = self._container.add_stream_from_template(source)
            self.audio = "copy"
        elif self._container.default_audio_codec not in ("none", ""):
            layout = source.layout.name if source.layout else "stereo"
            self._audio = self._container.add_stream(
                self._container.default_audio_codec, rate=source.sample_rate, layout=layout
            )
            self.audio = "encode"

    def write(self, rgb: np.ndarray) -> None:
        """Append one frame, uint8 [H,W,3]."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = self._count, self._time_base
        self._count += 1
        self._mux(self._video.encode(frame))

    def write_audio(self, items: list[Any]) -> None:
        """Append audio packets (``audio == "copy"``) or decoded frames (``"encode"``)."""
        for item in items:
            if self.audio == "copy":
                item.stream = self._audio
                self._mux(item)
            elif self.audio == "encode":
                self._mux(self._audio.encode(item))

    def _mux(self, packets: Any) -> None:
        try:
            self._container.mux(packets)
        except av.FFmpegError as exc:
            raise PlateError(f"cannot write video {self.path!r}: {exc}") from exc

    def close(self) -> None:
        """Flush the encoders, finish the file and move it onto ``path``."""
        try:
            self._mux(self._video.encode())
            if self.audio == "encode":
                self._mux(self._audio.encode())
            self._container.close()
            os.replace(self._temp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the unfinished video; whatever was at ``path`` before is left untouched."""
        try:
            self._container.close()
        except (av.FFmpegError, OSError, ValueError):
            pass  # closing a half-written container may fail; the file goes anyway
        if os.path.exists(self._temp):
            os.remove(self._temp)


class ImageSequenceWriter:
    """Numbered frames: in a folder, official style (``<folder>/0012.png``, ``padding`` digits at
    least), or after a pattern with a frame token (``out/alpha.####.exr``)."""

    def __init__(self, target: str, extension: str, padding: int) -> None:
        self.extension = extension
        self.padding = padding
        self._pattern = None
        if target.lower().endswith(IMAGE_EXTENSIONS + (EXR_EXTENSION,)):
            if not target.lower().endswith(extension):
                raise PlateError(f"output {target!r} does not end in {extension}, the format being written")
            # Two frames, so a name without a frame token is refused rather than overwritten.
            self._pattern = output_sequence(target, [0, 1], create_folder=True)
            return
        try:
            os.makedirs(target, exist_ok=True)
        except OSError as exc:
            raise PlateError(f"cannot create output folder {target!r}: {exc}") from exc
        self.folder = target

    def path_for(self, number: int) -> str:
        if self._pattern is not None:
            return self._pattern.path(number)
        return os.path.join(self.folder, f"{number:0{self.padding}d}{self.extension}")

    def write(self, number: int, pixels: np.ndarray, channels: list[str], like: Optional[Plate] = None) -> str:
        """Write float [H,W,C] frame ``number`` atomically: EXR as half with ZIP, PNG as 8-bit; returns its path.

        ``like`` (an input ``Plate``) gives the display window and shot metadata. Raises ``PlateError``.
        """
        path = self.path_for(number)
        if self.extension == EXR_EXTENSION:
            write_plate(path, pixels, channels, like=like, pixel_type="half", compression="zip")
        else:
            # OIIO takes RGBA as premultiplied and divides it for PNG unless told the values are straight:
            # this keeps the file's values exactly those given, in either alpha mode.
            write_plate(path, pixels, channels, like=like, pixel_type="uint8", metadata={"oiio:UnassociatedAlpha": 1})
        return path
