"""Batch rendering of a plate sequence: read, matte and write as overlapping stages.

Reading plates (a thread ahead of the network), running the network (this thread, in frame
order) and writing plates (a pool of two behind it: an EXR write costs about as much as the
network, and alpha and foreground are two of them) overlap, so a steady render tends to the
slowest stage rather than the sum of the three. Every plate is written atomically; Ctrl-C or
``cancel`` stops after the frames in flight are written, and ``resume`` carries on from the
first frame whose plates are missing, pre-rolling the frames before it without writing them.
"""

from __future__ import annotations

import functools
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence, Union

from .clip import ClipMatter, ClipSettings, MatteResult, PreparedPlate, outputs_complete
from .errors import PlateError
from .model import MattingNetwork
from .plates import read_plate
from .sequences import FrameSequence, parse_sequence
from .stages import Prefetch

DEFAULT_PREROLL = 32  # frames of pre-roll before a resumed frame (the state settles well within it)
_READ_AHEAD = 3
_WRITE_BEHIND = 4


@dataclass
class RenderReport:
    """What a render did. ``written`` lists the frames whose plates were written (in completion order)."""

    written: list[int] = field(default_factory=list)
    skipped: int = 0  # frames already complete when resuming
    prerolled: int = 0
    bad_pixels: int = 0
    seconds: float = 0.0
    cancelled: bool = False


def plan_resume(seq: FrameSequence, matter: ClipMatter, preroll: int) -> tuple[int, int]:
    """(index of the first frame to write, index to pre-roll from) for a resumed render."""
    first = next((i for i, f in enumerate(seq.frames) if not outputs_complete(matter.output_paths(f))), len(seq))
    return first, max(0, first - preroll)


def _plates(seq: FrameSequence, frames: list[int], matter: ClipMatter) -> Iterator[tuple[int, PreparedPlate]]:
    # Reading and the colour conversion into the model's space both run on the reader thread.
    for frame in frames:
        yield frame, matter.prepare(read_plate(seq.path(frame), layer=matter.settings.layer))


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
    disk) of ``source`` and write the plates ``settings`` asks for.

    ``seq_chunk`` frames go through the network per call (1 gives plates identical to the bridge).
    ``progress`` is True for a tqdm bar, or a callback ``(done, total)``. Raises ``PlateError`` before
    any work when a frame is missing, no output is asked for or an output folder is unusable; other
    ``RVMError`` subclasses for bad frames. ``KeyboardInterrupt`` propagates after in-flight plates
    are written; ``cancel`` stops the same way and returns a report with ``cancelled=True``.
    """
    started = time.perf_counter()
    seq = source if isinstance(source, FrameSequence) else parse_sequence(source, frames)
    outputs = settings.outputs()
    if not outputs:
        raise PlateError("nothing to write: give at least one of --alpha, --foreground or --rgba")
    for pattern in outputs.values():
        seq.output(pattern, create_folder=True)
    if seq_chunk < 1:
        raise PlateError(f"chunk size {seq_chunk} must be at least 1")
    matter = ClipMatter(settings, model)
    first, start = plan_resume(seq, matter, preroll) if resume else (0, 0)
    report = RenderReport(skipped=first)
    todo = seq.frames[start:]
    total = len(seq) - first
    bar = _progress_bar(progress, total, report.skipped)
    pending: list[Future] = []
    batch: list[tuple[int, PreparedPlate]] = []

    def finished(frame: int, fut: Future) -> None:
        if fut.exception() is None:
            report.written.append(frame)
            bar(1)

    reader = Prefetch(_plates(seq, todo, matter), _READ_AHEAD)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="plate-writer") as writers:
        try:
            for index, (frame, plate) in enumerate(reader, start=start):
                if cancel is not None and cancel.is_set():
                    report.cancelled = True
                    break
                if index < first:
                    report.bad_pixels += matter.matte(plate, frame, keep=False).bad_pixels
                    report.prerolled += 1
                    continue
                batch.append((frame, plate))
                if len(batch) < seq_chunk and index + 1 < len(seq):
                    continue
                results = matter.matte_many([p for _, p in batch], [f for f, _ in batch])
                batch.clear()
                for result in results:
                    report.bad_pixels += result.bad_pixels
                    pending = _submit(writers, matter, result, pending)
                    pending[-1].add_done_callback(functools.partial(finished, result.frame))
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
