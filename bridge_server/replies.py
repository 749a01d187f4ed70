"""The bridge's replies: queued by any thread, sent by the socket's, remembered for retries.

Any thread queues a reply (``deliver``) and wakes the main thread through a socket pair; the
main thread sends it to every client waiting for that request id (``flush``) and remembers it
for a while, so a client that times out and sends the same request again gets the same reply.
A request's ``signature`` tells such a retry from another request under a used id. ``Replies``
is the bottom layer of ``BridgeServer`` (server.py).
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import queue
import socket as pysocket
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import zmq

from .client.protocol import Request, encode, error_header, reply_header
from .clips import Output
from .server_config import ServerConfig

log = logging.getLogger("rvm_bridge.server")
# Replies the client must not get again for a retry: the same request later may succeed.
_NOT_REMEMBERED = ("busy", "shutting_down", "too_many_clips")


@dataclass
class InFlight:
    """A request being worked on: where its reply goes, and what to log."""

    routes: List[List[Any]]
    request: Request
    started: float
    signature: bytes = b""


class Replies:
    """Queuing, sending and remembering replies, and waking the socket's thread to send them."""

    # Set by BridgeServer.__init__ (server.py).
    config: ServerConfig
    router: zmq.Socket[bytes]
    outbox: queue.SimpleQueue[Tuple[str, Dict[str, Any], List[Any], Optional[Output]]]
    in_flight: Dict[str, InFlight]
    remembered: collections.OrderedDict[str, Tuple[Dict[str, Any], Optional[Output], bytes]]
    _wake_send: pysocket.socket
    _wake_receive: pysocket.socket

    def deliver(self, request_id: str, header: Dict[str, Any], buffers: List[Any],
                output: Optional[Output] = None) -> None:
        """Queue the reply to ``request_id`` (any thread); ``header`` holds the op's fields, or
        ``{"error": {"code", "message"}}``; ``output`` is the clip record inline buffers come from."""
        self.outbox.put((request_id, header, buffers, output))
        self._wake()

    def flush(self) -> None:
        """Send every queued reply to each client waiting for it, and remember it (main thread)."""
        while True:
            try:
                request_id, fields, buffers, output = self.outbox.get_nowait()
            except queue.Empty:
                return
            job = self.in_flight.pop(request_id, None)
            if job is None:
                continue
            op = job.request.op
            if "error" in fields:
                header = error_header(request_id, op, fields["error"]["code"], fields["error"]["message"])
            else:
                header = reply_header(request_id, op, **fields)
            for route in job.routes:
                self._send(route, header, buffers)
            if not ("error" in fields and fields["error"]["code"] in _NOT_REMEMBERED):
                self._remember(request_id, header, output, job.signature)
            log.info(describe_reply(job, header, time.monotonic() - job.started))

    def _remember(self, request_id: str, header: Dict[str, Any], output: Optional[Output], signed: bytes) -> None:
        # Bounded in count; inline pixels belong to the clip's record and count in its budget.
        # Outputs written to the client's shared memory stay there: the header alone answers a retry.
        buffered = bool(header.get("inline")) and not _in_shared_memory(header)
        if buffered and not (output is not None and output.images):
            return  # its pixels are gone already: a retry makes the frame again
        self.remembered[request_id] = (header, output if buffered else None, signed)
        while len(self.remembered) > self.config.remembered_replies:
            self.remembered.popitem(last=False)

    def _send(self, route: List[Any], header: Dict[str, Any], buffers: Sequence[Any]) -> None:
        try:
            self.router.send_multipart(list(route) + encode(header, buffers), copy=False)
        except zmq.ZMQError as error:  # the peer is gone or its queue is full: its loss alone
            log.warning("could not send a reply: %s", error)

    def _wake(self) -> None:
        try:
            self._wake_send.send(b"x")
        except (BlockingIOError, OSError):
            pass  # a wake-up is already pending, or we are shutting down

    def _drain_wake(self) -> None:
        try:
            while self._wake_receive.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass


def _in_shared_memory(header: Dict[str, Any]) -> bool:
    inline = header.get("inline")
    return isinstance(inline, dict) and any(isinstance(spec, dict) and "segment" in spec for spec in inline.values())


def signature(body: Sequence[Any]) -> bytes:
    """What tells a retry from another request under the same id: the header's content (whatever
    the key order or spacing) and the buffers' sizes. A retry sends the same message again."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps(json.loads(bytes(body[0])), sort_keys=True, separators=(",", ":")).encode("utf-8"))
    digest.update(repr([len(part) for part in body[1:]]).encode("ascii"))
    return digest.digest()


def describe_reply(job: InFlight, header: Dict[str, Any], elapsed: float) -> str:
    """One log line for a finished request."""
    request = job.request
    words = [f"op={request.op}"]
    if request.client:
        words.append(f"client={request.client!r}")
    if request.clip:
        words.append(f"clip={request.clip}")
    if request.op == "frame":
        words.append(f"frame={request.frame}")
    if request.attach is not None:
        words.append(f"pid={request.attach.pid} bytes={request.attach.nbytes}")
    if not header.get("ok"):
        error = header.get("error", {})
        words.append(f"error={error.get('code')} ({error.get('message')})")
    elif request.op == "frame":
        made = header.get("made", {})
        words.append(f"how={made.get('how')} preroll={made.get('preroll_frames')} exact={made.get('exact')} "
                     f"head={made.get('head')}")
        if made.get("batch", 1) > 1:
            words.append(f"batch={made['batch']}")
        timings = header.get("timings", {})
        words.extend(f"{key}={1000 * timings[key]:.1f}ms" for key in ("read", "preroll", "network", "write")
                     if key in timings)
    words.append(f"total={1000 * elapsed:.1f}ms")
    return " ".join(words)
