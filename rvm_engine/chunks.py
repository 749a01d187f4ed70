"""Chunks of a shot rendered as independent tasks: the one rule, shared by the local batch
renderer and every farm integration.

RVM is recurrent, so a chunk that starts cold at its first kept frame pops against the chunk
before it. A chunk task gets its kept range ``A-B`` (contiguous) and the shot's first frame ``S``
(given, or the first frame on disk); it pre-rolls from ``max(S, A - preroll)`` without writing
those plates, then writes ``A..B``. That is the resume rule (``rvm_engine.resume.plan_from``)
with an exact limit of 0: the state is warmed by ``preroll`` frames, never by more. Chunk
boundaries are the farm's to decide (OpenJD's adaptive chunking moves them), so nothing here
assumes fixed chunk starts: every task works out its own pre-roll from its own range.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import fileseq

from .clip import ClipSettings
from .errors import PlateError
from .model import MattingNetwork
from .render import RenderReport, render_sequence
from .resume import DEFAULT_PREROLL, ResumePlan, plan_from
from .sequences import FrameSequence, parse_sequence

#: Frames pre-rolled before a chunk's first kept frame, the resume rule's own pre-roll. Measured
#: (bench/bench_preroll.py, docs/farm.md): RVM's state never quite forgets where it started, but
#: on the sample shot and a real talking-head clip 32 frames cut the mean alpha difference at a
#: boundary 3-280 fold, and the pixels off by more than 1/255 to 1.2-3.4 %, in five boundaries of six.
CHUNK_PREROLL = DEFAULT_PREROLL


def contiguous_ranges(frames: Sequence[int]) -> list[tuple[int, int]]:
    """The runs of consecutive frames in ``frames`` as ``(first, last)`` pairs, both ends included,
    ascending: ``1-10,15-20`` gives ``[(1, 10), (15, 20)]``. A range with gaps splits at the gaps."""
    ranges: list[tuple[int, int]] = []
    for frame in sorted(set(int(f) for f in frames)):
        if ranges and frame == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], frame)
        else:
            ranges.append((frame, frame))
    return ranges


def chunk_starts(first: int, last: int, size: int) -> list[tuple[int, int]]:
    """Fixed chunks of ``size`` frames over ``first..last`` (both included), for runners that cannot
    chunk for themselves (OpenJD without TASK_CHUNKING, Deadline, OpenCue number them this way)."""
    check_chunk_size(size)
    return [(start, min(start + size - 1, last)) for start in range(first, last + 1, size)]


def check_chunk_size(size: int) -> None:
    if size < 1:
        raise PlateError(f"chunk size {size} must be at least 1 frame; give --chunk 1 or more")


@dataclass
class ChunkPlan:
    """Where one chunk task starts its network and what it says about it."""

    first: int  # the first kept frame
    last: int  # the last kept frame
    shot_start: int  # the first frame of the shot (or of its contiguous range)
    preroll: int  # frames asked for
    plan: ResumePlan
    missing: Optional[int] = None  # a frame not on disk that cut the pre-roll short (the run starts after it)

    @property
    def run_from(self) -> int:
        assert self.plan.run_from is not None  # a chunk always has frames to write
        return self.plan.run_from

    @property
    def prerolled(self) -> int:
        return self.first - self.run_from

    @property
    def clipped(self) -> bool:
        """True when the pre-roll asked for reaches before the shot start and was cut there."""
        return self.prerolled < self.preroll

    def describe(self) -> str:
        """One line for the farm's log."""
        line = f"chunk {self.first}-{self.last}: pre-rolling {self.prerolled} frames from {self.run_from}, not written"
        if self.clipped and self.missing is not None:
            line += (f" (pre-roll of {self.preroll} clipped to {self.prerolled}: frame {self.missing} is not on disk, "
                     "so the run starts cold after it)")
        elif self.clipped:
            line += (f" (pre-roll of {self.preroll} clipped to {self.prerolled}: the shot starts at {self.shot_start}; "
                     "this chunk equals an unbroken render)")
        return line


def plan_chunk(frames: Sequence[int], shot_start: int, preroll: int) -> ChunkPlan:
    """Plan one chunk task: ``frames`` must be one contiguous run at or after ``shot_start``.

    Raises PlateError for an empty or gapped range, a range before the shot start, or a negative
    pre-roll."""
    ranges = contiguous_ranges(frames)
    if not ranges:
        raise PlateError("a chunk needs at least one frame")
    if len(ranges) > 1:
        listed = str(fileseq.FrameSet.from_iterable(frames, sort=True))
        raise PlateError(f"chunk {listed} has a gap; a chunk task renders one contiguous range (split it at the gap)")
    first, last = ranges[0]
    if shot_start > first:
        raise PlateError(f"shot start {shot_start} is after the chunk's first frame {first}; give the shot's first "
                         "frame (or leave --shot-start out to use the first frame on disk)")
    plan = plan_from(list(range(first, last + 1)), 0, shot_start=shot_start, preroll=preroll, exact_limit=0)
    return ChunkPlan(first, last, shot_start, preroll, plan)


def first_on_disk(seq: FrameSequence) -> int:
    return parse_sequence(seq.pattern).first if not seq.single_file else seq.first


def shot_start_for(seq: FrameSequence, first: int, shot_start: Optional[int], preroll: int) -> int:
    """The shot start a chunk task uses: the one given, else the first frame on disk; and never before
    a frame missing on disk within the pre-roll (a gap in the plates starts a new run cold, as the
    farm splits ranges at gaps)."""
    start = first_on_disk(seq) if shot_start is None else int(shot_start)
    for frame in range(first - 1, max(start, first - preroll) - 1, -1):
        if not os.path.isfile(seq.path(frame)):
            return frame + 1
    return start


def render_chunk(source: Union[str, FrameSequence], frames: Union[str, Sequence[int]], settings: ClipSettings, *,
                 shot_start: Optional[int] = None, preroll: int = CHUNK_PREROLL,
                 model: Optional[MattingNetwork] = None,
                 progress: Union[bool, Callable[[int, int], None]] = False,
                 say: Callable[[str], None] = print) -> RenderReport:
    """Render one chunk with the batch renderer: pre-roll as :func:`plan_chunk` says, write the kept
    frames atomically (a re-run rewrites the same plates and nothing else). Returns the
    ``RenderReport``. Raises PlateError as :func:`plan_chunk` and ``render_sequence`` do."""
    seq = source if isinstance(source, FrameSequence) else parse_sequence(source, frames)
    start = shot_start_for(seq, min(seq.frames), shot_start, preroll)
    chunk = plan_chunk(seq.frames, start, preroll)
    if start > (first_on_disk(seq) if shot_start is None else shot_start):
        chunk.missing = start - 1
    say(chunk.describe())
    return render_sequence(seq, None, settings, shot_start=chunk.shot_start, preroll=preroll, resume_limit=0,
                           model=model, progress=progress)
