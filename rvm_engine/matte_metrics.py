"""Figures that compare mattes without ground truth: how far apart two are, and how much one flickers.

Alphas are float arrays in 0..1, ``[T,H,W]`` (frames in order) or ``[H,W]``.

``dtssd`` follows the temporal-coherence metric of Erofeev et al. (2015, "Perceptually
motivated benchmark for video matting"), as RVM's paper reports it (Lin et al. 2022): for each
pair of neighbouring frames, the root of the mean over pixels of the squared difference between
the predicted alpha's change and the true alpha's change, averaged over the pairs, times 100:

    dtSSD = 100 * mean_t sqrt( mean_p ( (a_t - a_{t-1}) - (g_t - g_{t-1}) )^2 )

With no ground truth here the true change ``g_t - g_{t-1}`` is taken as zero, so the figure
counts every change of the alpha from frame to frame: zero on a still matte, larger with motion
and with flicker. Compare ratios on the same shot and stretch, not across shots.
"""

from __future__ import annotations

import numpy as np

from .errors import FrameInputError


def mean_alpha_difference(alpha: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute difference of two alphas of one shape (0 = the same matte, 1 = opposite)."""
    if alpha.shape != reference.shape:
        raise FrameInputError(f"alphas of shapes {alpha.shape} and {reference.shape} cannot be compared; "
                              "matte the same frames at the same size")
    return float(np.mean(np.abs(alpha.astype(np.float64) - reference.astype(np.float64))))


def dtssd(alphas: np.ndarray, truth: np.ndarray | None = None) -> float:
    """Temporal flicker of ``alphas`` ``[T,H,W]`` (T >= 2), scaled by 100 as the RVM paper
    reports it; ``truth`` (same shape) gives the true change, none = a still target."""
    if alphas.ndim != 3 or alphas.shape[0] < 2:
        raise FrameInputError(f"dtSSD needs at least two frames of alpha [T,H,W]; got shape {alphas.shape}")
    change = np.diff(alphas.astype(np.float64), axis=0)
    if truth is not None:
        if truth.shape != alphas.shape:
            raise FrameInputError(f"ground truth of shape {truth.shape} does not match alphas of shape {alphas.shape}")
        change -= np.diff(truth.astype(np.float64), axis=0)
    per_pair = np.sqrt(np.mean(change.reshape(change.shape[0], -1) ** 2, axis=1))
    return float(100.0 * per_pair.mean())


def busiest_edge_box(alpha: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """The ``size`` x ``size`` square ``(x, y, width, height)`` of ``alpha`` ``[H,W]`` holding the
    most matte edge (partial coverage plus steepness) with its centre in the top quarter of the
    subject: people stand upright in frame, so that is the head, where hair is. Clipped to the frame."""
    height, width = alpha.shape
    size = max(1, min(size, height, width))
    soft = ((alpha > 0.02) & (alpha < 0.98)).astype(np.float64)  # partial coverage: hair, motion blur
    rows, cols = np.gradient(alpha.astype(np.float64))
    score = soft + np.hypot(rows, cols)
    total = np.pad(score.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = total[size:, size:] - total[:-size, size:] - total[size:, :-size] + total[:-size, :-size]
    covered = np.flatnonzero((alpha > 0.5).any(axis=1))
    if covered.size:
        top, bottom = int(covered[0]), int(covered[-1])
        head_end = top + max((bottom - top) // 4, 1)
        centres = np.arange(sums.shape[0]) + size // 2
        sums[centres > head_end] = -1.0  # below the head: only when nothing above fits
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(x), int(y), size, size
