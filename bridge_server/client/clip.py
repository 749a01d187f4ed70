"""A clip open on a bridge: its frames sent in a window, inline frames through shared memory
where the bridge lends it, and the clip opened again when the bridge lost it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from .errors import BadBuffer, BadMessage, BadParameter, BridgeError
from .protocol import Buffer, Limits, decode_inline
from .shared import SharedFrames, Slot, frame_room

if TYPE_CHECKING:
    from .client import BridgeClient, Outgoing

_REPLY_LIMITS = Limits(max_header_bytes=64 * 1024 * 1024)


@dataclass
class InlineFrame:
    """Pixels carried in a message: ``data`` holds ``height*width*channels`` values of ``dtype``
    (float16 or float32, little-endian, rows top to bottom, channels interleaved)."""

    data: Buffer
    height: int
    width: int
    channels: int
    dtype: str = "float32"

    def spec(self, buffer: int = 0) -> Dict[str, Any]:
        return {"buffer": buffer, "shape": [self.height, self.width, self.channels], "dtype": self.dtype}


@dataclass
class FrameRequest:
    """One frame to matte: from the clip's source (neither ``path`` nor ``image``), a plate
    ``path``, or an inline ``image``. ``write`` names the outputs to write (None: all; empty: run
    it only, as a pre-roll); ``refresh`` makes it again even if a plate of it is cached.
    ``into`` maps inline outputs (``alpha``, ``foreground``) to writable buffers of the caller's
    (a bytearray, a numpy array) of exactly their size: the client copies each output there and
    the result's ``data`` is that buffer. A host that keeps its buffers from frame to frame
    saves making new memory for every frame, most of the cost of a 4K frame through shared memory."""

    frame: int
    path: Optional[str] = None
    image: Optional[InlineFrame] = None
    write: Optional[Sequence[str]] = None
    refresh: bool = False
    into: Optional[Dict[str, Any]] = None


@dataclass
class FrameResult:
    """What the bridge made for one frame.

    ``how`` is ``sequence`` (the held state continued), ``preroll`` (after ``preroll_frames``
    frames run without writing), ``cold`` (from a fresh state) or ``cache`` (made earlier with
    the same source and settings; ``made_as`` says how). ``exact`` is true when the matte is the
    one a render in frame order from the clip's first frame makes. ``head`` says which recurrent
    state ran it: ``continued`` (the state that held frame N-1, or moved on by pre-roll),
    ``cloned`` (a copy, so the chunk advancing the original keeps it) or ``new``. ``kept`` names
    plates that were already complete and were not rewritten. ``timings`` are seconds: read,
    preroll, network, write, queued, server_total, round_trip, transport. ``downsample_ratio``
    is the ratio the network actually ran at (the automatic one resolved). ``batch`` is how many
    clips' frames ran in the network call that made it (1: alone; a bridge older than batching
    says nothing, read as 1).
    """

    clip: str
    frame: int
    how: str
    preroll_frames: int
    exact: bool
    made_as: str
    head: str = ""
    plates: Dict[str, str] = field(default_factory=dict)
    kept: List[str] = field(default_factory=list)
    images: Dict[str, InlineFrame] = field(default_factory=dict)
    timings: Dict[str, float] = field(default_factory=dict)
    downsample_ratio: Optional[float] = None
    batch: int = 1


def _ratio(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _object(header: Dict[str, Any], key: str) -> Dict[str, Any]:
    value = header.get(key)
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _reply_images(header: Dict[str, Any], buffers: List[bytes], slot: Optional[Slot] = None,
                  into: Optional[Dict[str, Any]] = None) -> Dict[str, InlineFrame]:
    """The inline images of a reply, copied out of the frame's shared-memory ``slot`` where the
    reply put them there (into the caller's buffer where ``into`` names one); raises
    ProtocolError where a spec does not fit its buffer or slot, BadParameter where a caller's
    buffer is not writable or not the image's size."""
    images = {}
    for name, spec in _object(header, "inline").items():
        target = None if into is None else into.get(str(name))
        if isinstance(spec, dict) and "segment" in spec:
            if slot is None:
                raise BadBuffer(f"reply's inline {name!r} names shared memory this frame did not lend")
            image = decode_inline(dict(spec, buffer=0), 1, _REPLY_LIMITS, (1, 3, 4))
            data = slot.read(str(name), spec, image.nbytes, _fitted(target, str(name), image.nbytes))
        else:
            index = spec.get("buffer") if isinstance(spec, dict) else None
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(buffers):
                raise BadBuffer(f"reply's inline {name!r} names no buffer that was sent")
            image = decode_inline(dict(spec, buffer=0), 1, _REPLY_LIMITS, (1, 3, 4))
            if image.nbytes != len(buffers[index]):
                raise BadBuffer(f"reply's inline {name!r} does not match its buffer's length")
            data = buffers[index]
            fitted = _fitted(target, str(name), image.nbytes)
            if fitted is not None:
                fitted[:] = memoryview(data).cast("B")
        height, width, channels = image.shape
        images[str(name)] = InlineFrame(data if target is None else target, height, width, channels, image.dtype)
    return images


def _fitted(target: Any, name: str, nbytes: int) -> Optional[memoryview]:
    """``target`` as writable bytes of exactly ``nbytes`` (None without one); raises BadParameter."""
    if target is None:
        return None
    try:
        view = memoryview(target)
    except TypeError:
        raise BadParameter(f"into[{name!r}] is a {type(target).__name__}, not a buffer; give a bytearray or a "
                           "numpy array") from None
    if view.readonly or not view.contiguous:
        raise BadParameter(f"into[{name!r}] must be a writable, contiguous buffer (a bytearray or a numpy array)")
    view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    if view.nbytes != nbytes:
        raise BadParameter(f"into[{name!r}] holds {view.nbytes} bytes; the {name} needs {nbytes}")
    return view


FrameItem = Union[FrameRequest, Tuple[int, Optional[str], Optional[InlineFrame]], int]


class Clip:
    """A clip open on a bridge: send its frames, then close it.

    If the server lost the clip (restart, closed to make room) the next frame re-opens it with
    the same settings and tries once more; the reply then says how the frame was made.
    """

    def __init__(self, client: BridgeClient, clip_id: str, settings: Dict[str, Any]) -> None:
        self.client = client
        self.id = clip_id
        self.settings = settings
        self.opened: Dict[str, Any] = {}

    def open(self) -> Dict[str, Any]:
        fields = {"clip": self.id, "settings": self.client.server_settings(self.settings)}
        self.opened = self.client.call("open_clip", fields)[0]
        return self.opened

    def _request(self, item: FrameRequest, strict: bool) -> Outgoing:
        fields: Dict[str, Any] = {"clip": self.id, "frame": int(item.frame), "strict": strict}
        buffers: List[Buffer] = []
        if item.path is not None and item.image is not None:
            raise BadMessage("give a frame either by path or as an inline image, not both")
        if item.path is not None:
            fields["source"] = {"path": self.client.to_server(item.path)}
        elif item.image is not None:
            fields["source"] = {"inline": item.image.spec(0)}
            buffers = [item.image.data]
        if item.write is not None:
            fields["write"] = list(item.write)
        if item.refresh:
            fields["refresh"] = True
        return self.client.new_id(), "frame", fields, buffers

    def frame(self, frame: int, path: Optional[str] = None, image: Optional[InlineFrame] = None,
              strict: bool = False, timeout: Optional[float] = None, refresh: bool = False,
              write: Optional[Sequence[str]] = None, into: Optional[Dict[str, Any]] = None) -> FrameResult:
        """Matte ``frame``: from the clip's source pattern when neither ``path`` nor ``image`` is
        given. ``strict`` refuses (OrderError) anything but a frame that follows the held state;
        ``refresh`` makes it again even if it is cached (the upstream changed); ``into`` takes the
        inline outputs in the caller's buffers (``FrameRequest``)."""
        item = FrameRequest(frame, path, image, write, refresh, into)
        return next(self.frames([item], window=1, strict=strict, timeout=timeout))

    def frames(self, items: Iterable[FrameItem], window: int = 3, strict: bool = False,
               timeout: Optional[float] = None) -> Iterator[FrameResult]:
        """Matte frames (``FrameRequest``, ``(frame, path, image)`` or a frame number) with up to
        ``window`` requests queued on the server, so reading, the network and writing overlap;
        yields results in the order given."""
        remaining = [_as_request(item) for item in items]
        reopened = reattached = False
        while remaining:
            requests = [self._request(item, strict) for item in remaining]
            slots = self._shared_slots(remaining, window)
            sent: Dict[str, float] = {}
            leased: Dict[str, Slot] = {}
            answered = 0
            try:
                outgoing = self._lent(requests, remaining, slots, sent, leased)
                for index, (header, buffers) in enumerate(self.client.pipeline(outgoing, window=window,
                                                                               timeout=timeout)):
                    request_id = requests[index][0]
                    slot = leased.get(request_id)
                    images = _reply_images(header, buffers, slot, remaining[index].into)
                    result = self.client.frame_result(header, buffers, time.monotonic() - sent[request_id], images)
                    if slot is not None and slots is not None:
                        slots.release(leased.pop(request_id))
                    answered, reopened, reattached = index + 1, False, False
                    yield result
                return
            except BridgeError as error:
                # The server lost the clip (restart, closed to make room): open it again, once, and
                # go on; it lost this client's shared memory (restart): lend it again, once.
                if error.code == "unknown_clip" and not reopened:
                    reopened = True
                    self.open()
                elif error.code == "unknown_segment" and not reattached and slots is not None:
                    reattached = True
                    slots.close()  # lent again on the next try
                else:
                    raise
                remaining = remaining[answered:]
            finally:
                if leased and slots is not None:
                    slots.abandon(leased.values())  # unanswered: the bridge may still write into them

    def _inline_settings(self) -> Dict[str, Any]:
        settings = self.opened.get("settings")
        return settings if isinstance(settings, dict) else self.settings

    def _shared_slots(self, items: List[FrameRequest], window: int) -> Optional[SharedFrames]:
        """Shared memory for the inline frames among ``items`` (None: they go over ZeroMQ)."""
        image = next((item.image for item in items if item.image is not None), None)
        if image is None:
            return None
        pixels, outputs = frame_room((image.height, image.width, image.channels), image.dtype, self._inline_settings())
        # Twice the window: the write stage may answer frames out of order, and a reply waiting
        # for an earlier one to be yielded still holds its slot. Past that a frame goes by ZeroMQ.
        return self.client.shared_slots(pixels, outputs, 2 * max(1, window))

    def _lent(self, requests: List[Outgoing], items: List[FrameRequest], slots: Optional[SharedFrames],
              sent: Dict[str, float], leased: Dict[str, Slot]) -> Iterator[Outgoing]:
        """The requests as they go out, each inline frame moved into a free slot of ``slots`` when
        there is one (else it goes over ZeroMQ); stamps when each went."""
        settings = self._inline_settings()
        for (request_id, op, fields, buffers), item in zip(requests, items):
            sent[request_id] = time.monotonic()
            image = item.image
            if slots is not None and image is not None:
                shape = [image.height, image.width, image.channels]
                pixels, outputs = frame_room((image.height, image.width, image.channels), image.dtype, settings)
                slot = slots.lease(pixels, outputs) if memoryview(image.data).nbytes == pixels else None
                if slot is not None:
                    leased[request_id] = slot
                    fields = dict(fields, source={"shared": slot.put(image.data, shape, image.dtype)})
                    if outputs:
                        fields["shared_outputs"] = slot.output_spec()
                    buffers = []
            yield request_id, op, fields, buffers

    def close(self, timeout: Optional[float] = None, retries: Optional[int] = None) -> Dict[str, Any]:
        """Close the clip on the server (its held states and cache go)."""
        return self.client.close_clip(self.id, timeout=timeout, retries=retries)


def _as_request(item: FrameItem) -> FrameRequest:
    if isinstance(item, FrameRequest):
        return item
    if isinstance(item, int):
        return FrameRequest(item)
    frame, path, image = item
    return FrameRequest(frame, path, image)

