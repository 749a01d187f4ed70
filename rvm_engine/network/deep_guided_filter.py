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

    def _refine(self, fine_src: Tensor, base_src: Tensor, base_fgr: Tensor, base_pha: Tensor, base_hid: Tensor) -> list[Tensor]:
        fine_x = _with_gray(fine_src)
        base_x = _with_gray(base_src)
        base_y = torch.cat([base_fgr, base_pha], dim=1)

        mean_x = self.box_filter(base_x)
        mean_y = self.box_filter(base_y)
        cov_xy = self.box_filter(base_x * base_y) - mean_x * mean_y
        var_x = self.box_filter(base_x * base_x) - mean_x * mean_x

        a = self.conv(torch.cat([cov_xy, var_x, base_hid], dim=1))
        b = mean_y - a * mean_x
        size = fine_src.shape[2:]
        a = F.interpolate(a, size, mode="bilinear", align_corners=False)
        b = F.interpolate(b, size, mode="bilinear", align_corners=False)
        return list((a * fine_x + b).split([3, 1], dim=1))

    def forward(self, fine_src: Tensor, base_src: Tensor, base_fgr: Tensor, base_pha: Tensor, base_hid: Tensor) -> list[Tensor]:
        return per_frame(self._refine, fine_src, base_src, base_fgr, base_pha, base_hid)
