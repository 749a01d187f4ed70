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

Each stage is a layer of ``FramePipeline`` that calls only the layers below it:
``NetworkStage`` (network_stage.py: worker threads, pre-roll, batches) on ``ReadStage``
(read_stage.py: queueing, reading, the cache) on ``WriteStage`` (write_stage.py: writing,
replies, failures). This module puts them together: the pools, the threads, stopping.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, List, Optional

from .client.errors import BridgeError
from .client.protocol import Limits
from .clips import ClipRegistry
from .network_stage import NetworkStage
from .roots import PlateRoots
from .shared_segments import SharedSegments
from .write_stage import Deliver


class FramePipeline(NetworkStage):
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
        self.internal_errors = 0  # frames failed on a bug of the bridge's (status adds the server's own)
        self.batch_max = max(1, batch_max)
        self.batches = 0  # network calls that made frames of two clips or more
        self.batched_frames = 0  # frames those made
        self.threads = [threading.Thread(target=self._work, name=f"rvm-worker-{n}", daemon=True)
                        for n in range(max(1, workers))]
        for thread in self.threads:
            thread.start()

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
