"""Render a plate sequence through a running bridge: ``rvm-bridge render ... --server ADDRESS``,
and what a host's "render" button calls.

The server plans the render (``plan_render``: which frames exist, which plates are already
complete, where the network must start), reads the source plates itself and writes the same
plates an in-process render writes. Frames go in frame order with a few requests queued, so
reading, the network and writing overlap on the server; frames the plan runs only as pre-roll
are sent with nothing to write, and complete plates of a resumed render are never rewritten.
Standard library and pyzmq only: no numpy, torch or engine here.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from .client import BridgeClient
from .clip import FrameRequest, FrameResult
from .errors import AccessRefused, BridgeError, BridgeTimeout
from .pathmap import PathMap

Progress = Callable[[int, int, FrameResult], None]


@dataclass
class RenderSummary:
    """What a render through a bridge did. ``results`` are the frames of the range, in order."""

    results: List[FrameResult] = field(default_factory=list)
    plan: Dict[str, Any] = field(default_factory=dict)
    prerolled: int = 0
    cancelled: bool = False
    seconds: float = 0.0

    @property
    def written(self) -> int:
        return sum(1 for result in self.results if result.plates and len(result.kept) < len(result.plates))

    def describe(self, address: str) -> str:
        """One line: frames written and how they were made, and the plan's own line."""
        made: Dict[str, int] = {}
        for result in self.results:
            made[result.how] = made.get(result.how, 0) + 1
        how = ", ".join(f"{count} {name}" for name, count in sorted(made.items())) or "nothing to do"
        line = f"wrote {self.written} frames through {address} in {self.seconds:.1f} s ({how})"
        if self.prerolled:
            line += f"; pre-rolled {self.prerolled}"
        if self.cancelled:
            line += "; cancelled: every plate on disk is complete (use --resume to carry on)"
        return line + (f"\n{self.plan['line']}" if self.plan.get("line") else "")


def render_through_bridge(address: str, source: str, frames: Union[None, str, Sequence[int]] = None, *,
                          alpha: Optional[str] = None, foreground: Optional[str] = None, rgba: Optional[str] = None,
                          settings: Optional[Dict[str, Any]] = None, shot_start: Optional[int] = None,
                          resume: bool = False, preroll: int = 32, resume_limit: int = 1000,
                          progress: Optional[Progress] = None, cancel: Optional[threading.Event] = None,
                          timeout: float = 300.0, retries: int = 3, keys_dir: Optional[str] = None,
                          path_map: Optional[PathMap] = None, window: int = 3, name: str = "rvm-bridge render"
                          ) -> RenderSummary:
    """Matte ``frames`` (a range such as ``"1001-1100x2"``, both ends included; a list; None = all
    on disk) of the ``source`` pattern on the bridge at ``address``, in ascending order.

    Paths are the client's (mapped with ``path_map`` and the server's rules). ``alpha``,
    ``foreground``, ``rgba`` are output patterns; ``settings`` other clip parameters of
    docs/protocol.md. The clip's state starts cold at the range's first frame, or at
    ``shot_start`` (pre-rolled, not written) when given. ``resume`` carries on a stopped render:
    see ``rvm_engine.resume`` for the one rule (exact when within ``resume_limit`` frames of the
    start, else ``preroll`` frames and a loud line). ``progress(done, total, result)`` follows
    each frame of the range; setting ``cancel`` stops after the frames in flight (their plates
    are complete). Raises BridgeError subclasses: BridgeTimeout when the server is silent for
    ``timeout`` seconds, PlateError for plates it cannot read or write, PathOutsideRoots,
    PathNotMapped, AccessRefused.
    """
    started = time.monotonic()
    outputs = {"alpha": alpha, "foreground": foreground, "rgba": rgba}
    summary = RenderSummary()
    with BridgeClient(address, timeout=timeout, retries=retries, keys_dir=keys_dir, path_map=path_map,
                      name=name) as client:
        summary.plan = client.plan_render(source, frames, outputs, resume=resume, shot_start=shot_start,
                                          preroll=preroll, resume_limit=resume_limit)
        run = [(int(frame), [str(name) for name in write]) for frame, write in summary.plan.get("run", [])]
        if not run:
            summary.seconds = time.monotonic() - started
            return summary
        in_range = set(int(frame) for frame in summary.plan.get("frames", []))
        total = sum(1 for frame, _ in run if frame in in_range)
        clip_settings = dict(settings or {})
        clip_settings.update(source=source, first_frame=run[0][0], outputs=outputs)
        clip = client.open_clip(**clip_settings)
        failed: Optional[BaseException] = None
        try:
            items = _until_cancelled([FrameRequest(frame, write=write) for frame, write in run], cancel, summary)
            for result in clip.frames(items, window=window):
                if result.frame not in in_range:
                    summary.prerolled += 1
                    continue
                summary.results.append(result)
                if progress is not None:
                    progress(len(summary.results), total, result)
                if cancel is not None and cancel.is_set() and len(summary.results) < total:
                    # Clip.frames reads its requests ahead, so stop here too: the frames in flight
                    # finish on the server (each plate is written whole) and nothing more is sent.
                    summary.cancelled = True
                    break
        except BaseException as error:
            failed = error
            raise
        finally:
            _close(clip, failed)
    summary.seconds = time.monotonic() - started
    return summary


def _until_cancelled(items: List[FrameRequest], cancel: Optional[threading.Event], summary: RenderSummary):
    for item in items:
        if cancel is not None and cancel.is_set():
            summary.cancelled = True
            return
        yield item


def _close(clip: Any, failed: Optional[BaseException]) -> None:
    """Close the clip; after a failure quickly and quietly (a dead server is not waited for twice)."""
    if failed is None:
        clip.close()
        return
    if isinstance(failed, (BridgeTimeout, AccessRefused)):
        return
    try:
        clip.close(timeout=min(2.0, clip.client.timeout), retries=0)
    except BridgeError:
        pass
