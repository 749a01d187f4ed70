"""Lite R-ASPP: the segmentation head of MobileNetV3, used as RVM's context module."""

from __future__ import annotations

from torch import Tensor, nn

from .frames import per_frame


class LRASPP(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.aspp1 = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(True),
        )
        # Global context as a per-channel gate.
        self.aspp2 = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def _gate(self, x: Tensor) -> list[Tensor]:
        return [self.aspp1(x) * self.aspp2(x)]

    def forward(self, x: Tensor) -> Tensor:
        return per_frame(self._gate, x)[0]
