"""The bridge's last stage: a frame's plates written, and its requests answered.

Writer threads write the plates a worker made, record them on the clip (with what tells each from
a file written over it later) and reply to every request waiting for the frame, its inline
outputs in the reply or in the client's shared memory. Failures are answered here too, whichever
stage they happen in: ``WriteStage`` is the bottom layer of ``FramePipeline`` (stages.py), and
the read and network stages above it hand their replies to it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from .client.errors import BridgeError
from .client.parameters import OUTPUT_NAMES
from .client.protocol import Request
from .clips import Clip, ClipRegistry, Output
from .roots import PlateRoots
from .shared_segments import SharedSegments

log = logging.getLogger("rvm_bridge.server")
Deliver = Callable[..., None]


@dataclass
class Ticket:
    """One frame request waiting for its reply."""

    request: Request
    arrived: float
    timings: Dict[str, float] = field(default_factory=dict)


def file_identity(path: str) -> Optional[Tuple[int, int, int]]:
    """What tells a plate from one written over it later: inode (a new one for every atomic
    write), size and modification time; None when it is not a file."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns) if os.path.isfile(path) else None


class WriteStage:
    """Stage 3 of ``FramePipeline``: write and reply, and every error reply of the stages."""

    # Set by FramePipeline.__init__ (stages.py); the stages above use them too.
    engine: Any
    registry: ClipRegistry
    roots: PlateRoots
    lock: threading.Condition
    deliver: Deliver
    shared: SharedSegments
    writers: ThreadPoolExecutor
    frames_total: int
    internal_errors: int
    completed: List[float]

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
        if code == "internal":  # a bug of the bridge's: counted in status, like a request's
            self.internal_errors += 1
            log.error("frame failed", exc_info=error)
        for ticket in tickets:
            self._answer_error(ticket.request.id, code, message)

    def _answer_error(self, request_id: str, code: str, message: str) -> None:
        self.deliver(request_id, {"error": {"code": code, "message": message}}, [])

    def _enforce_budget(self) -> None:
        for line in self.registry.enforce_budget(time.monotonic()):
            log.info("memory budget: %s", line)

    @staticmethod
    def _outputs_of(clip: Clip) -> List[str]:
        return [name for name in OUTPUT_NAMES if clip.settings["outputs"].get(name)]
