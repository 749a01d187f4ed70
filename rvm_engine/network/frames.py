"""The one shape convention of the network: frames ``[B,C,H,W]`` or series ``[B,T,C,H,W]``."""

from __future__ import annotations

from typing import Callable, Sequence

from torch import Tensor


def per_frame(fn: Callable[..., Sequence[Tensor]], *xs: Tensor) -> list[Tensor]:
    """Run ``fn`` on frames, folding a time axis into the batch and back.

    ``fn`` takes 4-D tensors and returns a sequence of 4-D tensors. When the first input is
    5-D, every input is flattened to ``[B*T, ...]`` and every output unflattened to ``[B, T, ...]``.
    """
    if xs[0].ndim == 5:
        b, t = xs[0].shape[:2]
        outs = fn(*(x.flatten(0, 1) for x in xs))
        return [o.unflatten(0, (b, t)) for o in outs]
    return list(fn(*xs))
