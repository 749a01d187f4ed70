"""Deep Guided Filter refiner: carries the low-resolution matte up to full resolution.

A guided filter whose linear coefficients are predicted by a small network from local
statistics and the decoder's hidden features (Wu et al., CVPR 2018).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .frames import per_frame


def _with_gray(x: Tensor) -> Tensor:
    return torch.cat([x, x.mean(1, keepdim=True)], dim=1)


def full_size_matte(fine_src: Tensor, a: Tensor, b: Tensor) -> list[Tensor]:
    """The guided filter's last step, made with the network's: ``fgr`` and ``pha`` at full size.

    ``a`` and ``b`` are the filter's coarse coefficients for (R, G, B, gray). The official model
    computes ``a * [src, gray(src)] + b`` at full size, splits it into the foreground residual and
    alpha, adds ``src`` to the residual and clamps both: eight full-size passes, which at 4K cost
    more than the whole coarse network. The same sums in fewer passes: the ``+ src`` folded into
    the coefficients (``a + 1``, made at the coarse size; bilinear weights sum to one) and the
    gray's ``/ 3`` into ``a``'s last channel, no full-size concatenation or split. Equal to the
    official order to float rounding (about 1e-7).
    """
    size = fine_src.shape[2:]
    a, b = a.to(fine_src.dtype), b.to(fine_src.dtype)  # in the frame's precision (see ``matte``)

    def up(t: Tensor) -> Tensor:
        return F.interpolate(t, size, mode="bilinear", align_corners=False)

    fgr = torch.addcmul(up(b[:, :3]), up(a[:, :3] + 1), fine_src)
    # Alpha's two coefficients resized as one two-channel map: the runtimes share a resize out
    # over channels, and a one-channel one ran on one thread (4K: 77 against 87 ms this step).
    pha_a, pha_b = up(torch.cat([a[:, 3:] / 3, b[:, 3:]], dim=1)).split([1, 1], dim=1)
    pha = torch.addcmul(pha_b, pha_a, fine_src.sum(1, keepdim=True))
    return [fgr.clamp_(0.0, 1.0), pha.clamp_(0.0, 1.0)]


class DeepGuidedFilterRefiner(nn.Module):
    def __init__(self, hid_channels: int = 16) -> None:
        super().__init__()
        self.box_filter = nn.Conv2d(4, 4, kernel_size=3, padding=1, bias=False, groups=4)
        self.box_filter.weight.data[...] = 1 / 9
        self.conv = nn.Sequential(
            nn.Conv2d(4 * 2 + hid_channels, hid_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(hid_channels),
            nn.ReLU(True),
            nn.Conv2d(hid_channels, hid_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(hid_channels),
            nn.ReLU(True),
            nn.Conv2d(hid_channels, 4, kernel_size=1, bias=True),
        )

    def coefficients(self, base_src: Tensor, base_fgr: Tensor, base_pha: Tensor, base_hid: Tensor) -> tuple[Tensor, Tensor]:
        """The filter's coarse coefficients ``a``, ``b`` for (R, G, B, gray), ``[B,4,h,w]``."""
        base_x = _with_gray(base_src)
        base_y = torch.cat([base_fgr, base_pha], dim=1)

        mean_x = self.box_filter(base_x)
        mean_y = self.box_filter(base_y)
        cov_xy = self.box_filter(base_x * base_y) - mean_x * mean_y
        var_x = self.box_filter(base_x * base_x) - mean_x * mean_x

        a = self.conv(torch.cat([cov_xy, var_x, base_hid], dim=1))
        return a, mean_y - a * mean_x

    def _refine(self, fine_src: Tensor, base_src: Tensor, base_fgr: Tensor, base_pha: Tensor, base_hid: Tensor) -> list[Tensor]:
        return full_size_matte(fine_src, *self.coefficients(base_src, base_fgr, base_pha, base_hid))

    def forward(self, fine_src: Tensor, base_src: Tensor, base_fgr: Tensor, base_pha: Tensor, base_hid: Tensor) -> list[Tensor]:
        """The final ``fgr`` and ``pha`` at ``fine_src``'s size (see ``full_size_matte``)."""
        return per_frame(self._refine, fine_src, base_src, base_fgr, base_pha, base_hid)
