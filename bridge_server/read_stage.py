"""The bridge's first stage: a frame request queued on its clip, and its plate read.

A request is queued on its clip at once (so frame order is decided by frame number, not by
which read finishes first), and the reader pool meanwhile reads its plate (by path, from the
clip's source pattern, or from the pixels sent inline) and brings it into the model's colour
space. A frame already made from the same source is answered from the clip's record instead; a
source that changed since its frame was made marks every later state and plate of the clip not
exact. ``ReadStage`` sits on ``WriteStage`` (write_stage.py), which answers for it.
"""

from __future__ import annotations

import os
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional, Set, Tuple

from .client.errors import BridgeError, PlateError, ServerBusy
from .client.protocol import Limits, Request
from .clips import Clip
from .frame_order import Pending
from .write_stage import Ticket, WriteStage, file_identity


@dataclass
class Source:
    """A frame's source as read: the engine's plate and what identifies its pixels."""

    plate: Any
    fingerprint: Any
    read_s: float


def _merged_write(current: Optional[Set[str]], asked: Optional[Tuple[str, ...]], first: bool) -> Optional[Set[str]]:
    """The outputs a queued frame writes when several requests share it (None: all)."""
    if asked is None:
        return None
    if first:
        return set(asked)
    return None if current is None else current | set(asked)


class ReadStage(WriteStage):
    """Stage 1 of ``FramePipeline``: queue a frame request and read its plate, or answer it from
    the clip's record."""

    # Set by FramePipeline.__init__ (stages.py).
    limits: Limits
    max_queued: int
    reader_count: int
    readers: ThreadPoolExecutor

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
