"""Fast Guided Filter refiner (He and Sun, 2015): no learned parameters, a little faster.

The official checkpoints carry Deep Guided Filter weights; with this refiner they are unused.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .deep_guided_filter import _with_gray, full_size_matte
from .frames import per_frame


def _box_filter(x: Tensor, radius: int) -> Tensor:
    """Separable mean over a (2r+1) square window, zero padded like the official filter."""
    size = 2 * radius + 1
    # A plain int: from the traced shape the ONNX export could not size the kernel (the batch
    # axis is free) and refused the graph.
    channels = int(x.shape[1])
    kx = x.new_full((channels, 1, 1, size), 1 / size)
    ky = x.new_full((channels, 1, size, 1), 1 / size)
    x = F.conv2d(x, kx, padding=(0, radius), groups=channels)
    return F.conv2d(x, ky, padding=(radius, 0), groups=channels)


class FastGuidedFilterRefiner(nn.Module):
    def __init__(self, radius: int = 1, eps: float = 1e-5) -> None:
        super().__init__()
        self.radius = radius
        self.eps = eps

    def coefficients(self, base_src: Tensor, base_fgr: Tensor, base_pha: Tensor, base_hid: Tensor) -> tuple[Tensor, Tensor]:
        """The filter's coarse coefficients ``a``, ``b`` for (R, G, B, gray), ``[B,4,h,w]``, in float32."""
        # In float32 whatever the network ran in: ``a`` divides by the window's variance plus eps
        # (1e-5), a difference of squares that bfloat16 and float16 round to noise, and a model
        # cast to bfloat16 made whole pixels of garbage (fgr and pha off by 1.0 against float32).
        lr_x = _with_gray(base_src.float())
        lr_y = torch.cat([base_fgr, base_pha], dim=1).float()
        mean_x = _box_filter(lr_x, self.radius)
        mean_y = _box_filter(lr_y, self.radius)
        cov_xy = _box_filter(lr_x * lr_y, self.radius) - mean_x * mean_y
        var_x = _box_filter(lr_x * lr_x, self.radius) - mean_x * mean_x
        a = cov_xy / (var_x + self.eps)
        return a, mean_y - a * mean_x

    def _refine(self, fine_src: Tensor, base_src: Tensor, base_fgr: Tensor, base_pha: Tensor, base_hid: Tensor) -> list[Tensor]:
        return full_size_matte(fine_src, *self.coefficients(base_src, base_fgr, base_pha, base_hid))

    def forward(self, fine_src: Tensor, base_src: Tensor, base_fgr: Tensor, base_pha: Tensor, base_hid: Tensor) -> list[Tensor]:
        """The final ``fgr`` and ``pha`` at ``fine_src``'s size (see ``full_size_matte``)."""
        return per_frame(self._refine, fine_src, base_src, base_fgr, base_pha, base_hid)
