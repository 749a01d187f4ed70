"""Batch rendering of a plate sequence: read, matte and write as overlapping stages.

Reading plates and converting them into the model's space (reader threads, ahead of the
network), running the network (this thread, in frame order) and converting the foreground back
and writing plates (a writer pool behind it: one ZIP-compressed EXR write costs about as much as
the network on a CPU, and alpha and foreground are two of them) overlap, so a steady render tends to the
slowest stage rather than the sum of the three. Every plate is written atomically; Ctrl-C or
``cancel`` stops after the frames in flight are written, and ``resume`` carries on from the
first frame whose plates are missing, pre-rolling the frames before it without writing them.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Generator, Optional, Sequence, Union

from .clip import ClipMatter, ClipSettings, MatteResult, PreparedPlate
from .errors import PlateError
from .model import MattingNetwork
from .plates import first_incomplete, read_plate
from .sequences import FrameSequence, parse_sequence
from .stages import ordered_map

DEFAULT_PREROLL = 32  # frames of pre-roll before a resumed frame (the state settles well within it)
# Reading + colour in, and colour out + EXR compression, each cost more than the network on a GPU
# (bench/bench_render.py): give them more threads where there are cores for them.
_CORES = os.cpu_count() or 2
_READERS = max(1, min(4, _CORES // 4))
_WRITERS = max(2, min(8, _CORES // 2))
_READ_AHEAD = _READERS + 2
_WRITE_BEHIND = 2 * _WRITERS


@dataclass
class RenderReport:
    """What a render did. ``written`` lists the frames whose plates were written (in completion order)."""

    written: list[int] = field(default_factory=list)
    skipped: int = 0  # frames already complete when resuming
    prerolled: int = 0
    bad_pixels: int = 0
    seconds: float = 0.0
    cancelled: bool = False


def plan_resume(seq: FrameSequence, outputs: dict[str, str], preroll: int) -> tuple[int, int]:
    """(index of the first frame to write, index to pre-roll from) for a resumed render."""
    first = first_incomplete(seq.frames, outputs.values())
    if first == len(seq):
        return first, first  # nothing left: nothing to pre-roll either
    return first, max(0, first - preroll)


def run_list(seq: FrameSequence, start: int, first: int) -> list[tuple[int, bool]]:
    """The frames to run from index ``start``, each with whether its plates are written (from index ``first``).

    Frames a stepped range skips (``1001-1100x2``) are run as pre-roll when they are all on disk, so
    every written frame has seen the frames before it, as through the bridge; a sequence that only
    has the stepped frames runs them back to back.
    """
    run: list[tuple[int, bool]] = []
    for index in range(start, len(seq)):
        frame = seq.frames[index]
        if run and frame > run[-1][0] + 1:
            between = range(run[-1][0] + 1, frame)
            if all(os.path.isfile(seq.path(f)) for f in between):
                run.extend((f, False) for f in between)
        run.append((frame, index >= first))
    return run


def _plates(seq: FrameSequence, frames: list[int], matter: ClipMatter) -> Generator[tuple[int, PreparedPlate], None, None]:
    """Read and convert into the model's space on reader threads, ahead of the network, in order."""

    def load(frame: int) -> tuple[int, PreparedPlate]:
        return frame, matter.prepare(read_plate(seq.path(frame), layer=matter.settings.layer))

    return ordered_map(load, frames, _READERS, _READ_AHEAD)


def render_sequence(
    source: Union[str, FrameSequence],
    frames: Union[str, Sequence[int], None],
    settings: ClipSettings,
    *,
    resume: bool = False,
    preroll: int = DEFAULT_PREROLL,
    seq_chunk: int = 1,
    model: Optional[MattingNetwork] = None,
    cancel: Optional[threading.Event] = None,
    progress: Union[bool, Callable[[int, int], None]] = True,
) -> RenderReport:
    """Matte frames ``frames`` (a range such as ``"1001-1100x2"``, both ends included; None = all on
    disk) of ``source`` and write the plates ``settings`` asks for. Frames run in ascending order
    whatever order the range lists them in.

    ``seq_chunk`` frames go through the network per call (1 gives plates identical to the bridge).
    ``progress`` is True for a tqdm bar, or a callback ``(done, total)``. Raises ``PlateError`` before
    any work when a frame is missing, no output is asked for or an output folder is unusable; other
    ``RVMError`` subclasses for bad frames. ``KeyboardInterrupt`` propagates after in-flight plates
    are written; ``cancel`` stops the same way and returns a report with ``cancelled=True``.
    """
    started = time.perf_counter()
    if preroll < 0:
        raise PlateError(f"pre-roll {preroll} must be 0 or more frames")
    seq = source if isinstance(source, FrameSequence) else parse_sequence(source, frames)
    # The recurrent state needs frames in order, however the range was written (1100-1001, 5,1,3).
    seq = dataclasses.replace(seq, frames=sorted(set(seq.frames)))
    outputs = settings.outputs()
    if not outputs:
        raise PlateError("nothing to write: give at least one of --alpha, --foreground or --rgba")
    for pattern in outputs.values():
        seq.output(pattern, create_folder=True)
    if seq_chunk < 1:
        raise PlateError(f"chunk size {seq_chunk} must be at least 1")
    matter = ClipMatter(settings, model)
    first, start = plan_resume(seq, outputs, preroll) if resume else (0, 0)
    report = RenderReport(skipped=first)
    run = run_list(seq, start, first)
    bar = _progress_bar(progress, len(seq) - first, report.skipped)
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
            pending = _submit(writers, matter, result, pending)
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


def _submit(writers: ThreadPoolExecutor, matter: ClipMatter, result: MatteResult, pending: list[Future]) -> list[Future]:
    # Bound the plates waiting to be written; surface a writer's error at once.
    live = [f for f in pending if not f.done()]
    for f in pending:
        if f.done():
            f.result()
    while len(live) >= _WRITE_BEHIND:
        live[0].result()
        live = live[1:]
    live.append(writers.submit(matter.write, result))
    return live


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
