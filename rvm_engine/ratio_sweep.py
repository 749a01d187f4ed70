"""Try several downsample ratios on a short stretch of a shot: ``rvm-bridge ratios``.

Each ratio gets its own cold clip state, runs the pre-roll frames before the stretch (so the
recurrent state has settled and the network is warm when it is judged), then the stretch, one
frame a call, timed. The figures per ratio: network milliseconds a frame, the mean alpha
difference from the highest ratio tried, and dtSSD flicker (``matte_metrics``). The plates are
read and converted into the model's space once, shared by every ratio.

The suggestion is a plain rule a compositor can check against the sheet: the lowest (fastest)
ratio whose matte is within ``TOLERANCE`` mean alpha of the highest ratio's and whose flicker is
within ``FLICKER_MARGIN`` of the steadiest ratio's; the highest ratio when none is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

import fileseq
import numpy as np

from .clip import ClipSettings, colour_for_plate
from .errors import FrameInputError
from .matte_metrics import busiest_edge_box, dtssd, mean_alpha_difference
from .model import MattingNetwork
from .plates import read_plate
from .ratio_guidance import check_framing, downsampled_size, guided_ratio
from .sequences import parse_sequence
from .session import MattingSession
from .weights import load_model

DEFAULT_RATIOS = (0.125, 0.25, 0.4, 0.6)
DEFAULT_PREROLL = 8
TOLERANCE = 0.01  # mean alpha difference from the highest ratio: 1% of full coverage
FLICKER_MARGIN = 1.10  # within 10% of the steadiest ratio's dtSSD
MAX_RATIOS = 12
MAX_FRAMES = 100  # judged frames, and pre-roll frames: their pixels are held for every ratio
CROP_MAX = 160  # px of the frame in the hair crop
# Pixels a sweep may hold (model-space frames and every ratio's alphas): a bridge is shared, and
# 12 ratios over 100 4K frames would be 60 GiB. The default sweep of a 4K stretch needs about 4.
MAX_SWEEP_BYTES = 8 * 2 ** 30


@dataclass
class RatioTrial:
    """One ratio's run over the stretch. ``alphas`` ``[T,H,W]`` are the judged frames';
    ``foreground`` is the shown (last) frame's, in the model's sRGB 0..1."""

    ratio: float
    size: tuple[int, int]
    ms_per_frame: float
    alphas: np.ndarray
    foreground: np.ndarray
    mean_difference: float = 0.0
    dtssd: float = 0.0

    def row(self) -> dict[str, Any]:
        return {"ratio": self.ratio, "size": list(self.size), "ms_per_frame": round(self.ms_per_frame, 3),
                "mean_difference": round(self.mean_difference, 6), "dtssd": round(self.dtssd, 6)}


@dataclass
class RatioSweep:
    """What ``sweep_ratios`` found: a trial per ratio (ascending), the frames, and a suggestion."""

    source: str
    frames: list[int]
    preroll_frames: list[int]
    frame_size: tuple[int, int]
    framing: str
    guided: float
    trials: list[RatioTrial] = field(default_factory=list)
    source_rgb: Optional[np.ndarray] = None  # the shown frame in the model's sRGB
    edge_box: tuple[int, int, int, int] = (0, 0, 0, 0)
    suggested: float = 0.0
    reason: str = ""

    @property
    def shown_frame(self) -> int:
        return self.frames[-1]

    def table(self) -> str:
        """The figures as a text table, one line a ratio, then the suggestion."""
        top = f"mean |a - a({self.trials[-1].ratio:g})|" if self.trials else ""
        lines = [f"{'ratio':>6}  {'network sees':>12}  {'ms/frame':>9}  {top:>16}  {'dtSSD':>7}"]
        for trial in self.trials:
            mark = "  <- suggested" if trial.ratio == self.suggested else ""
            lines.append(f"{trial.ratio:>6g}  {trial.size[0]:>5}x{trial.size[1]:<6}  {trial.ms_per_frame:>9.1f}  "
                         f"{trial.mean_difference:>16.4f}  {trial.dtssd:>7.3f}{mark}")
        lines.append(f"suggested: {self.suggested:g}: {self.reason}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The figures without pixels, JSON-ready (the bridge reply carries this)."""
        return {"source": self.source, "frames": self.frames, "preroll_frames": self.preroll_frames,
                "frame_size": list(self.frame_size), "framing": self.framing, "guided": self.guided,
                "rows": [trial.row() for trial in self.trials], "suggested": self.suggested, "reason": self.reason,
                "edge_box": list(self.edge_box), "table": self.table()}


def check_ratios(ratios: Sequence[float]) -> list[float]:
    """Distinct ratios in (0, 1], ascending; FrameInputError otherwise."""
    if not 1 <= len(ratios) <= MAX_RATIOS:
        raise FrameInputError(f"give 1 to {MAX_RATIOS} ratios to try, not {len(ratios)}")
    for ratio in ratios:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
            raise FrameInputError(f"downsample ratio {ratio!r} must be a number in (0, 1]")
    return sorted({float(ratio) for ratio in ratios})


def sweep_ratios(source: str, frames: Union[str, Sequence[int]], ratios: Sequence[float] = DEFAULT_RATIOS, *,
                 settings: Optional[ClipSettings] = None, preroll: int = DEFAULT_PREROLL,
                 model: Optional[MattingNetwork] = None,
                 progress: Optional[Callable[[str], None]] = None) -> RatioSweep:
    """Matte ``frames`` of ``source`` (a range such as ``"1013-1020"``, both ends included; at
    least two frames, for the flicker figure) at each of ``ratios``, after up to ``preroll`` frames
    before the range that are on disk. ``settings`` give the variant, colour space, layer, framing,
    device and precision (its ratio and outputs are ignored). Raises PlateError for missing
    plates, FrameInputError for ratios or ranges that cannot work."""
    settings = settings or ClipSettings()
    check_framing(settings.framing)
    tried = check_ratios(ratios)
    _check_stretch(frames)
    seq = parse_sequence(source, frames)
    judged = sorted(set(seq.frames))  # a listed frame twice is judged once
    if len(judged) < 2:
        raise FrameInputError(f"frames {frames!r} give {len(judged)} frame; give a range of at least two frames "
                              "(e.g. 1001-1008) so flicker can be measured")
    if len(judged) > MAX_FRAMES or not 0 <= preroll <= MAX_FRAMES:
        raise FrameInputError(f"{len(judged)} frames and a pre-roll of {preroll}: give at most {MAX_FRAMES} of each "
                              "(a short stretch is enough to judge a ratio)")
    before = _frames_before(source, judged[0], preroll)
    say = progress or (lambda line: None)
    say(f"reading {len(before)} pre-roll and {len(judged)} judged frames")
    read = parse_sequence(source, before + judged) if before else seq
    frames_read = before + judged
    rgb = [_model_rgb(settings, read.path(frames_read[0]))]
    height, width = rgb[0].shape[:2]
    # Every frame in the model's space and every ratio's alphas are held until the figures are made.
    need = 4 * height * width * (3 * len(frames_read) + len(tried) * len(judged))
    if need > MAX_SWEEP_BYTES:
        raise FrameInputError(f"{len(tried)} ratios over {len(judged)} frames (and {len(before)} pre-roll) of "
                              f"{width}x{height} would hold {need / 2 ** 30:.1f} GiB of pixels, over "
                              f"{MAX_SWEEP_BYTES / 2 ** 30:.0f} GiB: judge fewer frames (a dozen is plenty), fewer "
                              "ratios or a shorter pre-roll")
    rgb += [_model_rgb(settings, read.path(f)) for f in frames_read[1:]]  # the plates' own pixels are let go
    if any(frame.shape[:2] != (height, width) for frame in rgb):
        raise FrameInputError(f"the plates of {source} change size within frames {before + judged}; try ratios on "
                              "a stretch of one size")
    if model is None:
        model = load_model(settings.variant, settings.checkpoint, settings.refiner, settings.device)
    sweep = RatioSweep(source=str(source), frames=judged, preroll_frames=before, frame_size=(width, height),
                       framing=settings.framing, guided=guided_ratio(height, width, settings.framing),
                       source_rgb=rgb[-1])
    for ratio in tried:
        say(f"ratio {ratio:g}")
        sweep.trials.append(_trial(model, settings, ratio, rgb[:len(before)], rgb[len(before):]))
    reference = sweep.trials[-1].alphas
    for trial in sweep.trials:
        trial.mean_difference = mean_alpha_difference(trial.alphas, reference)
        trial.dtssd = dtssd(trial.alphas)
    size = min(max(min(height, width) // 3, 32), CROP_MAX)  # at most CROP_MAX, so the crop is enlarged
    sweep.edge_box = busiest_edge_box(reference[-1], size)  # the finest matte shows where the hair is
    sweep.suggested, sweep.reason = suggest(sweep.trials, sweep.guided, sweep.framing)
    return sweep


def _model_rgb(settings: ClipSettings, path: str) -> np.ndarray:
    plate = read_plate(path, layer=settings.layer)
    return colour_for_plate(settings, plate).to_model(plate.pixels)[0]  # numpy: the sweep runs its own sessions


def _check_stretch(frames: Union[str, Sequence[int]]) -> None:
    """Refuse, before any plate is looked for, a stretch over MAX_FRAMES (a range such as
    ``1-9999999`` would otherwise be checked on disk frame by frame) or one with gaps or steps
    (flicker is measured between neighbouring frames, and the network must see them in order).
    A range that cannot be read is left to ``parse_sequence`` to name."""
    if isinstance(frames, str):
        try:
            parsed = fileseq.FrameSet(frames)
        except (fileseq.ParseException, fileseq.MaxSizeException):
            return
        count = len(parsed)
    else:
        count = len(set(frames))
    if count > MAX_FRAMES:
        raise FrameInputError(f"frames {frames!r} give {count} frames: judge at most {MAX_FRAMES} (a short stretch, "
                              "e.g. 1013-1024, is enough to judge a ratio)")
    listed = sorted({int(f) for f in (parsed if isinstance(frames, str) else frames)})
    if listed and listed[-1] - listed[0] + 1 != len(listed):
        raise FrameInputError(f"frames {frames!r} have gaps or steps; judge one unbroken stretch such as "
                              f"{listed[0]}-{listed[-1]} (flicker is measured between neighbouring frames)")


def _frames_before(source: str, first: int, count: int) -> list[int]:
    if count <= 0:
        return []
    on_disk = parse_sequence(source, None).frames
    return sorted(f for f in on_disk if f < first)[-count:]


def _trial(model: MattingNetwork, settings: ClipSettings, ratio: float, preroll: list[np.ndarray],
           judged: list[np.ndarray]) -> RatioTrial:
    session = MattingSession(model, device=settings.device, precision=settings.precision, downsample_ratio=ratio)
    if not preroll:  # nothing before the stretch: warm the network up on a throwaway state
        MattingSession(model, device=settings.device, precision=settings.precision,
                       downsample_ratio=ratio).run(judged[0])
    for frame in preroll:
        session.run(frame)
    alphas, seconds = [], 0.0
    foreground = judged[-1]
    for frame in judged:
        started = time.perf_counter()
        foreground, alpha = session.run(frame)
        seconds += time.perf_counter() - started
        alphas.append(alpha)
    height, width = judged[0].shape[:2]
    return RatioTrial(ratio, downsampled_size(height, width, ratio), 1000 * seconds / len(judged), np.stack(alphas),
                      foreground)


def suggest(trials: list[RatioTrial], guided: float, framing: str = "portrait") -> tuple[float, str]:
    """The suggested ratio and why, by the rule in the module's note (trials ascending, figures set)."""
    top = trials[-1]
    if len(trials) == 1:
        return top.ratio, "the only ratio tried"
    steadiest = min(trial.dtssd for trial in trials)
    for trial in trials:
        close = trial.mean_difference <= TOLERANCE
        steady = trial.dtssd <= steadiest * FLICKER_MARGIN + 1e-9
        if close and steady:
            break
    else:
        trial = top
    lower = [t for t in trials if t.ratio < trial.ratio]
    if trial is top and lower:
        why = f"every lower ratio differs from it by more than {TOLERANCE:.0%} mean alpha or flickers more"
    elif trial is top:
        why = "the lowest ratio tried is the highest"
    else:
        why = (f"the fastest ratio within {TOLERANCE:.0%} mean alpha of {top.ratio:g} "
               f"({trial.mean_difference:.2%}) and within {FLICKER_MARGIN - 1:.0%} of the steadiest dtSSD")
        if lower:
            below = lower[-1]
            why += (f"; {below.ratio:g} differs by {below.mean_difference:.2%}"
                    + (" (edges and hair erode)" if below.mean_difference > TOLERANCE else " but flickers more"))
    why += f"; auto ({framing}) would use {guided:.3g} for this frame size"
    return trial.ratio, why
