"""The bridge's stages: read, run the network, write — overlapping, for every clip.

A frame request is queued on its clip at once (so frame order is decided by frame number,
not by which read finishes first), and its plate is read by the reader pool meanwhile. Worker
threads take runnable frames, one clip at a time each (a clip's frames never run in
parallel), pre-roll where the frame order says so, run the network, and hand the result to the
writer pool; the reply goes out once the plates are written. So reading frame N+1, running N
and writing N-1 overlap when a client keeps several requests queued.

When several clips have a ready frame that is a plain next step (no pre-roll) of one model and
shape, a worker runs their network steps as one batch (``batch_max`` at most, 1 = off), each on
its clip's own state; everything else about each frame is as when it runs alone.

A frame already made from the same source is answered from the clip's record (``cache``),
unless that plate is not exact and an exact route exists, or the request asks for a
``refresh``; a source that changed since its frame was made marks every later state and plate
of the clip not exact.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from rvm_engine.stages import ordered_map

from .client.errors import BridgeError, InternalError, OrderError, PlateError, ServerBusy
from .client.parameters import OUTPUT_NAMES
from .client.protocol import Limits, Request
from .clips import Clip, ClipRegistry, Output
from .frame_order import Pending, Plan
from .roots import PlateRoots
from .shared_segments import SharedSegments

log = logging.getLogger("rvm_bridge.server")
Deliver = Callable[..., None]
PREROLL_READ_AHEAD = 4


@dataclass
class Ticket:
    """One frame request waiting for its reply."""

    request: Request
    arrived: float
    timings: Dict[str, float] = field(default_factory=dict)


@dataclass
class Job:
    """A planned frame of one clip in a worker's hands; ``settled`` once it is answered, failed
    or handed to the writer (what is left when a bug strikes is failed by the worker)."""

    clip: Clip
    plan: Plan
    tickets: List[Ticket] = field(default_factory=list)
    state: Any = None
    started: float = 0.0
    preroll_s: float = 0.0
    settled: bool = False


@dataclass
class Source:
    """A frame's source as read: the engine's plate and what identifies its pixels."""

    plate: Any
    fingerprint: Any
    read_s: float


def file_identity(path: str) -> Optional[Tuple[int, int, int]]:
    """What tells a plate from one written over it later: inode (a new one for every atomic
    write), size and modification time; None when it is not a file."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns) if os.path.isfile(path) else None


def _merged_write(current: Optional[Set[str]], asked: Optional[Tuple[str, ...]], first: bool) -> Optional[Set[str]]:
    """The outputs a queued frame writes when several requests share it (None: all)."""
    if asked is None:
        return None
    if first:
        return set(asked)
    return None if current is None else current | set(asked)


class FramePipeline:
    """Reader pool, worker threads and writer pool for every clip of one server."""

    def __init__(self, *, engine: Any, registry: ClipRegistry, roots: PlateRoots, lock: threading.Condition,
                 deliver: Deliver, workers: int = 2, readers: int = 2, writers: int = 2, max_queued: int = 64,
                 limits: Limits = Limits(), batch_max: int = 1, shared: Optional[SharedSegments] = None) -> None:
        self.engine = engine
        self.shared = shared if shared is not None else SharedSegments(0)
        self.limits = limits
        self.registry = registry
        self.roots = roots
        self.lock = lock
        self.deliver = deliver
        self.max_queued = max_queued
        self.reader_count = readers
        self.readers = ThreadPoolExecutor(readers, thread_name_prefix="rvm-read")
        self.writers = ThreadPoolExecutor(writers, thread_name_prefix="rvm-write")
        self.stopping = False
        self.completed: List[float] = []  # monotonic times of frames made, for throughput
        self.frames_total = 0
        self.batch_max = max(1, batch_max)
        self.batches = 0  # network calls that made frames of two clips or more
        self.batched_frames = 0  # frames those made
        self.threads = [threading.Thread(target=self._work, name=f"rvm-worker-{n}", daemon=True)
                        for n in range(max(1, workers))]
        for thread in self.threads:
            thread.start()

    # -- stage 1: queue and read ------------------------------------------------------------
    def submit(self, clip: Clip, request: Request) -> None:
        """Queue a frame request on its clip (caller holds the lock) and start reading it.

        A request for a frame already queued with another source (other pixels, another path)
        waits for that one to leave the queue. Raises ServerBusy when the clip already has
        ``max_queued`` requests waiting, those that wait behind another counted too (each holds its
        pixels and costs a frame later).
        """
        entry = clip.order.pending.get(request.frame)
        queued = len(clip.order.pending) + sum(len(waiting.deferred) for waiting in clip.order.pending.values())
        behind = entry is not None and not self._same_source(entry, request)
        if (entry is None or behind) and queued >= self.max_queued:
            raise ServerBusy(f"clip {clip.id} already has {self.max_queued} frames queued; send frame "
                             f"{request.frame} again once some are answered")
        if behind:
            assert entry is not None
            entry.deferred.append(request)
            return
        ticket = Ticket(request, time.monotonic())
        entry, new = clip.order.add(request.frame, ticket, ticket.arrived)
        entry.refresh = entry.refresh or request.refresh
        entry.write = _merged_write(entry.write, request.write, new)
        clip.last_used = ticket.arrived
        if new:
            entry.nbytes = sum(len(buffer) for buffer in request.buffers)
            self.readers.submit(self._prepare, clip, entry, request)

    def _same_source(self, entry: Pending, request: Request) -> bool:
        first = entry.tickets[0].request
        if (first.inline is None) != (request.inline is None) or first.source_path != request.source_path:
            return False
        if request.inline is None:
            return True
        fingerprint = self._inline_fingerprint(request.inline, request.buffers[request.inline.buffer])
        if entry.source is not None:
            return bool(entry.source.fingerprint == fingerprint)
        if first.inline is None or not first.buffers:
            return False
        return self._inline_fingerprint(first.inline, first.buffers[first.inline.buffer]) == fingerprint

    @staticmethod
    def _inline_fingerprint(inline: Any, data: Any) -> Tuple[Any, ...]:
        # CRC-32 with shape and dtype identifies a resent frame; a cryptographic hash cost 18 ms a
        # 1080p frame, a tenth of the network on a 2-core CPU (bench/bench_bridge.py).
        return ("inline", inline.shape, inline.dtype, len(data), zlib.crc32(data))

    def _requeue(self, clip: Clip, entry: Pending) -> None:
        """Queue again the requests that waited for ``entry`` to leave (caller holds the lock)."""
        deferred, entry.deferred = entry.deferred, []
        for request in deferred:
            if self.registry.clips.get(clip.id) is not clip:
                self._answer_error(request.id, "unknown_clip", f"clip {clip.id} was closed before frame "
                                   f"{request.frame} ran")
                continue
            try:
                self.submit(clip, request)
            except BridgeError as error:
                self._answer_error(request.id, error.code, error.message)

    def _answer_error(self, request_id: str, code: str, message: str) -> None:
        self.deliver(request_id, {"error": {"code": code, "message": message}}, [])

    def _prepare(self, clip: Clip, entry: Pending, request: Request) -> None:
        started = time.monotonic()
        try:
            shared_s = None
            if request.shared is not None:
                # One copy out of the client's segment, first: what the frame is fingerprinted and
                # matted from cannot change under it.
                request.buffers = [self.shared.copy_out(request.buffers[0])]
                shared_s = time.monotonic() - started
            path, fingerprint = self._locate(clip, request)
            with self.lock:
                self._note_upstream(clip, entry.frame, fingerprint)
                if not entry.refresh and self._serve_made(clip, entry, fingerprint, None):
                    clip.order.discard(entry.frame)
                    self._requeue(clip, entry)
                    self.lock.notify_all()
                    return
            if request.inline is not None:
                plate = self.engine.inline_plate(request.buffers[request.inline.buffer], request.inline)
            else:
                plate = self._read(path, clip, entry.frame)
            plate = self.engine.prepare(plate, clip.settings)  # colour into the model's space, here
            with self.lock:
                entry.source = Source(plate, fingerprint, time.monotonic() - started)
                entry.prepared = True
                if shared_s is not None:
                    for ticket in entry.tickets:
                        ticket.timings["shared_in"] = shared_s
                entry.nbytes = self.engine.plate_nbytes(plate)
                for ticket in entry.tickets:
                    ticket.request.buffers = []  # the plate holds the pixels now
                self._enforce_budget()
                self.lock.notify_all()
        except Exception as error:  # noqa: BLE001 - every failure becomes an error reply
            with self.lock:
                if clip.order.pending.get(entry.frame) is entry:
                    clip.order.discard(entry.frame)
                tickets = list(entry.tickets)
                self._requeue(clip, entry)
                self.lock.notify_all()
            self._fail(tickets, error)

    def _read(self, path: str, clip: Clip, frame: int) -> Any:
        return self.engine.read(path, clip.settings, self.limits.max_image_side, self.limits.max_image_pixels, frame)

    def _locate(self, clip: Clip, request: Request) -> Tuple[str, Any]:
        if request.inline is not None:
            buffer = request.buffers[request.inline.buffer]
            return "", self._inline_fingerprint(request.inline, buffer)
        if request.source_path is not None:
            path = request.source_path
        elif clip.settings.get("source"):
            path = self.engine.source_path(clip.settings["source"], request.frame)
        else:
            raise PlateError(f"clip {clip.id} has no source pattern: send frame {request.frame} by path or inline")
        path = self.roots.resolve(path, "source plate")
        if os.path.isdir(path):
            raise PlateError(f"source plate {path} is a folder, not a file; send the plate's path")
        try:
            stat = os.stat(path)
        except OSError as error:
            raise PlateError(f"cannot read source plate {path}: {error.strerror}") from None
        return path, ("file", path, stat.st_mtime_ns, stat.st_size)

    @staticmethod
    def _note_upstream(clip: Clip, frame: int, fingerprint: Any) -> None:
        """A frame whose source differs from the one it was made from: the plates and states
        after it are no longer exact, and its own record is stale (caller holds the lock)."""
        output = clip.outputs.get(frame)
        if output is not None and output.done and output.fingerprint != fingerprint:
            del clip.outputs[frame]
            clip.upstream_changed(frame)

    def _serve_made(self, clip: Clip, entry: Pending, fingerprint: Any, exact_plan: Optional[bool]) -> bool:
        """Answer ``entry``'s tickets from a frame the clip already made from the same source
        (caller holds the lock): now if its plates exist, or when its write finishes. A plate
        that is not exact is served only when no exact route exists (``exact_plan``: whether the
        route the frame order chose is exact; None: not planned yet)."""
        output = clip.outputs.get(entry.frame)
        if output is None or output.fingerprint != fingerprint:
            return False
        # Before the frame is planned (exact_plan None) only an exact plate is served: the frames
        # that make an exact route may still be on their way. Once planned, a plate that is not
        # exact is served only when the plan is not exact either.
        if not output.exact and (exact_plan is None or exact_plan):
            return False
        wanted = set(self._outputs_of(clip)) if entry.write is None else entry.write
        if not wanted <= (set(output.plates) if output.done else output.writing):
            return False  # it was made without some plate now asked for
        if not output.done:
            output.waiters.extend(entry.tickets)  # answered when its plates are written
            return True
        if clip.settings["inline_outputs"] and not output.images:
            return False  # its pixels were dropped under the memory budget
        if any(file_identity(path) is None or file_identity(path) != output.identities.get(path)
               for path in output.plates.values()):
            # Gone, or replaced since it was made (another clip writing the same outputs, a render
            # in process, a copy): the record no longer describes the plate; make the frame again.
            del clip.outputs[entry.frame]
            return False
        made = dict(output.made, how="cache", made_as=output.made["how"], preroll_frames=0, exact=output.exact,
                    head="", batch=1)  # what this answer ran: no pre-roll, no network call
        for ticket in entry.tickets:
            if ticket.request.shared_outputs is not None and output.images:
                # A copy into shared memory is not made holding the lock: the writers make it.
                self.writers.submit(self._reply, clip, entry.frame, ticket, made, output, list(output.images))
            else:
                self._reply(clip, entry.frame, ticket, made, output)
        return True

    @staticmethod
    def _outputs_of(clip: Clip) -> List[str]:
        return [name for name in OUTPUT_NAMES if clip.settings["outputs"].get(name)]

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
                jobs = [job, *self._gather(job)]
            try:
                self._run(jobs)
            except Exception as error:  # noqa: BLE001 - a bug here must not stop the worker
                for job in (job for job in jobs if not job.settled):
                    log.error("frame %s of clip %s failed unexpectedly", job.plan.frame, job.clip.id, exc_info=error)
                    with self.lock:
                        job.clip.order.finish(job.plan, False, time.monotonic())
                    self._fail(job.plan.pending.tickets, error)
            finally:
                with self.lock:
                    for job in jobs:
                        job.clip.busy = False
                        job.clip.sync_states()
                    self._enforce_budget()
                    self.lock.notify_all()

    def _waiting(self) -> List[Clip]:
        """Clips with queued frames and no frame running, the longest waiting first."""
        waiting = [clip for clip in self.registry.clips.values() if clip.order.pending and not clip.busy]
        waiting.sort(key=lambda clip: min(entry.arrived for entry in clip.order.pending.values()))
        return waiting

    def _next_job(self) -> Optional[Job]:
        if self.stopping:
            return None
        now = time.monotonic()
        for clip in self._waiting():
            try:
                plan = clip.order.take(now)
            except Exception as error:  # noqa: BLE001 - a frame-order bug fails that clip's queue, not the server
                log.error("frame order of clip %s failed", clip.id, exc_info=error)
                tickets = [t for entry in clip.order.pending.values() for t in entry.tickets]
                clip.order.pending.clear()
                self._fail(tickets, error)
                continue
            if plan is not None:
                clip.busy = True
                self._requeue(clip, plan.pending)
                return Job(clip, plan)
        return None

    def _gather(self, first: Job) -> List[Job]:
        """Other clips' ready frames that can share ``first``'s network call (caller holds the lock):
        plain next steps of the same model and shape, as many as are ready now (``batch_max`` in
        all). A clip whose next frame is anything else keeps it queued, planned as before."""
        key = self._batch_key(first) if self.batch_max > 1 else None
        if key is None:
            return []
        now = time.monotonic()
        more: List[Job] = []
        for clip in self._waiting():
            if len(more) + 1 >= self.batch_max:
                break
            try:
                plan = clip.order.take(now)
            except Exception:  # noqa: BLE001 - left to _next_job, which fails that clip's queue
                continue
            if plan is None:
                continue
            job = Job(clip, plan)
            if self._batch_key(job) != key:
                clip.order.put_back(plan)
                continue
            clip.busy = True
            self._requeue(clip, plan.pending)
            more.append(job)
        return more

    def _batch_key(self, job: Job) -> Any:
        """What a frame shares with the frames it may run with; None when it runs alone (a
        pre-roll, a cold start still to be found, a copied state, or a model/backend that cannot)."""
        plan = job.plan
        source = plan.pending.source
        if plan.preroll or plan.probe or plan.clone_of is not None or source is None:
            return None
        try:
            return self.engine.batch_key(job.clip.settings, job.clip.model, source.plate)
        except Exception:  # noqa: BLE001 - a frame the key cannot read runs alone, and fails there if it must
            return None

    def _wait_time(self) -> Optional[float]:
        now = time.monotonic()
        deadlines = [d for d in (clip.order.deadline(now) for clip in self.registry.clips.values() if not clip.busy)
                     if d is not None]
        return min(deadlines) - now + 0.001 if deadlines else None

    def _run(self, jobs: List[Job]) -> None:
        """Make the planned frames: each one's own steps (cache, strict refusal, state, pre-roll),
        then the network, one call for all of them, then each to the writer."""
        ready = [job for job in jobs if self._begin(job)]
        if not ready:
            return
        network_started = time.monotonic()
        results: List[Any]
        if len(ready) == 1:
            job = ready[0]
            try:
                # Inline replies carry the foreground too, plates or not.
                results = [self.engine.matte(job.state, job.plan.pending.source.plate, job.plan.frame,
                                             foreground=self._foreground(job.clip))]
            except Exception as error:  # noqa: BLE001 - the clip goes on; the frame's requests hear why
                results = [error]
        else:
            results = self.engine.matte_together([job.state for job in ready],
                                                 [job.plan.pending.source.plate for job in ready],
                                                 [job.plan.frame for job in ready],
                                                 [self._foreground(job.clip) for job in ready])
        network_s = time.monotonic() - network_started
        batched = [result for result in results if getattr(result, "batch", 1) > 1]
        if batched:
            with self.lock:
                # A frame of a batch of n is a nth of its call.
                self.batches += round(sum(1 / result.batch for result in batched))
                self.batched_frames += len(batched)
        for job, result in zip(ready, results):
            if isinstance(result, Exception):
                self._failed(job, result)
            else:
                self._made(job, result, network_s)

    @staticmethod
    def _foreground(clip: Clip) -> Optional[bool]:
        return True if clip.settings["inline_outputs"] else None

    def _begin(self, job: Job) -> bool:
        """What comes before the network for one frame; False when the network has nothing to do
        for it (served from the cache, every request refused, or failed: all answered)."""
        clip, plan = job.clip, job.plan
        entry = plan.pending
        source: Source = entry.source
        with self.lock:
            if not entry.refresh and self._serve_made(clip, entry, source.fingerprint, plan.exact):
                job.settled = True
                return False
        job.tickets = entry.tickets
        try:
            if plan.probe:
                clip.order.resolve_cold_start(
                    plan, lambda frame: self.engine.source_exists(clip.settings["source"], frame))
            job.tickets = self._refuse_strict(plan, job.tickets)
            if not job.tickets:
                job.settled = True
                return False  # nothing ran: every state stays as it was
            job.started = time.monotonic()
            job.state = self._state_for(clip, plan)
            job.preroll_s = self._preroll(clip, job.state, plan.preroll)
        except Exception as error:  # noqa: BLE001 - the clip goes on; the frame's requests hear why
            self._failed(job, error)
            return False
        return True

    def _failed(self, job: Job, error: BaseException) -> None:
        with self.lock:
            job.clip.order.finish(job.plan, False, time.monotonic())
        job.settled = True
        self._fail(job.tickets, error)

    def _made(self, job: Job, result: Any, network_s: float) -> None:
        clip, plan = job.clip, job.plan
        source: Source = plan.pending.source
        made = {"how": plan.how, "preroll_frames": len(plan.preroll), "exact": plan.exact, "made_as": plan.how,
                "head": plan.use, "downsample_ratio": self.engine.downsample_ratio(job.state),
                "batch": getattr(result, "batch", 1)}
        for ticket in job.tickets:
            ticket.timings.update(queued=job.started - ticket.arrived, read=source.read_s, preroll=job.preroll_s,
                                  network=network_s)
        now = time.monotonic()
        with self.lock:
            clip.order.finish(plan, True, now)
            clip.states[plan.head.id] = job.state
            clip.frames_run += 1 + len(plan.preroll)
            output = clip.outputs[plan.frame] = Output(source.fingerprint, made, plan.exact,
                                                       waiters=list(job.tickets), made_at=now)
            write = plan.pending.write
            output.writing = {name for name in self._outputs_of(clip) if write is None or name in write}
        job.settled = True
        self.writers.submit(self._write, clip, plan.frame, job.state, result, output, plan.pending.write)

    def _state_for(self, clip: Clip, plan: Plan) -> Any:
        """The engine state a plan runs on: a copy of the cloned head's, the head's own, or a
        cold one (a reused slot is reset)."""
        if plan.clone_of is not None:
            with self.lock:
                base = clip.states.get(plan.clone_of.id)
            if base is None:
                raise InternalError(f"clip {clip.id}: the state at frame {plan.clone_of.frame} to copy is gone")
            return self.engine.clone_state(base)
        with self.lock:
            state = clip.states.get(plan.head.id)
        if state is None:
            if not plan.cold:
                raise InternalError(f"clip {clip.id}: the state at frame {plan.head.frame} is gone")
            return self.engine.new_state(clip.settings, clip.model)
        if plan.cold:
            self.engine.reset(state)
        return state

    def _refuse_strict(self, plan: Plan, tickets: List[Ticket]) -> List[Ticket]:
        if plan.how == "sequence":
            return tickets
        strict = [ticket for ticket in tickets if ticket.request.strict]
        how = f"after {len(plan.preroll)} pre-roll frames" if plan.how == "preroll" else "from a cold state"
        self._fail(strict, OrderError(f"frame {plan.frame} does not follow the clip's held state; it would be "
                                      f"made {how}"))
        return [ticket for ticket in tickets if not ticket.request.strict]

    def _preroll(self, clip: Clip, state: Any, frames: List[int]) -> float:
        """Run ``frames`` without writing them; reads run ahead in the reader pool."""
        if not frames:
            return 0.0
        started = time.monotonic()
        pattern = clip.settings["source"]

        def read(frame: int) -> Tuple[int, Any]:
            path = self.roots.resolve(self.engine.source_path(pattern, frame), "source plate")
            return frame, self.engine.prepare(self._read(path, clip, frame), clip.settings)

        plates = ordered_map(read, frames, self.reader_count, PREROLL_READ_AHEAD, pool=self.readers)
        try:
            for frame, plate in plates:
                self.engine.matte(state, plate, frame, keep=False)
        finally:
            plates.close()
        return time.monotonic() - started

    # -- stage 3: write and reply ------------------------------------------------------------
    def _write(self, clip: Clip, frame: int, state: Any, result: Any, output: Output,
               write: Optional[Set[str]]) -> None:
        started = time.monotonic()
        try:
            names = self._outputs_of(clip)
            skip = [name for name in names if write is not None and name not in write]
            paths = self.engine.output_paths(state, frame) if names else {}
            for name, path in paths.items():
                if name not in skip:
                    self.roots.check_folder_of(path, f"{name} output")
            written = self.engine.write(state, result, skip) if len(skip) < len(names) else {}
            kept = [name for name in skip if os.path.isfile(paths[name])]
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
            output.plates = dict(written, **{name: paths[name] for name in kept})
            output.identities = {path: file_identity(path) for path in output.plates.values()}
            output.kept, output.images, output.done = kept, images, True
            waiters, output.waiters = output.waiters, []
            self.frames_total += 1
            self.completed.append(time.monotonic())
        for ticket in waiters:
            ticket.timings.setdefault("write", write_s)
            self._reply(clip, frame, ticket, output.made, output)

    def _reply(self, clip: Clip, frame: int, ticket: Ticket, made: Dict[str, Any], output: Output,
               images: Optional[List[Any]] = None) -> None:
        """Answer ``ticket`` with ``output`` (``images``: its inline outputs, when taken earlier)."""
        images = output.images if images is None else images
        timings = {key: round(value, 6) for key, value in ticket.timings.items()}
        region = ticket.request.shared_outputs
        buffers = [data for _, _, _, data in images]
        if region is not None and images:
            # Into the client's segment, here on a stage thread, not on the socket's.
            started = time.monotonic()
            try:
                inline = self.shared.write(region, images)
            except BridgeError as error:
                self._answer_error(ticket.request.id, error.code, error.message)
                return
            timings["shared_out"] = round(time.monotonic() - started, 6)
            buffers = []
        else:
            inline = {name: {"buffer": index, "shape": shape, "dtype": dtype}
                      for index, (name, shape, dtype, _) in enumerate(images)}
        timings["server_total"] = round(time.monotonic() - ticket.arrived, 6)
        header = {"clip": clip.id, "frame": frame, "made": made, "plates": dict(output.plates),
                  "kept": list(output.kept), "inline": inline, "timings": timings}
        self.deliver(ticket.request.id, header, buffers, output)

    def _fail(self, tickets: List[Ticket], error: BaseException) -> None:
        code, message = self.engine.error_code(error)
        if code == "internal":
            log.error("frame failed", exc_info=error)
        for ticket in tickets:
            self._answer_error(ticket.request.id, code, message)

    def _enforce_budget(self) -> None:
        for line in self.registry.enforce_budget(time.monotonic()):
            log.info("memory budget: %s", line)

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
            deferred = [request for clip in self.registry.clips.values()
                        for entry in clip.order.pending.values() for request in entry.deferred]
            for clip in self.registry.clips.values():
                clip.order.pending.clear()
        message = "the bridge stopped before this frame ran; send it again once it is back"
        self._fail(queued, BridgeError(message, "shutting_down"))
        for request in deferred:
            self._answer_error(request.id, "shutting_down", message)

    def throughput(self, window_s: float = 60.0) -> float:
        """Frames made per second over the last ``window_s`` seconds (caller holds the lock)."""
        cutoff = time.monotonic() - window_s
        self.completed = [t for t in self.completed if t >= cutoff]
        return len(self.completed) / window_s
