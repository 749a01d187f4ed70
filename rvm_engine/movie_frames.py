"""Frames of a movie file read by number, so a movie can be a clip's source like a plate sequence.

Resolve's video clips (and any ``.mov``/``.mp4``/``.mxf`` ...) are read through PyAV, frame 0
first. A movie's frame N is its N-th decoded picture, returned as a plate in the file's own
values (sRGB-encoded 0..1, as ``convert_video`` reads videos; the default colour space of a
movie is sRGB). Renders read in frame order, so each movie keeps one open decoder that moves
forward; asking for an earlier frame opens it again. A decoder is reused only while the file
keeps its size and modification time.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, Callable, Optional

import numpy as np

from .errors import PlateError
from .plates import Plate, read_plate

MOVIE_EXTENSIONS = (".mov", ".mp4", ".m4v", ".mxf", ".avi", ".mkv", ".webm", ".mts", ".m2ts", ".mpg", ".mpeg",
                    ".wmv")
_OPEN_LIMIT = 4  # decoders kept open (a bridge serving a few movie clips at once)
_RECENT = 8  # decoded pictures kept per movie (8-bit RGB)


def is_movie(path: str | os.PathLike[str]) -> bool:
    return os.path.splitext(os.fspath(path))[1].lower() in MOVIE_EXTENSIONS


_facts: OrderedDict[tuple[str, str, Any], Any] = OrderedDict()  # (what, path, size and mtime) -> value
_FACTS_KEPT = 128
_facts_lock = threading.Lock()


def _cached(what: str, path: str, compute: Callable[[str], Any]) -> Any:
    """``compute(path)``, worked out once per file version (its size and modification time)."""
    try:
        stat = os.stat(path)
    except OSError as error:
        raise PlateError(f"cannot read the movie {path}: {error}") from error
    key = (what, path, (stat.st_size, stat.st_mtime_ns))
    with _facts_lock:
        if key in _facts:
            _facts.move_to_end(key)
            return _facts[key]
    value = compute(path)
    with _facts_lock:
        _facts[key] = value
        while len(_facts) > _FACTS_KEPT:
            _facts.popitem(last=False)
    return value


def frame_count(path: str) -> int:
    """How many pictures the movie holds (its stream's count, else its packets counted).
    Raises PlateError for a file PyAV cannot open or that has no video.

    Counted once per file version: the bridge asks for every frame it reads, and a container
    without a frame count in its header (Matroska, MPEG transport streams) is demuxed whole."""
    return int(_cached("count", path, _count_pictures))


def picture_size(path: str) -> tuple[int, int]:
    """(width, height) of the movie's pictures from its header, nothing decoded (a server refuses
    a huge movie before one picture takes gigabytes). Raises PlateError."""
    width, height = _cached("size", path, _header_size)
    return int(width), int(height)


def _header_size(path: str) -> tuple[int, int]:
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise PlateError(f"{path} has no video stream")
            context = container.streams.video[0].codec_context
            return int(context.width), int(context.height)
    except av.FFmpegError as error:
        raise PlateError(f"cannot read the movie {path}: {error}") from error


def _count_pictures(path: str) -> int:
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise PlateError(f"{path} has no video stream")
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            return sum(1 for packet in container.demux(stream) if packet.size)
    except av.FFmpegError as error:
        raise PlateError(f"cannot read the movie {path}: {error}") from error


class _Decoder:
    """One open movie: the next picture it decodes, and the last few decoded (readers ahead of
    the network ask for neighbouring frames slightly out of order)."""

    def __init__(self, path: str, stamp: Any) -> None:
        import av

        self.stamp = stamp
        try:
            self.container = av.open(path)
            if not self.container.streams.video:
                self.container.close()
                raise PlateError(f"{path} has no video stream")
            self.pictures = self.container.decode(video=0)
        except av.FFmpegError as error:
            raise PlateError(f"cannot read the movie {path}: {error}") from error
        self.next = 0
        self.recent: OrderedDict[int, np.ndarray] = OrderedDict()

    def close(self) -> None:
        self.container.close()


_decoders: OrderedDict[str, _Decoder] = OrderedDict()
_decoders_lock = threading.Lock()  # decoding is sequential per movie anyway


def _picture(path: str, frame: int) -> np.ndarray:
    import av

    stat = os.stat(path)
    stamp = (stat.st_size, stat.st_mtime_ns)
    with _decoders_lock:
        decoder = _decoders.pop(path, None)
        if decoder is not None and (decoder.stamp != stamp or (frame < decoder.next and frame not in decoder.recent)):
            decoder.close()
            decoder = None
        decoder = decoder or _Decoder(path, stamp)
        _decoders[path] = decoder
        while len(_decoders) > _OPEN_LIMIT:
            _decoders.popitem(last=False)[1].close()
        try:
            while frame not in decoder.recent:
                picture = next(decoder.pictures, None)
                if picture is None:
                    raise PlateError(f"movie {path} has no frame {frame}: it ends at frame {decoder.next - 1}")
                decoder.recent[decoder.next] = picture.to_ndarray(format="rgb24")
                decoder.next += 1
                while len(decoder.recent) > _RECENT:
                    decoder.recent.popitem(last=False)
        except av.FFmpegError as error:
            raise PlateError(f"cannot decode frame {frame} of the movie {path}: {error}") from error
        return decoder.recent[frame]


def read_movie_frame(path: str, frame: int) -> Plate:
    """Frame ``frame`` (0 = the first picture) of the movie at ``path`` as an RGB plate.
    Raises PlateError for a frame past its end or a file PyAV cannot decode."""
    if frame < 0:
        raise PlateError(f"movie {path} has no frame {frame}: its frames start at 0")
    if not os.path.isfile(path):
        raise PlateError(f"movie {path} does not exist")
    count = frame_count(path)  # counted once per file: a frame past the end costs no decoding
    if frame >= count:
        raise PlateError(f"movie {path} has no frame {frame}: it ends at frame {count - 1}")
    rgb = _picture(path, frame).astype(np.float32) / np.float32(255.0)
    height, width = rgb.shape[:2]
    return Plate(np.ascontiguousarray(rgb), ["R", "G", "B"], (0, 0, width, height), path=path,
                 data_window=(0, 0, width, height), file_channels=["R", "G", "B"], format_name="movie",
                 pixel_type="uint8")


def read_source_frame(path: str, frame: int, layer: Optional[str] = None, half: bool = False) -> Plate:
    """Frame ``frame`` of a clip whose file for that frame is ``path``: a movie's picture, or the
    plate (``half``: as ``read_plate``)."""
    if is_movie(path):
        return read_movie_frame(path, frame)
    return read_plate(path, layer=layer, half=half)
