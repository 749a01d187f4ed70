"""The bridge client: what hosts (Nuke, Resolve, the render command) use to talk to a bridge.

Standard library and pyzmq only, Python 3.7+. Requests go over a DEALER socket with the
"Lazy Pirate" discipline: a request unanswered for a while is sent again, with the same id,
on a fresh socket; the server answers a repeated id with the reply it already made, or with a
"still running" note, so a retry never runs a frame twice. ``timeout`` is the whole silence a
client accepts before it gives up: it is split between ``retries + 1`` tries. A server that
says ``busy`` is alive: the client backs off and sends the request again. A connection the
server refused for its CURVE keys is said as such (the socket's handshake events tell).
Inline frames to a bridge on this host go through shared memory where both sides can
(``shared.py``), and over ZeroMQ otherwise.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import zmq

from . import keys
from .addresses import check_address, is_loopback
from .clip import Clip, FrameResult, InlineFrame, _int, _object, _ratio, _reply_images
from .errors import (
    AccessRefused,
    BadParameter,
    BridgeError,
    BridgeTimeout,
    ServerBusy,
    VersionMismatch,
    error_for_code,
)
from .parameters import TRY_RATIOS, TRY_RATIOS_PREROLL
from .pathmap import PathMap
from .protocol import (
    DEFAULT_ADDRESS,
    PROTOCOL_VERSION,
    SHARED_HEADER_BYTES,
    Buffer,
    Limits,
    encode,
    parse_header,
    request_header,
)
from .shared import SharedFrames, slot_bytes

_REPLY_LIMITS = Limits(max_header_bytes=64 * 1024 * 1024)
_HANDSHAKE_FAILED = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | \
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
Outgoing = Tuple[str, str, Dict[str, Any], List[Buffer]]


class BridgeClient:
    """A connection to one bridge server; not thread-safe (use one per thread).

    ``timeout`` is the seconds of silence accepted before ``BridgeTimeout``, shared by
    ``retries + 1`` tries. ``busy_wait`` (default: ``timeout``) bounds how long a request is
    sent again while the server says it is busy (then ``ServerBusy``). ``keys_dir`` holds CURVE
    keys for a server that needs them. ``path_map`` translates paths (default:
    ``$RVM_BRIDGE_PATH_MAP``); the server's rules from ``hello`` are added after them.
    ``shared_memory`` (default: on unless ``$RVM_BRIDGE_SHARED_MEMORY`` is ``0``) sends inline
    frames to a bridge on this host through shared memory (Linux); wherever it cannot, they go
    over ZeroMQ as before and ``shared_memory_note`` says why. ``close`` lets the memory go.
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, *, timeout: float = 60.0, retries: int = 3,
                 keys_dir: Optional[str] = None, path_map: Optional[PathMap] = None, name: str = "",
                 context: Optional[zmq.Context] = None, busy_wait: Optional[float] = None,
                 shared_memory: Optional[bool] = None) -> None:
        if not timeout > 0 or retries < 0:
            raise BadParameter(f"time-out {timeout} must be positive and retries {retries} 0 or more")
        self.address = check_address(address)
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.busy_wait = self.timeout if busy_wait is None else float(busy_wait)
        self.keys_dir = keys_dir
        if keys_dir:
            keys.check_folder(keys_dir)
        self.path_map = path_map if path_map is not None else PathMap.from_environment()
        self.name = name or "rvm-bridge-client"
        self.server: Dict[str, Any] = {}
        self._context = context or zmq.Context.instance()
        self._socket: Optional[zmq.Socket] = None
        self._monitor: Optional[zmq.Socket] = None
        self._refused = ""
        self._ids = itertools.count(1)
        self._prefix = uuid.uuid4().hex[:12]
        if shared_memory is None:
            shared_memory = os.environ.get("RVM_BRIDGE_SHARED_MEMORY", "").strip().lower() not in ("0", "off", "no",
                                                                                                 "false")
        self.shared: Optional[SharedFrames] = SharedFrames(self._shared_call) if shared_memory else None
        self._silent = False  # the last request went unanswered: close does not wait on the bridge again

    # -- connection --------------------------------------------------------------------------
    def _connect(self) -> zmq.Socket:
        if self._socket is None:
            socket = self._context.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            if self.keys_dir:
                keys.secure_client(socket, self.keys_dir)
            # Handshake events say why a CURVE server never answers (missing or unknown keys).
            self._monitor = socket.get_monitor_socket(_HANDSHAKE_FAILED)
            socket.connect(self.address)
            self._socket = socket
        return self._socket

    def _send(self, parts: List[Buffer]) -> None:
        """Send without ever blocking: a DEALER with no peer to take the message (a CURVE refusal
        tears the connection down) would wait forever. A message that cannot go out now counts as
        unanswered, so the silence rule resends it on a new socket and, in the end, says why."""
        try:
            self._connect().send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            pass

    def _reconnect(self) -> None:
        if self._socket is not None:
            self._note_refusals()
            self._socket.disable_monitor()
            if self._monitor is not None:
                self._monitor.close(linger=0)
                self._monitor = None
            self._socket.close(linger=0)
            self._socket = None

    def _note_refusals(self) -> None:
        while self._monitor is not None and self._monitor.poll(0):
            event = self._monitor.recv_multipart()
            code = int.from_bytes(event[0][:2], "little") if event and len(event[0]) >= 2 else 0
            if code & _HANDSHAKE_FAILED:
                self._refused = "keys" if code == zmq.EVENT_HANDSHAKE_FAILED_AUTH else "protocol"

    def close(self) -> None:
        """Let this client's shared memory go and close the socket; the client can be used
        again (it reconnects)."""
        if self.shared is not None and (self.shared.segments or self.shared.retired):
            self.shared.close(detach=not self._silent)
        self._reconnect()

    def __enter__(self) -> BridgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    # -- requests ----------------------------------------------------------------------------
    def call(self, op: str, fields: Optional[Dict[str, Any]] = None, buffers: Sequence[Buffer] = (),
             timeout: Optional[float] = None, retries: Optional[int] = None,
             request_id: Optional[str] = None) -> Tuple[Dict[str, Any], List[bytes]]:
        """Send one request and return the reply's header and buffers.

        Raises ``BridgeTimeout`` after ``timeout`` seconds of silence, ``AccessRefused`` when the
        server refused this client's keys, ``ProtocolError`` for a reply that breaks the
        protocol, and the class matching the code of an error reply.
        """
        request = (request_id or self.new_id(), op, fields or {}, list(buffers))
        return next(self.pipeline([request], window=1, timeout=timeout, retries=retries))

    def pipeline(self, requests: Iterable[Outgoing], window: int = 4, timeout: Optional[float] = None,
                 retries: Optional[int] = None) -> Iterator[Tuple[Dict[str, Any], List[bytes]]]:
        """Send ``(id, op, fields, buffers)`` requests keeping up to ``window`` in flight; yield
        replies in request order. Silence for a try's share of ``timeout`` resends everything
        in flight on a new socket; any reply (a "still running" note too) shows the server is
        alive and starts the count again. ``busy`` replies are sent again after a back-off."""
        total = self.timeout if timeout is None else float(timeout)
        tries = 1 + (self.retries if retries is None else int(retries))
        per_try = total / tries
        pending = iter(requests)
        in_flight: Dict[str, List[Buffer]] = {}
        order: List[str] = []
        done: Dict[str, Tuple[Dict[str, Any], List[bytes]]] = {}
        resend_at: Dict[str, float] = {}
        busy_since: Dict[str, float] = {}
        busy_count: Dict[str, int] = {}
        stalls = 0
        last_heard = time.monotonic()
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
                if len(in_flight) == 1:
                    last_heard = time.monotonic()  # silence counts from the first request out
                self._send(parts)
            while order and order[0] in done:
                yield self._checked(done.pop(order.pop(0)))
            if not order:
                return
            now = time.monotonic()
            for request_id in [rid for rid, at in resend_at.items() if at <= now]:
                del resend_at[request_id]
                self._send(in_flight[request_id])
            waiting = [rid for rid in in_flight if rid not in resend_at]
            wait = per_try - (now - last_heard) if waiting else 0.0
            if resend_at:
                wait = min(wait, min(resend_at.values()) - now) if waiting else min(resend_at.values()) - now
            reply = self._receive(max(0.0, wait))
            if reply is None:
                if not waiting or time.monotonic() - last_heard < per_try:
                    continue  # a back-off ended, not a silence
                stalls += 1
                self._reconnect()
                if stalls >= tries:
                    raise self._silence(total, tries)
                resend_at.clear()
                for request_id in order:
                    if request_id in in_flight:
                        self._send(in_flight[request_id])
                last_heard = time.monotonic()
                continue
            stalls, last_heard, self._silent = 0, time.monotonic(), False
            header = reply[0]
            answered = header.get("id")
            if header.get("pending") is True or not isinstance(answered, str) or answered not in in_flight:
                continue  # a "still running" note, or a reply to an attempt we gave up on
            error = header.get("error")
            if header.get("ok") is False and isinstance(error, dict) and error.get("code") == "busy":
                since = busy_since.setdefault(answered, last_heard)
                if last_heard - since > self.busy_wait:
                    raise ServerBusy(f"{error.get('message', 'the bridge is busy')} (still busy after "
                                     f"{self.busy_wait:g} s)")
                busy_count[answered] = busy_count.get(answered, 0) + 1
                resend_at[answered] = last_heard + min(1.0, 0.025 * 2 ** min(6, busy_count[answered]))
                continue
            del in_flight[answered]
            busy_since.pop(answered, None)
            busy_count.pop(answered, None)
            done[answered] = reply

    def _silence(self, total: float, tries: int) -> BridgeError:
        self._silent = True
        self._note_refusals()
        if self._refused:
            why = ("the server did not admit this client's CURVE key" if self._refused == "keys" else
                   "the server expects CURVE keys this client does not use (or the other way round)")
            return AccessRefused(f"the bridge at {self.address} refused the connection: {why}; give --keys DIR "
                                 "with the server's server.key and an admitted client.key_secret")
        hint = f" (with CURVE keys from {self.keys_dir}: check they are the server's)" if self.keys_dir else ""
        return BridgeTimeout(f"no reply from the bridge at {self.address} in {total:g} s ({tries} tries); is "
                             f"`rvm-bridge serve` running there?{hint}")

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
            return parse_header(body[0], _REPLY_LIMITS), body[1:]

    @staticmethod
    def _checked(reply: Tuple[Dict[str, Any], List[bytes]]) -> Tuple[Dict[str, Any], List[bytes]]:
        header, buffers = reply
        if header.get("ok") is not True:
            error = _object(header, "error")
            raise error_for_code(str(error.get("code", "internal")), str(error.get("message", "unknown error")))
        if header.get("protocol") != PROTOCOL_VERSION:
            raise VersionMismatch(f"server replied with protocol {header.get('protocol')!r}; this client speaks "
                                  f"{PROTOCOL_VERSION}; update the client or the server so they match")
        return reply

    # -- operations --------------------------------------------------------------------------
    def hello(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Check the server answers and speaks this protocol; returns its hello reply."""
        header, _ = self.call("hello", {"client": self.name[:200]}, timeout=timeout)
        self.server = header
        self.path_map = self.path_map.with_served(PathMap.rules_from_json(header.get("path_map")))
        return header

    def _ensure_hello(self) -> None:
        if not self.server:
            self.hello()

    @property
    def server_windows(self) -> bool:
        return self.server.get("os") == "nt"

    def to_server(self, path: str) -> str:
        """``path`` as the server sees it (raises PathNotMapped for an unmappable Windows path)."""
        self._ensure_hello()
        return self.path_map.to_server(path, self.server_windows)

    def describe_models(self) -> Dict[str, Any]:
        """The models and clip parameters the server offers (for building host UI)."""
        return self.call("describe_models")[0]

    def status(self) -> Dict[str, Any]:
        """Loaded models, open clips, queue depth, throughput and what the memory budget dropped."""
        return self.call("status")[0]

    def open_clip(self, clip_id: Optional[str] = None, **settings: Any) -> Clip:
        """Open (or attach to) a clip; ``settings`` are the clip parameters of docs/protocol.md.

        Paths (source, checkpoint, outputs) are given as the client sees them. Opening an id that
        is open with the same settings attaches to it; other settings raise ClipConflict.
        """
        self._ensure_hello()
        clip = Clip(self, clip_id or uuid.uuid4().hex[:16], dict(settings))
        clip.open()
        return clip

    def close_clip(self, clip_id: str, timeout: Optional[float] = None, retries: Optional[int] = None
                   ) -> Dict[str, Any]:
        return self.call("close_clip", {"clip": clip_id}, timeout=timeout, retries=retries)[0]

    def plan_render(self, source: str, frames: Union[None, str, Sequence[int]] = None,
                    outputs: Optional[Dict[str, Optional[str]]] = None, *, resume: bool = False,
                    shot_start: Optional[int] = None, preroll: int = 32, resume_limit: int = 1000) -> Dict[str, Any]:
        """Ask the server to plan a render of ``frames`` of ``source`` into ``outputs`` (all as the
        client sees them): which frames exist, which plates are already complete, and — with
        ``resume`` — where the network must start so the resumed plates equal the uninterrupted
        render. Raises PlateError for missing frames or unusable outputs."""
        fields: Dict[str, Any] = {
            "source": self.to_server(source),
            "frames": frames if frames is None or isinstance(frames, str) else [int(f) for f in frames],
            "outputs": {name: (self.to_server(path) if path else None) for name, path in (outputs or {}).items()},
            "resume": resume, "shot_start": shot_start, "preroll": preroll, "resume_limit": resume_limit}
        return self.call("plan_render", fields)[0]

    def try_ratios(self, source: str, frames: Union[str, Sequence[int]], ratios: Optional[Sequence[float]] = None, *,
                   sheet: Optional[str] = None, preroll: int = TRY_RATIOS_PREROLL,
                   settings: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Ask the server to matte ``frames`` of ``source`` (a short stretch, e.g. ``"1013-1020"``,
        both ends included) at each of ``ratios`` (default 0.125, 0.25, 0.4, 0.6) after up to
        ``preroll`` frames before it, and to write the contact sheet PNG to ``sheet`` (a path under
        its roots, as the client sees it; None: figures only). ``settings`` take variant,
        checkpoint, refiner, framing, colour_space, ocio_config, to_model, precision and layer.

        Returns the reply: ``rows`` (ratio, size, ms_per_frame, mean_difference, dtssd),
        ``suggested``, ``reason``, ``guided`` (what auto picks), ``table`` (the printed text) and
        ``sheet`` (mapped back to the client's path). It takes a while (every ratio runs every
        frame): ``timeout`` is the silence accepted, and the server's "still running" notes
        keep it alive. Raises PlateError, FrameInputError, BadParameter, BridgeTimeout."""
        fields: Dict[str, Any] = {
            "source": self.to_server(source),
            "frames": frames if isinstance(frames, str) else [int(f) for f in frames],
            "ratios": [float(r) for r in (ratios if ratios is not None else TRY_RATIOS)],
            "preroll": int(preroll), "sheet": self.to_server(sheet) if sheet else None,
            "settings": self.server_settings(dict(settings or {}))}
        reply = self.call("try_ratios", fields, timeout=timeout)[0]
        if isinstance(reply.get("sheet"), str):
            reply["sheet"] = self.path_map.to_client(reply["sheet"])
        return reply

    def server_settings(self, settings: Dict[str, Any]) -> Dict[str, Any]:
        """``settings`` with every path mapped to the server's view."""
        mapped = dict(settings)
        for key in ("source", "checkpoint", "ocio_config"):
            if isinstance(mapped.get(key), str) and not mapped[key].startswith("ocio://"):
                mapped[key] = self.to_server(mapped[key])
        if isinstance(mapped.get("outputs"), dict):
            mapped["outputs"] = {name: (self.to_server(path) if isinstance(path, str) else path)
                                 for name, path in mapped["outputs"].items()}
        return mapped

    def _shared_call(self, op: str, fields: Dict[str, Any], timeout: Optional[float] = None,
                     retries: Optional[int] = None) -> Dict[str, Any]:
        return self.call(op, fields, timeout=timeout, retries=retries)[0]

    @property
    def shared_memory_note(self) -> str:
        """Why inline frames go over ZeroMQ rather than shared memory ("" while it is used or untried)."""
        return "shared memory is off for this client" if self.shared is None else self.shared.note

    def shared_slots(self, pixels: int, outputs: int, count: int) -> Optional[SharedFrames]:
        """Shared memory with ``count`` slots for frames of ``pixels`` bytes with ``outputs`` bytes
        of inline outputs, lent to the bridge now; None where frames go over ZeroMQ instead (the
        bridge is elsewhere, offers none, or refused it: ``shared_memory_note`` says which). Call
        it outside a run of frames: it may talk to the bridge."""
        shared = self.shared
        if shared is None or not shared.enabled:
            return None
        self._ensure_hello()
        limit = _object(self.server, "limits").get("max_shared_bytes")
        if not is_loopback(self.address):
            shared.off(f"the bridge at {self.address} is not on this host's loopback")
        elif self.server.get("shared_memory") is not True:
            shared.off("the bridge offers no shared memory (an older bridge, not Linux, or --no-shared-memory)")
        elif not isinstance(limit, int) or limit <= SHARED_HEADER_BYTES:
            shared.off("the bridge's shared-memory limit leaves no room")
        if not shared.enabled or not isinstance(limit, int):
            return None
        return shared if shared.ensure(slot_bytes(pixels, outputs), count, limit) else None

    def frame_result(self, header: Dict[str, Any], buffers: List[bytes], round_trip: float,
                     images: Optional[Dict[str, InlineFrame]] = None) -> FrameResult:
        """A FrameResult from a frame reply, with plate paths mapped back to the client's view.
        ``images`` are the reply's inline images when already read (from shared memory)."""
        made = _object(header, "made")
        timings = {key: float(value) for key, value in _object(header, "timings").items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)}
        timings["round_trip"] = round_trip
        # The server's copies in and out of shared memory are moving bytes, as ZeroMQ's are.
        served = timings.get("server_total", 0.0) - timings.get("shared_in", 0.0) - timings.get("shared_out", 0.0)
        timings["transport"] = max(0.0, round_trip - served)
        kept = header.get("kept")
        return FrameResult(
            clip=str(header.get("clip", "")), frame=_int(header.get("frame")), how=str(made.get("how", "")),
            preroll_frames=_int(made.get("preroll_frames")), exact=made.get("exact") is True,
            made_as=str(made.get("made_as", made.get("how", ""))), head=str(made.get("head", "")),
            plates={str(name): self.path_map.to_client(path) for name, path in _object(header, "plates").items()
                    if isinstance(path, str)},
            kept=[str(name) for name in kept] if isinstance(kept, list) else [],
            images=_reply_images(header, buffers) if images is None else images, timings=timings,
            downsample_ratio=_ratio(made.get("downsample_ratio")), batch=max(1, _int(made.get("batch", 1))))
