"""The frame pipeline: read, run the network, write — as overlapping stages.

A frame request is queued on its clip at once (so frame order is decided by frame number,
not by which read finishes first), and its plate is read by the reader pool meanwhile. Worker
threads take runnable frames, one clip at a time each (a clip's frames never run in
parallel), pre-roll where the scheduler says so, run the network, and hand the result to the
writer pool; the reply goes out once the plates are written. So reading frame N+1, running N
and writing N-1 overlap when a client keeps several requests queued.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .errors import BridgeError, RemoteError
from .protocol import Request
from .registry import Clip, ClipRegistry, Output
from .roots import PlateRoots
from .scheduler import Pending, Plan

log = logging.getLogger("rvm_bridge.server")
Deliver = Callable[[str, Dict[str, Any], List[Any]], None]


@dataclass
class Ticket:
    """One frame request waiting for its reply."""

    request: Request
    arrived: float
    timings: Dict[str, float] = field(default_factory=dict)


@dataclass
class Source:
    """A frame's source as read: the engine's plate and what identifies its pixels."""

    plate: Any
    fingerprint: Any
    read_s: float


class FramePipeline:
    """Reader pool, worker threads and writer pool for every clip of one server."""

    def __init__(self, *, engine: Any, registry: ClipRegistry, roots: PlateRoots, lock: threading.Condition,
                 deliver: Deliver, workers: int = 2, readers: int = 2, writers: int = 2, max_queued: int = 64) -> None:
        self.engine = engine
        self.registry = registry
        self.roots = roots
        self.lock = lock
        self.deliver = deliver
        self.max_queued = max_queued
        self.readers = ThreadPoolExecutor(readers, thread_name_prefix="rvm-read")
        self.writers = ThreadPoolExecutor(writers, thread_name_prefix="rvm-write")
        self.stopping = False
        self.completed: List[float] = []  # monotonic times of frames made, for throughput
        self.frames_total = 0
        self.threads = [threading.Thread(target=self._work, name=f"rvm-worker-{n}", daemon=True)
                        for n in range(max(1, workers))]
        for thread in self.threads:
            thread.start()

    # -- stage 1: queue and read ------------------------------------------------------------
    def submit(self, clip: Clip, request: Request) -> None:
        """Queue a frame request on its clip (caller holds the lock) and start reading it.

        Raises BridgeError ``too_large`` when the clip already has ``max_queued`` frames waiting.
        """
        if request.frame not in clip.order.pending and len(clip.order.pending) >= self.max_queued:
            raise BridgeError(f"clip {clip.id} already has {self.max_queued} frames queued; wait for their replies "
                              "before sending more", "too_large")
        ticket = Ticket(request, time.monotonic())
        entry, new = clip.order.add(request.frame, ticket, ticket.arrived)
        clip.last_used = ticket.arrived
        if new:
            self.readers.submit(self._prepare, clip, entry, request)

    def _prepare(self, clip: Clip, entry: Pending, request: Request) -> None:
        started = time.monotonic()
        try:
            path, fingerprint = self._locate(clip, request)
            with self.lock:
                if self._serve_made(clip, entry.frame, fingerprint, entry.tickets):
                    clip.order.discard(entry.frame)
                    return
            if request.inline is not None:
                plate = self.engine.inline_plate(request.buffers[request.inline.buffer], request.inline)
            else:
                plate = self.engine.read(path, clip.settings)
            plate = self.engine.prepare(plate, clip.settings)  # colour into the model's space, here
            with self.lock:
                entry.source = Source(plate, fingerprint, time.monotonic() - started)
                entry.prepared = True
                for ticket in entry.tickets:
                    ticket.request.buffers = []  # the plate holds the pixels now
                self.lock.notify_all()
        except Exception as error:  # noqa: BLE001 - every failure becomes an error reply
            with self.lock:
                if clip.order.pending.get(entry.frame) is entry:
                    clip.order.discard(entry.frame)
                tickets = list(entry.tickets)
                self.lock.notify_all()
            self._fail(tickets, error)

    def _locate(self, clip: Clip, request: Request) -> Tuple[str, Any]:
        if request.inline is not None:
            # CRC-32 with shape, dtype and frame number identifies a resent frame; a cryptographic hash
            # cost 18 ms a 1080p frame, a tenth of the network on a 2-core CPU (bench_bridge.py).
            buffer = request.buffers[request.inline.buffer]
            return "", ("inline", request.inline.shape, request.inline.dtype, len(buffer), zlib.crc32(buffer))
        if request.source_path is not None:
            path = request.source_path
        elif clip.settings.get("source"):
            path = self.engine.source_path(clip.settings["source"], request.frame)
        else:
            raise RemoteError(f"clip {clip.id} has no source pattern: send frame {request.frame} by path or inline",
                              "bad_parameter")
        path = self.roots.resolve(path, "source plate")
        try:
            stat = os.stat(path)
        except OSError as error:
            raise RemoteError(f"cannot read source plate {path}: {error.strerror}", "plate_error") from None
        return path, ("file", path, stat.st_mtime_ns, stat.st_size)

    def _serve_made(self, clip: Clip, frame: int, fingerprint: Any, tickets: List[Ticket]) -> bool:
        """Answer ``tickets`` from a frame the clip already made from the same source (caller
        holds the lock): now if its plates exist, or when its write finishes."""
        output = clip.outputs.get(frame)
        if output is None or output.fingerprint != fingerprint:
            return False
        if not output.done:
            output.waiters.extend(tickets)
            return True
        if not all(os.path.exists(path) for path in output.plates.values()):
            del clip.outputs[frame]
            return False
        made = dict(output.made, how="cache", made_as=output.made["how"], preroll_frames=0)
        for ticket in tickets:
            self._reply(clip, frame, ticket, made, output)
        return True

    # -- stage 2: order and network ----------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self.lock:
                job = self._next_job()
                while job is None:
                    if self.stopping:
                        return
                    self.lock.wait(self._wait_time())
                    job = self._next_job()
                clip, plan = job
            try:
                self._run(clip, plan)
            finally:
                with self.lock:
                    clip.busy = False
                    clip.sync_states()
                    for evicted in self.registry.enforce_budget():
                        log.info("memory budget: dropped the recurrent states of clip %s", evicted)
                    self.lock.notify_all()

    def _next_job(self) -> Optional[Tuple[Clip, Plan]]:
        if self.stopping:
            return None
        now = time.monotonic()
        waiting = [clip for clip in self.registry.clips.values() if clip.order.pending and not clip.busy]
        waiting.sort(key=lambda clip: min(entry.arrived for entry in clip.order.pending.values()))
        for clip in waiting:
            plan = clip.order.take(now)
            if plan is not None:
                clip.busy = True
                return clip, plan
        return None

    def _wait_time(self) -> Optional[float]:
        now = time.monotonic()
        deadlines = [d for d in (clip.order.deadline(now) for clip in self.registry.clips.values() if not clip.busy)
                     if d is not None]
        return min(deadlines) - now + 0.001 if deadlines else None

    def _run(self, clip: Clip, plan: Plan) -> None:
        entry = plan.pending
        source: Source = entry.source
        with self.lock:
            if self._serve_made(clip, plan.frame, source.fingerprint, entry.tickets):
                return
        tickets = entry.tickets
        try:
            if plan.probe:
                clip.order.resolve_cold_start(
                    plan, lambda frame: self.engine.source_exists(clip.settings["source"], frame))
            tickets = self._refuse_strict(plan, tickets)
            if not tickets:
                return
            started = time.monotonic()
            state = clip.states.get(plan.head.id)
            if state is None:
                state = self.engine.new_state(clip.settings, clip.model)
            elif plan.cold:
                self.engine.reset(state)
            preroll_s = self._preroll(clip, state, plan.preroll)
            network_started = time.monotonic()
            # Inline replies carry the foreground too, plates or not.
            result = self.engine.matte(state, source.plate, plan.frame,
                                       foreground=True if clip.settings["inline_outputs"] else None)
            network_s = time.monotonic() - network_started
        except Exception as error:  # noqa: BLE001 - the clip goes on; the frame's requests hear why
            with self.lock:
                clip.order.finish(plan, False, time.monotonic())
            self._fail(tickets, error)
            return
        made = {"how": plan.how, "preroll_frames": len(plan.preroll), "exact": plan.exact, "made_as": plan.how}
        for ticket in tickets:
            ticket.timings.update(queued=started - ticket.arrived, read=source.read_s, preroll=preroll_s,
                                  network=network_s)
        with self.lock:
            clip.order.finish(plan, True, time.monotonic())
            clip.states[plan.head.id] = state
            clip.frames_run += 1 + len(plan.preroll)
            output = clip.outputs[plan.frame] = Output(source.fingerprint, made, waiters=list(tickets))
        self.writers.submit(self._write, clip, plan.frame, state, result, output)

    def _refuse_strict(self, plan: Plan, tickets: List[Ticket]) -> List[Ticket]:
        if plan.how == "sequence":
            return tickets
        strict = [ticket for ticket in tickets if ticket.request.strict]
        how = f"after {len(plan.preroll)} pre-roll frames" if plan.how == "preroll" else "from a cold state"
        self._fail(strict, BridgeError(f"frame {plan.frame} does not follow the clip's held state; it would be "
                                       f"made {how}", "out_of_order"))
        return [ticket for ticket in tickets if not ticket.request.strict]

    def _preroll(self, clip: Clip, state: Any, frames: List[int]) -> float:
        """Run ``frames`` without writing them; reads run ahead in the reader pool."""
        if not frames:
            return 0.0
        started = time.monotonic()
        pattern = clip.settings["source"]

        def read(frame: int) -> Any:
            plate = self.engine.read(self.roots.resolve(self.engine.source_path(pattern, frame)), clip.settings)
            return self.engine.prepare(plate, clip.settings)

        ahead: List[Future] = [self.readers.submit(read, frame) for frame in frames[:4]]
        for index, frame in enumerate(frames):
            if index + 4 < len(frames):
                ahead.append(self.readers.submit(read, frames[index + 4]))
            self.engine.matte(state, ahead[index].result(), frame, keep=False)
        return time.monotonic() - started

    # -- stage 3: write and reply ------------------------------------------------------------
    def _write(self, clip: Clip, frame: int, state: Any, result: Any, output: Output) -> None:
        started = time.monotonic()
        try:
            plates = self.engine.write(state, result, frame) if any(clip.settings["outputs"].values()) else {}
            images = self.engine.inline_outputs(result, clip.settings["inline_dtype"]) \
                if clip.settings["inline_outputs"] else []
        except Exception as error:  # noqa: BLE001
            with self.lock:
                if clip.outputs.get(frame) is output:
                    del clip.outputs[frame]
                waiters, output.waiters = output.waiters, []
            self._fail(waiters, error)
            return
        write_s = time.monotonic() - started
        with self.lock:
            output.plates, output.images, output.done = plates, images, True
            waiters, output.waiters = output.waiters, []
            self.frames_total += 1
            self.completed.append(time.monotonic())
        for ticket in waiters:
            ticket.timings.setdefault("write", write_s)
            self._reply(clip, frame, ticket, output.made, output)

    def _reply(self, clip: Clip, frame: int, ticket: Ticket, made: Dict[str, Any], output: Output) -> None:
        timings = {key: round(value, 6) for key, value in ticket.timings.items()}
        timings["server_total"] = round(time.monotonic() - ticket.arrived, 6)
        inline = {name: {"buffer": index, "shape": shape, "dtype": dtype}
                  for index, (name, shape, dtype, _) in enumerate(output.images)}
        header = {"clip": clip.id, "frame": frame, "made": made, "plates": dict(output.plates), "inline": inline,
                  "timings": timings}
        self.deliver(ticket.request.id, header, [data for _, _, _, data in output.images])

    def _fail(self, tickets: List[Ticket], error: BaseException) -> None:
        code, message = self.engine.error_code(error)
        if code == "internal":
            log.error("frame failed", exc_info=error)
        for ticket in tickets:
            self.deliver(ticket.request.id, {"error": {"code": code, "message": message}}, [])

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the frames being run and written (their requests are answered), refuse the
        frames still queued (``shutting_down``), then stop every thread."""
        with self.lock:
            self.stopping = True
            self.lock.notify_all()
        for thread in self.threads:
            thread.join(timeout)
        self.readers.shutdown(wait=True, cancel_futures=True)
        self.writers.shutdown(wait=True)
        with self.lock:
            queued = [ticket for clip in self.registry.clips.values()
                      for entry in clip.order.pending.values() for ticket in entry.tickets]
            for clip in self.registry.clips.values():
                clip.order.pending.clear()
        self._fail(queued, BridgeError("the bridge stopped before this frame ran; send it again once it is back",
                                       "shutting_down"))

    def throughput(self, window_s: float = 60.0) -> float:
        """Frames made per second over the last ``window_s`` seconds (caller holds the lock)."""
        cutoff = time.monotonic() - window_s
        self.completed = [t for t in self.completed if t >= cutoff]
        return len(self.completed) / window_s
