"""The bridge client: what hosts (Nuke, Resolve, the batch CLI) use to talk to a bridge.

Standard library and pyzmq only, Python 3.7+. Requests go over a DEALER socket with the
"Lazy Pirate" discipline: wait ``timeout`` seconds for the reply, then close the socket, open
a new one and send the same request again, at most ``retries`` times. Every request carries
an id; the server answers a repeated id with the reply it already made (or is making), so a
retry never advances a clip twice. Replies to earlier attempts are recognised by id and dropped.
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import zmq

from . import keys
from .errors import BridgeError, BridgeTimeout, ProtocolError, error_for_code
from .pathmap import PathMap
from .protocol import (
    DEFAULT_ADDRESS,
    PROTOCOL_VERSION,
    Buffer,
    Limits,
    decode_inline,
    encode,
    parse_header,
    request_header,
)

_REPLY_LIMITS = Limits(max_header_bytes=16 * 1024 * 1024)


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
class FrameResult:
    """What the bridge made for one frame.

    ``how`` is ``sequence`` (the held state continued), ``preroll`` (after ``preroll_frames``
    frames run without writing), ``cold`` (from a fresh state) or ``cache`` (made earlier with
    the same source and settings; ``made_as`` says how). ``exact`` is true when the matte equals
    a sequential render from the clip's first frame. ``timings`` are seconds: read, preroll,
    network (the neural network), write, queued, server_total, round_trip, transport.
    """

    clip: str
    frame: int
    how: str
    preroll_frames: int
    exact: bool
    made_as: str
    plates: Dict[str, str] = field(default_factory=dict)
    images: Dict[str, InlineFrame] = field(default_factory=dict)
    timings: Dict[str, float] = field(default_factory=dict)


class BridgeClient:
    """A connection to one bridge server; not thread-safe (use one per thread).

    ``timeout`` is seconds to wait for each reply before retrying, ``retries`` how many times a
    request is sent again before ``BridgeTimeout``. ``keys_dir`` holds CURVE keys for a server
    that needs them. ``path_map`` translates paths; the server's own rules (from ``hello``) are
    added after the client's.
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, *, timeout: float = 60.0, retries: int = 3,
                 keys_dir: Optional[str] = None, path_map: Optional[PathMap] = None, name: str = "",
                 context: Optional[zmq.Context] = None) -> None:
        self.address = address
        self.timeout = timeout
        self.retries = retries
        self.keys_dir = keys_dir
        self.path_map = path_map if path_map is not None else PathMap.from_environment()
        self.name = name or "rvm-bridge-client"
        self.server: Dict[str, Any] = {}
        self._context = context or zmq.Context.instance()
        self._socket: Optional[zmq.Socket] = None
        self._ids = itertools.count(1)
        self._prefix = uuid.uuid4().hex[:12]

    # -- connection --------------------------------------------------------------------------
    def _connect(self) -> zmq.Socket:
        if self._socket is None:
            socket = self._context.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            if self.keys_dir:
                keys.secure_client(socket, self.keys_dir)
            socket.connect(self.address)
            self._socket = socket
        return self._socket

    def _reconnect(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def close(self) -> None:
        """Close the socket; the client can be used again (it reconnects)."""
        self._reconnect()

    def __enter__(self) -> BridgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    # -- requests ----------------------------------------------------------------------------
    def call(self, op: str, fields: Optional[Dict[str, Any]] = None, buffers: Sequence[Buffer] = (),
             timeout: Optional[float] = None, request_id: Optional[str] = None) -> Tuple[Dict[str, Any], List[bytes]]:
        """Send one request and return the reply's header and buffers.

        Raises ``BridgeTimeout`` after every retry timed out, ``ProtocolError`` for a reply that
        breaks the protocol, and the error class matching the code of an error reply.
        """
        request = (request_id or self.new_id(), op, fields or {}, list(buffers))
        return next(self.pipeline([request], window=1, timeout=timeout))

    def pipeline(self, requests: Iterable[Tuple[str, str, Dict[str, Any], List[Buffer]]], window: int = 4,
                 timeout: Optional[float] = None) -> Iterator[Tuple[Dict[str, Any], List[bytes]]]:
        """Send ``(id, op, fields, buffers)`` requests keeping up to ``window`` in flight; yield
        replies in request order. A stall of ``timeout`` seconds resends everything in flight
        on a new socket, at most ``retries`` times in a row; a server that answers a resent
        request with ``pending`` (still running it) resets that count."""
        wait = self.timeout if timeout is None else timeout
        pending = iter(requests)
        in_flight: Dict[str, List[Buffer]] = {}
        order: List[str] = []
        done: Dict[str, Tuple[Dict[str, Any], List[bytes]]] = {}
        stalls = 0
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < max(1, window):
                item = next(pending, None)
                if item is None:
                    exhausted = True
                    break
                request_id, op, fields, buffers = item
                parts = [b""] + encode(request_header(op, request_id, **fields), buffers)
                in_flight[request_id] = parts
                order.append(request_id)
                self._connect().send_multipart(parts, copy=False)
            while order and order[0] in done:
                yield self._checked(done.pop(order.pop(0)))
            if not order:
                return
            reply = self._receive(wait)
            if reply is None:
                stalls += 1
                if stalls > self.retries:
                    self._reconnect()
                    raise BridgeTimeout(f"no reply from the bridge at {self.address} after {stalls} tries of "
                                        f"{wait:g} s; is `rvm-bridge serve` running there?")
                self._reconnect()
                for request_id in order:
                    if request_id in in_flight:
                        self._connect().send_multipart(in_flight[request_id], copy=False)
                continue
            stalls = 0  # the server answers: a slow frame is not a lost server
            answered = reply[0].get("id")
            if reply[0].get("pending") is True:
                continue  # a retry reached a request still running: its reply comes later
            if isinstance(answered, str) and answered in in_flight:  # else: an attempt we gave up on
                del in_flight[answered]
                done[answered] = reply

    def _receive(self, wait: float) -> Optional[Tuple[Dict[str, Any], List[bytes]]]:
        socket = self._connect()
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not socket.poll(int(remaining * 1000) + 1, zmq.POLLIN):
                return None
            parts = socket.recv_multipart()
            body = parts[1:] if parts and not parts[0] else parts
            if not body:
                continue
            header = parse_header(body[0], _REPLY_LIMITS)
            return header, body[1:]

    @staticmethod
    def _checked(reply: Tuple[Dict[str, Any], List[bytes]]) -> Tuple[Dict[str, Any], List[bytes]]:
        header, buffers = reply
        if header.get("ok") is not True:
            error = _object(header, "error")
            raise error_for_code(str(error.get("code", "internal")), str(error.get("message", "unknown error")))
        if header.get("protocol") != PROTOCOL_VERSION:
            raise ProtocolError(f"server replied with protocol {header.get('protocol')!r}; this client speaks "
                                f"{PROTOCOL_VERSION}", "protocol_version")
        return reply

    # -- operations --------------------------------------------------------------------------
    def hello(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Check the server answers and speaks this protocol; returns its hello reply."""
        header, _ = self.call("hello", {"client": self.name}, timeout=timeout)
        self.server = header
        served = PathMap.from_json(header.get("path_map"))
        self.path_map = PathMap(self.path_map.rules + [r for r in served.rules if r not in self.path_map.rules])
        return header

    def _ensure_hello(self) -> None:
        if not self.server:
            self.hello()

    def describe_models(self) -> Dict[str, Any]:
        """The models and clip parameters the server offers (for building host UI)."""
        return self.call("describe_models")[0]

    def status(self) -> Dict[str, Any]:
        """Loaded models, open clips, queue depth and throughput."""
        return self.call("status")[0]

    def open_clip(self, clip_id: Optional[str] = None, **settings: Any) -> Clip:
        """Open (or attach to) a clip; ``settings`` are the clip parameters of docs/protocol.md.

        Paths (source, checkpoint, outputs) are given as the client sees them. Opening an id that
        is open with the same settings attaches to it; other settings raise RemoteError
        (clip_conflict).
        """
        self._ensure_hello()
        clip = Clip(self, clip_id or uuid.uuid4().hex[:16], dict(settings))
        clip.open()
        return clip

    def close_clip(self, clip_id: str) -> Dict[str, Any]:
        return self.call("close_clip", {"clip": clip_id})[0]

    def server_settings(self, settings: Dict[str, Any]) -> Dict[str, Any]:
        """``settings`` with every path mapped to the server's view."""
        mapped = dict(settings)
        for key in ("source", "checkpoint", "ocio_config"):
            if mapped.get(key):
                mapped[key] = self.path_map.to_server(mapped[key])
        if isinstance(mapped.get("outputs"), dict):
            mapped["outputs"] = {name: (self.path_map.to_server(path) if path else path)
                                 for name, path in mapped["outputs"].items()}
        return mapped

    def frame_result(self, header: Dict[str, Any], buffers: List[bytes], round_trip: float) -> FrameResult:
        """A FrameResult from a frame reply, with plate paths mapped back to the client's view."""
        made = _object(header, "made")
        timings = {key: float(value) for key, value in _object(header, "timings").items()
                   if isinstance(value, (int, float))}
        timings["round_trip"] = round_trip
        timings["transport"] = max(0.0, round_trip - timings.get("server_total", 0.0))
        images = _reply_images(header, buffers)
        return FrameResult(
            clip=str(header.get("clip", "")), frame=int(header.get("frame", 0)), how=str(made.get("how", "")),
            preroll_frames=int(made.get("preroll_frames", 0)), exact=bool(made.get("exact", False)),
            made_as=str(made.get("made_as", made.get("how", ""))),
            plates={name: self.path_map.to_client(path) for name, path in _object(header, "plates").items()},
            images=images, timings=timings)


def _object(header: Dict[str, Any], key: str) -> Dict[str, Any]:
    value = header.get(key)
    return value if isinstance(value, dict) else {}


def _reply_images(header: Dict[str, Any], buffers: List[bytes]) -> Dict[str, InlineFrame]:
    """The inline images of a reply; raises ProtocolError where a spec does not fit its buffer."""
    images = {}
    for name, spec in _object(header, "inline").items():
        index = spec.get("buffer") if isinstance(spec, dict) else None
        if not isinstance(index, int) or not 0 <= index < len(buffers):
            raise ProtocolError(f"reply's inline {name!r} names no buffer that was sent", "bad_buffer")
        image = decode_inline(dict(spec, buffer=0), 1, _REPLY_LIMITS, (1, 3, 4))
        if image.nbytes != len(buffers[index]):
            raise ProtocolError(f"reply's inline {name!r} does not match its buffer's length", "bad_buffer")
        height, width, channels = image.shape
        images[str(name)] = InlineFrame(buffers[index], height, width, channels, image.dtype)
    return images


class Clip:
    """A clip open on a bridge: send its frames, then close it.

    If the server lost the clip (restart, eviction, idle timeout) the next frame re-opens it
    with the same settings and tries once more; the reply then says how the frame was made.
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

    def _request(self, frame: int, path: Optional[str], image: Optional[InlineFrame], strict: bool
                 ) -> Tuple[str, str, Dict[str, Any], List[Buffer]]:
        fields: Dict[str, Any] = {"clip": self.id, "frame": int(frame), "strict": strict}
        buffers: List[Buffer] = []
        if path is not None and image is not None:
            raise BridgeError("give a frame either by path or as an inline image, not both", "bad_message")
        if path is not None:
            fields["source"] = {"path": self.client.path_map.to_server(path)}
        elif image is not None:
            fields["source"] = {"inline": image.spec(0)}
            buffers = [image.data]
        return self.client.new_id(), "frame", fields, buffers

    def frame(self, frame: int, path: Optional[str] = None, image: Optional[InlineFrame] = None,
              strict: bool = False, timeout: Optional[float] = None) -> FrameResult:
        """Matte ``frame``: from the clip's source pattern when neither ``path`` nor ``image`` is
        given. ``strict`` refuses (OrderError) anything but a frame that follows the held state."""
        return next(self.frames([(frame, path, image)], window=1, strict=strict, timeout=timeout))

    def frames(self, items: Iterable[Tuple[int, Optional[str], Optional[InlineFrame]]], window: int = 3,
               strict: bool = False, timeout: Optional[float] = None) -> Iterator[FrameResult]:
        """Matte ``(frame, path, image)`` items with up to ``window`` requests queued on the server
        (so reading, the network and writing overlap); yields results in the order given."""
        remaining = list(items)
        reopened = False
        while remaining:
            requests = [self._request(frame, path, image, strict) for frame, path, image in remaining]
            sent: Dict[str, float] = {}
            answered = 0
            try:
                replies = self.client.pipeline(self._stamped(requests, sent), window=window, timeout=timeout)
                for index, (header, buffers) in enumerate(replies):
                    result = self.client.frame_result(header, buffers, time.monotonic() - sent[requests[index][0]])
                    answered, reopened = index + 1, False
                    yield result
                return
            except BridgeError as error:
                # The server lost the clip (restart, eviction): open it again, once, and go on.
                if error.code != "unknown_clip" or reopened:
                    raise
                reopened = True
                remaining = remaining[answered:]
                self.open()

    @staticmethod
    def _stamped(requests: List[Tuple[str, str, Dict[str, Any], List[Buffer]]], sent: Dict[str, float]
                 ) -> Iterator[Tuple[str, str, Dict[str, Any], List[Buffer]]]:
        for request in requests:
            sent[request[0]] = time.monotonic()
            yield request

    def close(self) -> Dict[str, Any]:
        """Close the clip on the server (its held state and cache go)."""
        return self.client.close_clip(self.id)
