"""The bridge's middle stage: worker threads that run the network, each clip's frames in order.

Worker threads take runnable frames, one clip at a time each (a clip's frames never run in
parallel), pre-roll where the frame order says so, run the network, and hand the result to the
writer pool. When several clips have a ready frame that is a plain next step (no pre-roll) of
one model and shape, a worker runs their network steps as one batch (``batch_max`` at most,
1 = off), each on its clip's own state. ``NetworkStage`` sits on ``ReadStage`` (read_stage.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

from rvm_engine.stages import ordered_map

from .client.errors import InternalError, OrderError
from .clips import Clip, Output
from .frame_order import Plan
from .read_stage import ReadStage, Source
from .write_stage import Ticket

log = logging.getLogger("rvm_bridge.server")
PREROLL_READ_AHEAD = 4


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


class NetworkStage(ReadStage):
    """Stage 2 of ``FramePipeline``: order and network, the worker threads' loop."""

    # Set by FramePipeline.__init__ (stages.py).
    stopping: bool
    batch_max: int
    batches: int
    batched_frames: int

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
