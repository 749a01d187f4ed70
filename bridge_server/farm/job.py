"""One farm job: a shot's frames, split into contiguous ranges, and the task command every farm runs.

Every integration (OpenJD, Deadline, OpenCue) runs the same task: ``rvm-bridge render INPUT
--frames A-B --chunk --shot-start S --preroll P ...`` on the render node, which is the batch
renderer itself with the chunk rule of ``rvm_engine.chunks``. A job only decides what goes on
that command line; it never decides where chunks start (the farm does).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

from . import FarmError

OUTPUTS = ("alpha", "foreground", "rgba")


@dataclass
class FarmJob:
    """A shot to matte on a farm. Paths are absolute; ``frames`` ascending, on disk."""

    name: str
    input: str
    outputs: Dict[str, str]  # alpha / foreground / rgba -> output pattern
    frames: List[int]
    shot_start: int
    chunk: int
    preroll: int
    variant: str = "mobilenetv3"
    downsample_ratio: Optional[float] = None
    colour_space: Optional[str] = None
    device: str = "cpu"
    extra: List[str] = field(default_factory=list)  # other clip options, as command-line words
    command: List[str] = field(default_factory=lambda: ["rvm-bridge"])  # how a render node runs rvm-bridge
    notes: List[str] = field(default_factory=list)  # said when the job is written

    @property
    def ranges(self) -> list[tuple[int, int]]:
        """Contiguous runs of the frames: one OpenCue layer, one Deadline job, one OpenJD fallback group each."""
        from rvm_engine.chunks import contiguous_ranges

        return contiguous_ranges(self.frames)

    @property
    def frames_text(self) -> str:
        """The frames as contiguous ranges, ``1001-1010,1015-1024``: a range both fileseq and OpenJD
        read (OpenJD writes steps another way, so none are used)."""
        return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in self.ranges)

    def values(self) -> Dict[str, str]:
        """The task command's values, literally (a template replaces some with its own references)."""
        ratio = "auto" if self.downsample_ratio is None else f"{self.downsample_ratio:g}"
        values = {"input": self.input, "shot_start": str(self.shot_start), "preroll": str(self.preroll),
                  "variant": self.variant, "downsample_ratio": ratio, "colour_space": self.colour_space or "",
                  "device": self.device}
        values.update(self.outputs)
        return values

    def task_arguments(self, frames: str, values: Optional[Mapping[str, str]] = None,
                       within: Optional[str] = None) -> List[str]:
        """The words after the command: ``render INPUT --frames FRAMES --chunk ...``. ``frames`` and
        ``within`` may be farm tokens (``<STARTFRAME>-<ENDFRAME>``, ``{{Task.Param.Frame}}``)."""
        v = dict(self.values())
        v.update(values or {})
        words = ["render", v["input"], "--frames", frames, "--chunk", "--shot-start", v["shot_start"],
                 "--preroll", v["preroll"]]
        if within:
            words += ["--within", within]
        for name in OUTPUTS:
            if name in self.outputs:
                words += [f"--{name}", v[name]]
        words += ["--variant", v["variant"], "--downsample-ratio", v["downsample_ratio"],
                  "--colour-space", v["colour_space"], "--device", v["device"]]
        return words + list(self.extra)

    def command_line(self, frames: str, within: Optional[str] = None) -> str:
        """The whole task command as one shell line (for farms that take a string)."""
        return " ".join(shlex.quote(w) if w else "''" for w in self.command + self.task_arguments(frames,
                                                                                                 within=within))


def check_job(job: FarmJob) -> None:
    """Refuse what would make a bad job, each with a one-line reason: a chunk under 1 frame, a negative
    pre-roll, no outputs, outputs inside the input folder, two outputs on one pattern."""
    from rvm_engine.chunks import check_chunk_size

    check_chunk_size(job.chunk)
    if job.preroll < 0:
        raise FarmError(f"pre-roll {job.preroll} must be 0 or more frames")
    if not job.outputs:
        raise FarmError("nothing to write: give at least one of --alpha, --foreground or --rgba")
    from rvm_engine.sequences import frame_path

    # Compare files, not spellings: a.####.exr, a.%04d.exr and a.$F4.exr are the same plates.
    if len({os.path.normcase(frame_path(p, job.frames[0])) for p in job.outputs.values()}) < len(job.outputs):
        raise FarmError("two outputs name the same plates; give each its own pattern")
    if len(job.frames) > 1:
        from rvm_engine.sequences import _has_token

        for name, pattern in job.outputs.items():
            if not _has_token(pattern):
                raise FarmError(f"--{name} {pattern} has no frame token, so every frame would overwrite one file; "
                                "add one, e.g. alpha.####.exr")
    source_folder = os.path.realpath(os.path.dirname(job.input))
    for name, pattern in job.outputs.items():
        folder = os.path.realpath(os.path.dirname(pattern))
        if folder == source_folder or folder.startswith(source_folder + os.sep):
            raise FarmError(f"--{name} {pattern} is inside the input folder {source_folder}; write the plates to "
                               "another folder so tasks never mix them with the source plates")


def describe_preroll(job: FarmJob) -> List[str]:
    """What the pre-roll does to this job, in words: where it is clipped at the shot start."""
    notes = []
    first, _ = job.ranges[0]
    if job.preroll and first > job.shot_start and first - job.preroll < job.shot_start:
        reach = first - job.shot_start
        notes.append(f"{job.name}: pre-roll {job.preroll} reaches before the shot start {job.shot_start}; chunks "
                     f"starting within {job.preroll} frames of it pre-roll from {job.shot_start} (the first chunk "
                     f"pre-rolls {reach}), so they equal an unbroken render")
    elif job.preroll > job.chunk and len(job.frames) > job.chunk:
        notes.append(f"{job.name}: pre-roll {job.preroll} is longer than a chunk ({job.chunk}): chunks starting "
                     f"within {job.preroll} frames of the shot start {job.shot_start} pre-roll from it (clipped), "
                     f"and a task runs up to {job.preroll + job.chunk} frames to write {job.chunk}")
    if len(job.ranges) > 1:
        listed = job.frames_text.replace(",", ", ")
        notes.append(f"{job.name}: frames {job.frames_text} have gaps; split into contiguous ranges {listed}")
    return notes


def make_job(name: str, input_pattern: str, frames: Optional[str], outputs: Mapping[str, Optional[str]], *,
             shot_start: Optional[int], chunk: int, preroll: int, variant: str = "mobilenetv3",
             downsample_ratio: Optional[float] = None, colour_space: Optional[str] = None, device: str = "cpu",
             extra: Sequence[str] = (), command: Sequence[str] = ("rvm-bridge",)) -> FarmJob:
    """Check a shot on disk and make its job. ``outputs`` patterns may hold ``{shot}`` (the job's name).

    Raises FarmError for a bad chunk size, pre-roll, outputs or shot start; PlateError (from the
    engine) when a frame asked for is missing on disk, naming the frames."""
    from rvm_engine.sequences import parse_sequence

    if os.name != "nt":
        from ..client.pathmap import windows_style

        for key, value in [("input", input_pattern)] + [(k, v) for k, v in outputs.items() if v]:
            if windows_style(value):
                raise FarmError(f"{'the input' if key == 'input' else '--' + key} {value} is a Windows path, and "
                                "paths are made absolute on this machine: give them as it sees them (the farm's path "
                                "mapping translates them for Windows nodes)")
    source = os.path.abspath(input_pattern)
    seq = parse_sequence(source, frames)
    ordered = sorted(set(seq.frames))
    start = ordered[0] if shot_start is None else int(shot_start)
    if start > ordered[0]:
        raise FarmError(f"shot start {start} is after the first frame {ordered[0]}; give the shot's first frame")
    patterns = {key: os.path.abspath(value.replace("{shot}", name)) for key, value in outputs.items() if value}
    job = FarmJob(name, source, patterns, ordered, start, chunk, preroll, variant, downsample_ratio, colour_space,
                  device, list(extra), list(command))
    check_job(job)
    job.notes = describe_preroll(job)
    return job
