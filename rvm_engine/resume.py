"""Where a resumed render starts, so its plates equal the uninterrupted render's.

The network is recurrent: a frame's matte depends on every frame run before it since the
state was cold. An uninterrupted render starts cold at the range's first frame (or at the
shot's first frame, ``shot_start``, when the range starts mid-shot after a pre-roll). A
resumed render therefore runs from that same frame, pre-rolling the frames whose plates are
complete without writing them: its plates are then exactly the uninterrupted render's. Only
when the first missing plate is more than ``exact_limit`` frames in does it save the network
time and pre-roll ``preroll`` frames from a cold state instead, and say loudly that those
plates are not exact. One rule, used by ``render_sequence`` and by renders through a bridge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import fileseq

from rvm_engine.errors import PlateError
from rvm_engine.plate_ownership import plate_is_complete
from rvm_engine.sequences import frame_path

#: Frames of pre-roll before a resumed frame when an exact resume would cost too much.
DEFAULT_PREROLL = 32
#: A resumed render pre-rolls from the range start when the first missing plate is at most this
#: many frames in. A pre-roll frame is read and run through the network, nothing more: no colour
#: back, no compressed writes, so it costs well under what the stopped render spent on that frame
#: (measured: the network alone takes about 0.26 s a 1080p frame on a 2-core CPU, 20 ms on a GPU).
#: 1000 frames is then about five minutes on a 2-core CPU, under a minute on a GPU, and covers every shot
#: under 40 s at 24 fps; only longer takes fall back to ``preroll`` frames, and say so.
EXACT_RESUME_LIMIT = 1000


@dataclass
class ResumePlan:
    """Which frames of a render are run, which are written, and whether they equal an uninterrupted render."""

    frames: list[int]  # the range, ascending, duplicates removed
    write_from: int  # index into frames of the first frame missing a complete plate; len(frames) when all are
    run_from: Optional[int]  # frame where the network starts from a cold state; None when nothing is left
    exact: bool  # True when the resumed plates equal the uninterrupted render's
    complete: dict[int, tuple[str, ...]] = field(default_factory=dict)  # from write_from on: outputs never rewritten
    start: Optional[int] = None  # where the uninterrupted render starts cold
    exact_limit: int = EXACT_RESUME_LIMIT
    resumed: bool = True  # False for a fresh render (plan_from(frames, 0))

    @property
    def to_write(self) -> list[int]:
        """The frames from the first incomplete one on (some of their plates may be complete)."""
        return self.frames[self.write_from:]

    def describe(self) -> str:
        """One line for the artist; a plan that is not exact says so loudly."""
        if self.run_from is None:
            return f"nothing to resume: all {len(self.frames)} frames have complete plates"
        todo = _frame_list(self.to_write)
        kept = sum(len(outputs) for outputs in self.complete.values())
        kept_note = f"; {kept} complete plates among them are kept as they are" if kept else ""
        cold = self.frames[self.write_from] - self.run_from
        what = "resumed frames" if self.resumed else "frames"
        where = "range start" if self.start == self.frames[0] else "shot start"
        if not self.exact:
            return (f"warning: {what} {todo} are NOT exact: pre-rolled {cold} frames from a cold state at "
                    f"{self.run_from} (the {where} {self.start} is more than {self.exact_limit} frames back; "
                    f"raise --resume-limit to make them exact){kept_note}")
        if cold == 0:
            return f"rendering {what} {todo} from a cold state at {self.run_from}{kept_note}"
        return (f"rendering {what} {todo} after pre-rolling {cold} frames from the {where} {self.run_from}, "
                f"so they equal an uninterrupted render{kept_note}")


def plan_resume(frames: Sequence[int], outputs: Mapping[str, str], *, shot_start: Optional[int] = None,
                preroll: int = DEFAULT_PREROLL, exact_limit: int = EXACT_RESUME_LIMIT) -> ResumePlan:
    """Plan a resumed render of ``frames`` into ``outputs`` (``{"alpha": "a.####.exr", ...}``; outputs
    mapped to None or "" are not asked for).

    A plate is complete when it exists, is not empty, its header reads and it is our plate of
    that output (``plate_ownership.plate_is_complete``). The first frame missing one is where writing
    starts; later frames run too (the state must advance) but their complete plates are never
    rewritten (``complete``). The network starts cold at the uninterrupted render's start (the
    first frame, or ``shot_start`` when given and earlier) when that is at most ``exact_limit``
    frames (or ``preroll``, whichever is more) before the first incomplete frame; otherwise
    ``preroll`` frames before it, and the plan is not exact.

    Reads plate headers only; no network, no writing. Raises PlateError for an empty range, no
    outputs, or a negative ``preroll``/``exact_limit``.
    """
    ordered = sorted(set(int(f) for f in frames))
    outputs = {name: pattern for name, pattern in outputs.items() if pattern}  # {"rgba": None}: not asked for
    if not outputs:
        raise PlateError("nothing to resume: give at least one output (alpha, foreground or rgba)")
    complete: dict[int, tuple[str, ...]] = {}
    write_from = len(ordered)
    for index, frame in enumerate(ordered):
        done = tuple(name for name, pattern in outputs.items() if plate_is_complete(frame_path(pattern, frame), name))
        if write_from == len(ordered) and len(done) < len(outputs):
            write_from = index
        if write_from < len(ordered):
            complete[frame] = done
    return plan_from(ordered, write_from, complete, shot_start=shot_start, preroll=preroll, exact_limit=exact_limit,
                     resumed=True)


def plan_from(frames: Sequence[int], write_from: int, complete: Optional[dict[int, tuple[str, ...]]] = None, *,
              shot_start: Optional[int] = None, preroll: int = DEFAULT_PREROLL,
              exact_limit: int = EXACT_RESUME_LIMIT, resumed: bool = False) -> ResumePlan:
    """The rule itself, once it is known which plates are complete: ``write_from`` indexes the first
    frame to write in ``frames`` (ascending, unique). ``plan_from(frames, 0)`` plans a fresh render."""
    if preroll < 0:
        raise PlateError(f"pre-roll {preroll} must be 0 or more frames")
    if exact_limit < 0:
        raise PlateError(f"resume limit {exact_limit} must be 0 or more frames")
    ordered = list(frames)
    if not ordered:
        raise PlateError("no frames to render")
    start = ordered[0] if shot_start is None else min(int(shot_start), ordered[0])
    if write_from >= len(ordered):
        return ResumePlan(ordered, len(ordered), None, True, {}, start, exact_limit, resumed)
    first = ordered[write_from]
    if first - start <= max(exact_limit, preroll):
        run_from, exact = start, True
    else:
        run_from, exact = first - preroll, False
    kept = {f: tuple((complete or {}).get(f, ())) for f in ordered[write_from:]}
    return ResumePlan(ordered, write_from, run_from, exact, kept, start, exact_limit, resumed)


def _frame_list(frames: Sequence[int]) -> str:
    return str(fileseq.FrameSet.from_iterable(frames, sort=True)) if frames else "none"
