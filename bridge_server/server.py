"""The bridge server: one ROUTER socket, models loaded once, many clients and clips.

The main thread owns the socket (ZeroMQ sockets are not thread-safe): it decodes requests,
answers the quick ones, hands frames to the stages and clip opening and render planning to a
small control pool, and sends every reply that other threads queue for it. Each request id's
reply is remembered for a while, so a client that times out and sends the same request again
gets the same reply, and a request still running gains a second recipient instead of a second
run. Nothing a client sends can stop the server: a request that hits a bug is answered
``internal`` and the server goes on. Replies to clients that went away are dropped by ZeroMQ.

Run it as ``rvm-bridge serve`` or ``python -m bridge_server serve``.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import queue
import signal
import socket as pysocket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import zmq

from rvm_engine import __version__
from rvm_engine.stages import pool_sizes

from .client.addresses import bind_address, is_loopback, split_tcp
from .client.errors import BadParameter, BridgeError, ClipConflict
from .client.parameters import CLIP_PARAMETERS, MODELS
from .client.pathmap import PathMap
from .client.protocol import (
    DEFAULT_ADDRESS,
    PROTOCOL_VERSION,
    Limits,
    Request,
    decode_request,
    encode,
    error_header,
    parse_header,
    peek_id,
    reply_header,
    split_envelope,
)
from .clips import Clip, ClipRegistry, ModelCache, Output
from .curve import HandshakeWatch, secure_server
from .frame_order import ClipOrder
from .roots import PlateRoots
from .shared_segments import SharedSegments
from .stages import FramePipeline

log = logging.getLogger("rvm_bridge.server")
_READERS, _WRITERS = pool_sizes()
# Replies the client must not get again for a retry: the same request later may succeed.
_NOT_REMEMBERED = ("busy", "shutting_down", "too_many_clips")
MAX_WAIT_S = 86400.0
# Many clips on one GPU: at most this many clips' frames in one network call. On the CPU batching
# is off by default: a batch ran no faster per frame there (docs/server.md, "Many clips on one GPU").
BATCH_MAX = 8


@dataclass
class ServerConfig:
    """How a bridge serves; sizes are bytes, times seconds, frame counts inclusive."""

    roots: Sequence[str]
    address: str = DEFAULT_ADDRESS
    keys_dir: Optional[str] = None
    device: str = "cpu"
    workers: int = 2
    readers: int = _READERS
    writers: int = _WRITERS
    memory_budget: int = 4 * 1024 ** 3
    max_clips: int = 32
    max_queued_per_clip: int = 64
    limits: Limits = field(default_factory=Limits)
    preroll_limit: int = 48
    cold_preroll: int = 12
    inline_wait: float = 3.0
    max_heads: int = 4
    head_live: float = 30.0
    threads: Optional[int] = None
    batch_max: Optional[int] = None  # clips' frames run as one batch; None: BATCH_MAX on CUDA, 1 (off) on the CPU
    preload: Sequence[str] = ("mobilenetv3",)
    path_map: PathMap = field(default_factory=PathMap)
    remembered_replies: int = 4096
    ready_file: Optional[str] = None
    shared_memory: int = 4 * 1024 ** 3  # bytes of clients' segments mapped at most; 0: none offered
    colour_on: str = "auto"  # where every clip's colour runs: auto (torch on CUDA, OCIO on the CPU), ocio, torch

    def batch_size(self) -> int:
        """The most clips' frames one network call runs: ``batch_max``, else by device."""
        if self.batch_max is not None:
            return self.batch_max
        return BATCH_MAX if self.device.startswith("cuda") else 1

    def check(self) -> None:
        """Raise BadParameter for settings that contradict each other or make no sense."""
        for name in ("workers", "readers", "writers", "max_clips", "max_queued_per_clip", "max_heads",
                     "memory_budget"):
            if getattr(self, name) < 1:
                raise BadParameter(f"{name.replace('_', '-')} {getattr(self, name)} must be at least 1")
        if self.preroll_limit < 0 or not 0 <= self.cold_preroll <= self.preroll_limit:
            raise BadParameter(f"cold-preroll {self.cold_preroll} must be in 0..preroll-limit ({self.preroll_limit})")
        # Not NaN, and within a day: a worker waits on the condition for these, and a wait past
        # the platform's time_t (1e300, inf) raises in the worker and stops it.
        if not (0 <= self.inline_wait <= MAX_WAIT_S and 0 <= self.head_live <= MAX_WAIT_S):
            raise BadParameter(f"inline-wait and head-live must be 0..{MAX_WAIT_S} seconds")
        if self.batch_max is not None and self.batch_max < 1:
            raise BadParameter(f"batch-max {self.batch_max} must be at least 1 (1: each frame alone)")
        if self.threads is not None and self.threads < 1:
            raise BadParameter(f"threads {self.threads} must be at least 1")
        from rvm_engine.clip import COLOUR_ON  # torch comes with it: not at import time

        if self.colour_on not in COLOUR_ON:
            raise BadParameter(f"colour-on {self.colour_on!r} is not one of {', '.join(COLOUR_ON)}")
        if self.shared_memory < 0:
            raise BadParameter(f"shared-memory {self.shared_memory} must be 0 (none) or more bytes")
        if self.limits.max_image_side < 1:
            raise BadParameter(f"max-image-side {self.limits.max_image_side} must be at least 1")


@dataclass
class InFlight:
    """A request being worked on: where its reply goes, and what to log."""

    routes: List[List[Any]]
    request: Request
    started: float
    signature: bytes = b""


class BridgeServer:
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

    def _guarded(self, operation: Any, request: Request) -> None:
        try:
            self.deliver(request.id, operation(request), [])
        except Exception as error:  # noqa: BLE001 - every failure becomes an error reply
            code, message = self.engine.error_code(error)
            if code == "internal":
                self.internal_errors += 1
                log.error("%s failed", request.op, exc_info=error)
            self.deliver(request.id, {"error": {"code": code, "message": message}}, [])

    def _hello(self, request: Request) -> Dict[str, Any]:
        limits = self.config.limits
        return {"server": "rvm-bridge", "version": __version__, "device": self.config.device, "os": os.name,
                "roots": list(self.roots.roots), "path_map": self.config.path_map.to_json(),
                "preroll_limit": self.config.preroll_limit, "shared_memory": self.shared.offered,
                "limits": {"max_header_bytes": limits.max_header_bytes, "max_buffer_bytes": limits.max_buffer_bytes,
                           "max_image_side": limits.max_image_side, "max_image_pixels": limits.max_image_pixels,
                           "max_clips": self.config.max_clips, "max_shared_bytes": self.shared.limit}}

    def _describe_models(self, request: Request) -> Dict[str, Any]:
        loaded = {model["variant"] for model in self.models.describe()}
        choices = {"compression": tuple(getattr(self.engine, "compressions", ()))}
        return {"models": [{"name": name, "help": text, "loaded": name in loaded} for name, text in MODELS],
                "parameters": [parameter.describe(choices.get(parameter.name)) for parameter in CLIP_PARAMETERS],
                "colour_spaces": self.engine.colour_spaces(), "device": self.config.device}

    def _status(self, request: Request) -> Dict[str, Any]:
        now = time.monotonic()
        with self.lock:
            clips = [clip.describe(self.engine.state_nbytes, now) for clip in self.registry.clips.values()]
            fps = self.pipeline.throughput()
            memory = self.registry.memory()
            frames_total = self.pipeline.frames_total
            dropped = dict(self.registry.dropped, recent=list(self.registry.recent_drops))
            over = self.registry.over_budget
            batches, batched = self.pipeline.batches, self.pipeline.batched_frames
        return {"uptime_s": round(now - self.started, 3), "device": self.config.device,
                "models": self.models.describe(), "clips": clips,
                "queue_depth": sum(clip["queued"] + clip["busy"] for clip in clips),
                "requests_in_flight": len(self.in_flight), "frames_total": frames_total,
                "throughput_fps": round(fps, 3), "memory_bytes": memory["total"], "memory": memory,
                "memory_budget": self.registry.memory_budget, "over_budget_bytes": over, "dropped": dropped,
                "internal_errors": self.internal_errors, "refused_connections": self.handshakes.refused,
                "batching": {"batch_max": self.pipeline.batch_max, "batches": batches, "batched_frames": batched,
                             "mean_batch": round(batched / batches, 3) if batches else 0.0},
                "shared_memory": self.shared.describe()}

    def _attach_shared(self, request: Request) -> Dict[str, Any]:
        assert request.attach is not None
        return self.shared.attach(request.attach)

    def _detach_shared(self, request: Request) -> Dict[str, Any]:
        return self.shared.detach(request.segment, request.token)

    def _open_clip(self, request: Request) -> Dict[str, Any]:
        settings = self._server_paths(request.settings)
        model = self.models.get(settings["variant"], settings["checkpoint"], settings["refiner"])
        requested = dict(settings)
        if settings["source"] and settings["first_frame"] is None:
            settings["first_frame"] = self.engine.first_frame_on_disk(settings["source"])
        self.engine.new_state(settings, model)  # fails now, not on the first frame, for unusable settings
        self.engine.check_outputs(settings)
        config = self.config
        now = time.monotonic()
        with self.lock:
            existing = self.registry.clips.get(request.clip)
            if existing is not None:
                if existing.requested != requested:
                    raise ClipConflict(f"clip {request.clip} is open with other settings; close it or use another id")
                existing.last_used = now
                return {"clip": request.clip, "kind": existing.kind, "attached": True, "settings": existing.settings}
            evicted = self.registry.make_room(now)
            if evicted:
                log.info("clip limit: closed idle clip %s", evicted)
            order = ClipOrder(sequence=bool(settings["source"]), first_frame=settings["first_frame"],
                              preroll_limit=config.preroll_limit, cold_preroll=config.cold_preroll,
                              wait_s=config.inline_wait, max_heads=config.max_heads, live_s=config.head_live)
            clip = self.registry.clips[request.clip] = Clip(request.clip, settings, model, order)
            clip.requested = requested
        return {"clip": request.clip, "kind": clip.kind, "attached": False, "settings": settings}

    def _server_paths(self, settings: Dict[str, Any]) -> Dict[str, Any]:
        """Settings with every path checked against the roots (spelled as the roots are)."""
        resolved = dict(settings)
        if settings["source"]:
            resolved["source"] = self.roots.resolve_pattern(settings["source"], "source")
        for key in ("checkpoint", "ocio_config"):
            if settings[key] and not settings[key].startswith("ocio://"):
                resolved[key] = self.roots.resolve(settings[key], key)
        resolved["outputs"] = {name: (self.roots.resolve_pattern(pattern, name + " output") if pattern else None)
                               for name, pattern in settings["outputs"].items()}
        return resolved

    def _plan_render(self, request: Request) -> Dict[str, Any]:
        plan = request.plan
        assert plan is not None
        source = self.roots.resolve_pattern(plan.source, "source")
        outputs = {name: self.roots.resolve_pattern(pattern, name + " output")
                   for name, pattern in plan.outputs.items() if pattern}
        return self.engine.plan_render(source, plan.frames, outputs, resume=plan.resume, shot_start=plan.shot_start,
                                       preroll=plan.preroll, resume_limit=plan.resume_limit)

    def _try_ratios(self, request: Request) -> Dict[str, Any]:
        """Matte a stretch of a sequence at several ratios and write the contact sheet (long: it
        runs on a control thread, and the client hears "still running" while it waits)."""
        asked = request.ratios
        assert asked is not None
        settings = dict(asked.settings)
        for key in ("checkpoint", "ocio_config"):
            if settings[key] and not settings[key].startswith("ocio://"):
                settings[key] = self.roots.resolve(settings[key], key)
        source = self.roots.resolve_pattern(asked.source, "source")
        sheet = self.roots.resolve(asked.sheet, "contact sheet") if asked.sheet else None
        model = self.models.get(settings["variant"], settings["checkpoint"], settings["refiner"])
        # The sweep takes minutes: the sheet's folder is checked again right before it is written
        # (a folder swapped for a symlink meanwhile must not lead out of the roots).
        return self.engine.try_ratios(source, asked.frames, asked.ratios, settings, model, preroll=asked.preroll,
                                      sheet=sheet, check_sheet=lambda path: self.roots.check_folder_of(
                                          path, "contact sheet"))

    def _close_clip(self, request: Request) -> Dict[str, Any]:
        with self.lock:
            clip = self.registry.get(request.clip)
            if clip.busy or clip.order.pending:
                log.info("closing clip %s with frames in hand: they are still answered", clip.id)
            del self.registry.clips[clip.id]
            queued = [ticket for entry in clip.order.pending.values() for ticket in entry.tickets]
            deferred = [r for entry in clip.order.pending.values() for r in entry.deferred]
            clip.order.pending.clear()
            made = len(clip.order.made)
            clip.forget_outputs()
            self.lock.notify_all()
        message = f"clip {clip.id} was closed before this frame ran"
        for request_id in [ticket.request.id for ticket in queued] + [r.id for r in deferred]:
            self.deliver(request_id, {"error": {"code": "unknown_clip", "message": message}}, [])
        return {"clip": clip.id, "frames_run": clip.frames_run, "frames_made": made}

    # -- replies -----------------------------------------------------------------------------
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
