"""Batch rendering of a plate sequence: read, matte and write as overlapping stages.

Reading plates and converting them into the model's space (reader threads, ahead of the
network), running the network (this thread, in frame order) and converting the foreground back
and writing plates (a writer pool behind it: one ZIP-compressed EXR write costs about as much as
the network on a CPU, and alpha and foreground are two of them) overlap, so a steady render tends to the
slowest stage rather than the sum of the three. Every plate is written atomically; Ctrl-C or
``cancel`` stops after the frames in flight are written, and ``resume`` carries on from the
first frame whose plates are missing, pre-rolling the frames before it without writing them
(``rvm_engine.resume`` decides from where, so the plates equal the uninterrupted render's).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Collection, Generator, Optional, Sequence, Union

import fileseq

from .clip import ClipMatter, ClipSettings, MatteResult, PreparedPlate, reads_half
from .errors import PlateError
from .model import MattingNetwork
from .movie_frames import read_source_frame
from .plate_writing import clean_stray_temps
from .resume import DEFAULT_PREROLL, EXACT_RESUME_LIMIT, ResumePlan, plan_from, plan_resume
from .sequences import FrameSequence, parse_sequence
from .stages import ordered_map, pool_sizes

_READERS, _WRITERS = pool_sizes()
_READ_AHEAD = _READERS + 2
_WRITE_BEHIND = 2 * _WRITERS


@dataclass
class RenderReport:
    """What a render did. ``written`` lists the frames whose plates were written (in completion order)."""

    written: list[int] = field(default_factory=list)
    skipped: int = 0  # frames already complete before the first incomplete one (resume)
    prerolled: int = 0  # frames run through the network without writing a plate
    kept: int = 0  # complete plates of frames after the first incomplete one, left as they were
    bad_pixels: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    plan: str = ""  # the resume plan's line for the artist (ResumePlan.describe)
    exact: bool = True  # False when resumed plates may differ from an uninterrupted render's
    stray_temps: int = 0  # temporary files of dead writers removed before starting


def run_list(seq: FrameSequence, plan: ResumePlan, outputs: Collection[str]) -> list[tuple[int, bool]]:
    """The frames to run from ``plan.run_from``, each with whether plates of ``outputs`` are written.

    Frames a stepped range skips (``1001-1100x2``) are run as pre-roll when they are all on disk, so
    every written frame has seen the frames before it, as through the bridge; a sequence that only
    has the stepped frames runs them back to back. Frames from ``run_from`` up to the range's first
    frame (a shot start before the range) are pre-roll. A frame whose plates are all complete is
    pre-roll too: it runs so the state advances, and nothing is rewritten.
    """
    if plan.run_from is None:
        return []
    write = {f for f in plan.to_write if not set(outputs) <= set(plan.complete.get(f, ()))}
    run: list[tuple[int, bool]] = [(f, False) for f in range(plan.run_from, plan.frames[0])]
    previous: Optional[int] = None
    for frame in plan.frames:
        if previous is not None and frame > previous + 1:
            between = range(previous + 1, frame)
            # Decided on the whole gap, as the uninterrupted render decides it, then cut at run_from.
            if all(os.path.isfile(seq.path(f)) for f in between):
                run.extend((f, False) for f in between if f >= plan.run_from)
        previous = frame
        if frame >= plan.run_from:
            run.append((frame, frame in write))
    return run


@dataclass
class RenderPlan:
    """A render checked and planned, before any plate is read: the sequence, the plan (where the
    network starts, what is complete) and the frames to run, each with whether it is written."""

    seq: FrameSequence
    plan: ResumePlan
    run: list[tuple[int, bool]]
    stray_temps: int = 0


def plan_render(source: Union[str, FrameSequence], frames: Union[str, Sequence[int], None], settings: ClipSettings,
                *, resume: bool = False, preroll: int = DEFAULT_PREROLL, resume_limit: int = EXACT_RESUME_LIMIT,
                shot_start: Optional[int] = None) -> RenderPlan:
    """Check and plan a render (see :func:`render_sequence`): the same for a render in this process
    and one through a bridge, whose server calls this. Raises ``PlateError`` for a missing frame, no
    output, outputs that name one file or the source, or an unusable output folder. Removes stray
    temporary plates of dead renders of these outputs."""
    if preroll < 0:
        raise PlateError(f"pre-roll {preroll} must be 0 or more frames")
    seq = source if isinstance(source, FrameSequence) else parse_sequence(source, frames)
    # The recurrent state needs frames in order, however the range was written (1100-1001, 5,1,3).
    seq = dataclasses.replace(seq, frames=sorted(set(seq.frames)))
    outputs = settings.outputs()
    if not outputs:
        raise PlateError("nothing to write: give at least one of --alpha, --foreground or --rgba")
    settings.check(seq.frames)
    for pattern in outputs.values():
        seq.output(pattern, create_folder=True)
    stray = clean_stray_temps(outputs.values(), seq.frames)
    if resume:
        plan = plan_resume(seq.frames, outputs, shot_start=shot_start, preroll=preroll, exact_limit=resume_limit)
    else:
        plan = plan_from(seq.frames, 0, shot_start=shot_start, preroll=preroll, exact_limit=resume_limit)
    _check_lead_in(seq, plan)
    return RenderPlan(seq, plan, run_list(seq, plan, outputs), stray)


def _plates(seq: FrameSequence, frames: list[int], matter: ClipMatter) -> Generator[tuple[int, PreparedPlate], None, None]:
    """Read and convert into the model's space on reader threads, ahead of the network, in order."""

    def load(frame: int) -> tuple[int, PreparedPlate]:
        return frame, matter.prepare(read_source_frame(seq.path(frame), frame, layer=matter.settings.layer,
                                                       half=reads_half(matter.settings)))

    return ordered_map(load, frames, _READERS, _READ_AHEAD)


def render_sequence(
    source: Union[str, FrameSequence],
    frames: Union[str, Sequence[int], None],
    settings: ClipSettings,
    *,
    resume: bool = False,
    preroll: int = DEFAULT_PREROLL,
    resume_limit: int = EXACT_RESUME_LIMIT,
    shot_start: Optional[int] = None,
    seq_chunk: int = 1,
    model: Optional[MattingNetwork] = None,
    cancel: Optional[threading.Event] = None,
    progress: Union[bool, Callable[[int, int], None]] = True,
) -> RenderReport:
    """Matte frames ``frames`` (a range such as ``"1001-1100x2"``, both ends included; None = all on
    disk) of ``source`` and write the plates ``settings`` asks for. Frames run in ascending order
    whatever order the range lists them in.

    ``shot_start``, when earlier than the range, is the shot's first frame: the network starts cold
    there and pre-rolls up to the range (those plates must be on disk). ``resume`` writes only the
    plates that are not complete, running from where :func:`rvm_engine.resume.plan_resume` says:
    the uninterrupted render's start when the first missing plate is at most ``resume_limit``
    frames in (exact), else ``preroll`` frames before it (not exact, and ``report.plan`` says so).
    Stray temporary plates of dead renders are removed first (``plate_writing.clean_stray_temps``).

    ``seq_chunk`` frames go through the network per call (1 gives plates identical to the bridge).
    ``progress`` is True for a tqdm bar, or a callback ``(done, total)``. Raises ``PlateError`` before
    any work when a frame is missing, no output is asked for, two outputs name one file, or an
    output folder is unusable; while writing, when a file that is not ours is in a plate's way;
    other ``RVMError`` subclasses for bad frames. ``KeyboardInterrupt`` propagates after in-flight
    plates are written; ``cancel`` stops the same way and returns a report with ``cancelled=True``.
    """
    started = time.perf_counter()
    if seq_chunk < 1:
        raise PlateError(f"chunk size {seq_chunk} must be at least 1")
    prepared = plan_render(source, frames, settings, resume=resume, preroll=preroll, resume_limit=resume_limit,
                           shot_start=shot_start)
    seq, plan, run, stray = prepared.seq, prepared.plan, prepared.run, prepared.stray_temps
    matter = ClipMatter(settings, model)
    report = RenderReport(skipped=plan.write_from, plan=plan.describe(), exact=plan.exact, stray_temps=stray,
                          kept=sum(len(done) for done in plan.complete.values()))
    bar = _progress_bar(progress, sum(keep for _, keep in run), report.skipped)
    pending: list[Future] = []
    batch: list[tuple[int, PreparedPlate]] = []

    def finished(frame: int, fut: Future) -> None:
        if fut.exception() is None:
            report.written.append(frame)
            bar(1)

    def flush() -> None:
        nonlocal pending
        if not batch:
            return
        results = matter.matte_many([p for _, p in batch], [f for f, _ in batch])
        batch.clear()
        for result in results:
            report.bad_pixels += result.bad_pixels
            # Plates a resume found complete are never rewritten, even on a frame missing others.
            pending = _submit(writers, matter, result, pending, plan.complete.get(result.frame, ()))
            pending[-1].add_done_callback(functools.partial(finished, result.frame))

    reader = _plates(seq, [frame for frame, _ in run], matter)
    with ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="plate-writer") as writers:
        try:
            for (frame, plate), (_, keep) in zip(reader, run):
                if cancel is not None and cancel.is_set():
                    report.cancelled = True
                    break
                if not keep:
                    flush()  # frames go through the network in order
                    report.bad_pixels += matter.matte(plate, frame, keep=False).bad_pixels
                    report.prerolled += 1
                    continue
                batch.append((frame, plate))
                if len(batch) >= seq_chunk:
                    flush()
            if not report.cancelled:
                flush()
        finally:
            reader.close()
            for fut in pending:  # let in-flight plates land whole, even when interrupted
                fut.exception()
        for fut in pending:
            fut.result()
    report.seconds = time.perf_counter() - started
    bar(0, close=True)
    return report


def _submit(writers: ThreadPoolExecutor, matter: ClipMatter, result: MatteResult, pending: list[Future],
            skip: Collection[str]) -> list[Future]:
    # Bound the plates waiting to be written; surface a writer's error at once.
    live = [f for f in pending if not f.done()]
    for f in pending:
        if f.done():
            f.result()
    while len(live) >= _WRITE_BEHIND:
        live[0].result()
        live = live[1:]
    live.append(writers.submit(matter.write, result, skip=skip))
    return live


def _check_lead_in(seq: FrameSequence, plan: ResumePlan) -> None:
    """The frames before the range that the plan pre-rolls (from a shot start) must be on disk."""
    if plan.run_from is None or plan.run_from >= plan.frames[0]:
        return
    missing = [f for f in range(plan.run_from, plan.frames[0]) if not os.path.isfile(seq.path(f))]
    if missing:
        listed = str(fileseq.FrameSet.from_iterable(missing, sort=True))
        raise PlateError(
            f"Pre-roll from the shot start {plan.run_from} needs frames {listed} of {seq.pattern}, which are "
            f"missing (e.g. {seq.path(missing[0])}); copy them, or give a later shot start."
        )


def _progress_bar(progress: Union[bool, Callable[[int, int], None]], total: int, skipped: int) -> Callable[..., None]:
    lock = threading.Lock()
    done = [0]
    if callable(progress):
        def call(n: int, close: bool = False) -> None:
            with lock:
                done[0] += n
                progress(done[0], total)
        return call
    if not progress:
        return lambda n, close=False: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="frame", desc="matting", dynamic_ncols=True)
    if skipped:
        bar.set_postfix_str(f"resumed after {skipped} complete frames")

    def update(n: int, close: bool = False) -> None:
        with lock:
            if n:
                bar.update(n)
            if close:
                bar.close()
    return update
