"""The official ``downsample_ratio`` guidance, as a rule the automatic ratio follows.

RVM's inference notes call the downsample ratio the only hyperparameter: the network's
coarse pass sees the frame scaled by it, and the deep guided filter brings the matte back to
full size. Too low erodes hair and thin limbs; too high fills holes with background and costs
time. The official table (``docs/engine.md`` quotes it) gives, for portrait and full-body
shots:

=========  =========  =========
frame      portrait   full-body
=========  =========  =========
1280x720   0.375      0.6
1920x1080  0.25       0.4
3840x2160  0.125      0.2
=========  =========  =========

Every row puts the downsampled frame's long side at 480 px (portrait) or 768 px (full-body);
its short side lands at 270 or 432 px, inside the 256-512 px the guidance names. The automatic
ratio keeps that: the long side at the framing's size, the short side at least 256 px (for wide
frames such as 2.39:1 scope), never above 1.
"""

from __future__ import annotations

from typing import Tuple

from .errors import FrameInputError

FRAMINGS = ("portrait", "full-body")
# The official table: frame (width, height) -> (portrait, full-body) ratio.
OFFICIAL_TABLE = {(1280, 720): (0.375, 0.6), (1920, 1080): (0.25, 0.4), (3840, 2160): (0.125, 0.2)}
GUIDED_LONG_SIDE = {"portrait": 480, "full-body": 768}
MIN_SHORT_SIDE = 256  # the low end of the official 256-512 px range


def check_framing(framing: str) -> str:
    """``framing`` when it is one of FRAMINGS; else FrameInputError naming the choices."""
    if framing not in FRAMINGS:
        raise FrameInputError(f"framing {framing!r} is not one of {', '.join(FRAMINGS)}: portrait for a head and "
                              "shoulders, full-body for a whole person in frame")
    return framing


def guided_ratio(height: int, width: int, framing: str = "portrait") -> float:
    """The automatic ratio for a ``width`` x ``height`` frame: the official table's for 720p,
    1080p and 4K, and the same rule for every other size (see the module's note)."""
    check_framing(framing)
    long_side, short_side = max(height, width), min(height, width)
    ratio = max(GUIDED_LONG_SIDE[framing] / long_side, MIN_SHORT_SIDE / short_side)
    return min(ratio, 1.0)


def downsampled_size(height: int, width: int, ratio: float) -> Tuple[int, int]:
    """``(width, height)`` the network's coarse pass sees at ``ratio`` (as ``F.interpolate``
    with ``scale_factor`` rounds: down)."""
    if ratio >= 1.0:
        return width, height
    return max(1, int(width * ratio)), max(1, int(height * ratio))
