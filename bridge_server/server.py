"""The bridge server: one ROUTER socket, models loaded once, many clients and clips.

The main thread owns the socket (ZeroMQ sockets are not thread-safe): it decodes requests,
answers the quick ones, hands frames to the stages and clip opening and render planning to a
small control pool, and sends every reply that other threads queue for it. Each request id's
reply is remembered for a while, so a client that times out and sends the same request again
gets the same reply, and a request still running gains a second recipient instead of a second
run. Nothing a client sends can stop the server: a request that hits a bug is answered
``internal`` and the server goes on. Replies to clients that went away are dropped by ZeroMQ.

Its parts are layers of one ``BridgeServer``: ``Operations`` (operations.py: what it answers
besides frames) on ``Replies`` (replies.py: the outbox, the reply store, sending); frames go to
the stages (stages.py), and its settings are a ``ServerConfig`` (server_config.py). This module
holds the socket's life: binding, the poll loop, decoding each request and starting its answer,
shutting down.

Run it as ``rvm-bridge serve`` or ``python -m bridge_server serve``.
"""

from __future__ import annotations

import collections
import logging
import queue
import signal
import socket as pysocket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Tuple

import zmq

from rvm_engine import __version__

from .client.addresses import bind_address, is_loopback, split_tcp
from .client.errors import BadParameter, BridgeError
from .client.protocol import (
    PROTOCOL_VERSION,
    Request,
    decode_request,
    error_header,
    parse_header,
    peek_id,
    reply_header,
    split_envelope,
)
from .clips import ClipRegistry, ModelCache, Output
from .curve import HandshakeWatch, secure_server
from .operations import Operations
from .replies import InFlight, signature
from .roots import PlateRoots
from .server_config import ServerConfig
from .shared_segments import SharedSegments
from .stages import FramePipeline

log = logging.getLogger("rvm_bridge.server")


class BridgeServer(Operations):
    """A bridge bound to ``config.address``; ``serve_forever`` until ``stop`` or a signal."""

    def __init__(self, config: ServerConfig, engine: Any = None) -> None:
        config.check()
        if not config.address.startswith(("ipc://", "inproc://")):
            split_tcp(config.address)
        if not is_loopback(config.address) and not config.keys_dir:
            raise BadParameter(f"{config.address} listens beyond this machine; give CURVE keys (--keys DIR, made by "
                               "`rvm-bridge keys DIR`) or use a loopback address")
        self.roots = PlateRoots(config.roots)
        if engine is None:
            from .engine_adapter import Engine
            engine = Engine(config.device, config.threads, config.colour_on)
        self.config = config
        self.engine = engine
        self.lock = threading.Condition()
        self.models = ModelCache(engine.load_model)
        self.registry = ClipRegistry(max_clips=config.max_clips, memory_budget=config.memory_budget,
                                     state_nbytes=engine.state_nbytes)
        self.outbox: queue.SimpleQueue[Tuple[str, Dict[str, Any], List[Any], Optional[Output]]] = queue.SimpleQueue()
        self.in_flight: Dict[str, InFlight] = {}
        # id -> (header, the clip's record its inline buffers come from, the request's signature):
        # the store holds no pixels of its own, so the memory budget that drops a record's pixels
        # frees them.
        self.remembered: collections.OrderedDict[str, Tuple[Dict[str, Any], Optional[Output], bytes]] = \
            collections.OrderedDict()
        self.internal_errors = 0
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._wake_send, self._wake_receive = pysocket.socketpair()
        self._wake_send.setblocking(False)
        self._wake_receive.setblocking(False)
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 1000)
        self.router.setsockopt(zmq.MAXMSGSIZE, max(config.limits.max_buffer_bytes, config.limits.max_header_bytes))
        self.authenticator = None
        try:
            self.authenticator = secure_server(self.router, config.keys_dir, self.context) if config.keys_dir else None
            self.handshakes = HandshakeWatch(self.router)
            self.router.bind(bind_address(config.address))
        except BaseException as error:
            # destroy, not term: term waits for every socket, the handshake monitor's too, forever.
            if self.authenticator is not None:
                self.authenticator.stop()
            self.context.destroy(linger=0)
            if isinstance(error, zmq.ZMQError):
                busy = " (another bridge or program is listening there: stop it or choose another --address)" \
                    if error.errno == zmq.EADDRINUSE else ""
                raise BadParameter(f"cannot listen on {config.address}: {error.strerror}{busy}") from None
            raise
        self.endpoint = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        # Only clients on this host can lend memory; a bridge others reach by tcp still offers it
        # to those on loopback, and the token check refuses the rest.
        self.shared = SharedSegments(config.shared_memory)
        self.control = ThreadPoolExecutor(2, thread_name_prefix="rvm-open")
        # try_ratios runs for minutes on real plates: its own thread, one at a time, so it never
        # holds up opening clips or planning renders, and a flood of them is answered busy.
        self.sweeps = ThreadPoolExecutor(1, thread_name_prefix="rvm-ratios")
        self.pipeline = FramePipeline(engine=engine, registry=self.registry, roots=self.roots, lock=self.lock,
                                      deliver=self.deliver, workers=config.workers, readers=config.readers,
                                      writers=config.writers, max_queued=config.max_queued_per_clip,
                                      limits=config.limits, batch_max=config.batch_size(), shared=self.shared)

    # -- life --------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Serve until ``stop`` (or SIGINT/SIGTERM when run on the main thread), then shut down:
        frames being run and written finish and are answered, then the sockets close."""
        if threading.current_thread() is threading.main_thread():
            for name in ("SIGINT", "SIGTERM", "SIGBREAK"):  # SIGBREAK: Ctrl-Break on Windows
                if hasattr(signal, name):
                    signal.signal(getattr(signal, name), lambda *_: self.stop())
        for variant in self.config.preload:
            self.models.get(variant, None, "deep_guided_filter")
        log.info("rvm-bridge %s listening on %s (protocol %d, device %s, roots %s)", __version__, self.endpoint,
                 PROTOCOL_VERSION, self.config.device, ", ".join(self.roots.roots))
        if self.config.ready_file:
            with open(self.config.ready_file, "w", encoding="utf-8") as ready:
                ready.write(self.endpoint + "\n")
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self._wake_receive.fileno(), zmq.POLLIN)
        if self.handshakes.socket is not None:
            poller.register(self.handshakes.socket, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(500))
                if self.router in events:
                    for _ in range(64):  # bounded, so replies are not starved by a flood of requests
                        try:
                            parts = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self.handle([part.buffer for part in parts])
                self.handshakes.drain()
                self._drain_wake()
                self.flush()
                self.shared.sweep()
        finally:
            self.shutdown()

    def stop(self) -> None:
        """Ask the server to stop (safe from signal handlers and other threads)."""
        self._stop.set()
        self._wake()

    def shutdown(self) -> None:
        log.info("stopping: finishing the frames in hand")
        self.pipeline.stop()
        self.control.shutdown(wait=True)
        self.sweeps.shutdown(wait=True)
        self.flush()
        self.shared.close_all()
        self.handshakes.close()
        self.router.close(linger=1000)
        if self.authenticator is not None:
            self.authenticator.stop()
        self.context.term()
        self._wake_send.close()
        self._wake_receive.close()
        log.info("stopped")

    # -- requests ----------------------------------------------------------------------------
    def handle(self, parts: List[Any]) -> None:
        """Decode one message and start answering it (main thread only). Never raises: a bug
        while handling one request answers that request ``internal``."""
        route, body = split_envelope(parts)
        request_id, op = "", ""
        try:
            try:
                request = decode_request(body, self.config.limits)
            except BridgeError as error:
                try:
                    request_id, op = peek_id(parse_header(body[0], self.config.limits)) if body else ("", "")
                except BridgeError:
                    pass
                log.warning("refused %s message: [%s] %s", op or "a", error.code, error.message)
                self._send(route, error_header(request_id, op, error.code, error.message,
                                               server_protocol=PROTOCOL_VERSION), [])
                return
            request_id, op = request.id, request.op
            self._start(route, request, signature(body))
        except Exception as error:  # noqa: BLE001 - one request's bug must not stop the server
            self.internal_errors += 1
            log.error("request %s (%s) hit a bug; answered internal and serving on", request_id or "?", op or "?",
                      exc_info=error)
            self.in_flight.pop(request_id, None)
            self._send(route, error_header(request_id, op, "internal", f"the bridge hit a bug handling this "
                                           f"request ({type(error).__name__}); its log has the traceback"), [])

    def _start(self, route: List[Any], request: Request, signed: bytes = b"") -> None:
        earlier = self.remembered.get(request.id) or self.in_flight.get(request.id)
        if earlier is not None and (earlier[2] if isinstance(earlier, tuple) else earlier.signature) != signed:
            # Not a retry: another request under a used id (a client counting ids from 1 again
            # after a restart) must not be answered with the old request's reply, nor merged into it.
            self._send(route, error_header(request.id, request.op, "bad_message",
                                           f"request id {request.id} was already used for another request; give "
                                           "each request a new id (send the same id only to retry the same "
                                           "request)"), [])
            return
        remembered = self.remembered.get(request.id)
        if remembered is not None:
            header, output, _ = remembered
            if output is None or output.images or not header.get("inline"):
                self.remembered.move_to_end(request.id)
                log.info("op=%s id=%s repeated: sending the reply already made", request.op, request.id)
                self._send(route, header, [data for _, _, _, data in output.images] if output else [])
                return
            del self.remembered[request.id]  # its pixels were dropped: make the frame again
        if request.id in self.in_flight:
            # A retry of a request still running: it gets the one reply when it is made, and
            # at once a note that the work goes on, so its client's retries are not used up.
            job = self.in_flight[request.id]
            job.routes.append(route)
            self._send(route, reply_header(request.id, request.op, pending=True,
                                           running_s=round(time.monotonic() - job.started, 3)), [])
            return
        self.in_flight[request.id] = InFlight([route], request, time.monotonic(), signed)
        if self._stop.is_set():
            self.deliver(request.id, {"error": {"code": "shutting_down", "message": "the bridge is stopping"}}, [])
        elif request.op == "frame":
            with self.lock:
                try:
                    clip = self.registry.get(request.clip)
                    if request.shared is not None or request.shared_outputs is not None:
                        self.shared.bind(request, clip.settings["inline_dtype"] if clip.settings["inline_outputs"]
                                         else None)
                    self.pipeline.submit(clip, request)
                except BridgeError as error:
                    self.deliver(request.id, {"error": {"code": error.code, "message": error.message}}, [])
        elif request.op == "try_ratios":
            if any(job.request.op == "try_ratios" for rid, job in self.in_flight.items() if rid != request.id):
                self.deliver(request.id, {"error": {"code": "busy", "message": "another try_ratios is running; the "
                                                    "bridge runs one at a time: ask again when it is done"}}, [])
            else:
                self.sweeps.submit(self._guarded, self._try_ratios, request)
        elif request.op in ("open_clip", "plan_render"):
            operation = {"open_clip": self._open_clip, "plan_render": self._plan_render}[request.op]
            self.control.submit(self._guarded, operation, request)
        else:
            self._guarded({"hello": self._hello, "describe_models": self._describe_models, "status": self._status,
                           "close_clip": self._close_clip, "attach_shared": self._attach_shared,
                           "detach_shared": self._detach_shared}[request.op], request)

