"""The recurrent decoder: ConvGRUs at four scales carry what the network saw in earlier frames.

This is the only part of RVM where time matters. Each GRU keeps half of its block's channels
recurrent and passes the other half straight through, as in the paper.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .frames import per_frame


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(True)]


class ConvGRU(nn.Module):
    def __init__(self, channels: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.channels = channels
        self.ih = nn.Sequential(nn.Conv2d(channels * 2, channels * 2, kernel_size, padding=padding), nn.Sigmoid())
        self.hh = nn.Sequential(nn.Conv2d(channels * 2, channels, kernel_size, padding=padding), nn.Tanh())

    def _step(self, x: Tensor, h: Tensor) -> Tensor:
        reset, update = self.ih(torch.cat([x, h], dim=1)).split(self.channels, dim=1)
        candidate = self.hh(torch.cat([x, reset * h], dim=1))
        return (1 - update) * h + update * candidate

    def forward(self, x: Tensor, h: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        if h is None:
            h = x.new_zeros((x.size(0), x.size(-3), x.size(-2), x.size(-1)))
        if x.ndim == 4:
            h = self._step(x, h)
            return h, h
        outputs = []
        for xt in x.unbind(dim=1):
            h = self._step(xt, h)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h


def _split_gru(gru: ConvGRU, x: Tensor, r: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """Run the GRU on the second half of the channels, keep the first half as it is."""
    passthrough, recurrent = x.split(gru.channels, dim=-3)
    recurrent, r = gru(recurrent, r)
    return torch.cat([passthrough, recurrent], dim=-3), r


class BottleneckBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.gru = ConvGRU(channels // 2)

    def forward(self, x: Tensor, r: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        return _split_gru(self.gru, x, r)


class UpsamplingBlock(nn.Module):
    def __init__(self, in_channels: int, skip_channels: int, src_channels: int, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.conv = nn.Sequential(*_conv_bn_relu(in_channels + skip_channels + src_channels, out_channels))
        self.gru = ConvGRU(out_channels // 2)

    def _merge(self, x: Tensor, f: Tensor, s: Tensor) -> list[Tensor]:
        # Upsampling an odd size overshoots by one pixel: crop to the skip's size.
        x = self.upsample(x)[:, :, : s.size(2), : s.size(3)]
        return [self.conv(torch.cat([x, f, s], dim=1))]

    def forward(self, x: Tensor, f: Tensor, s: Tensor, r: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        x = per_frame(self._merge, x, f, s)[0]
        return _split_gru(self.gru, x, r)


class OutputBlock(nn.Module):
    def __init__(self, in_channels: int, src_channels: int, out_channels: int) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.conv = nn.Sequential(
            *_conv_bn_relu(in_channels + src_channels, out_channels),
            *_conv_bn_relu(out_channels, out_channels),
        )

    def _merge(self, x: Tensor, s: Tensor) -> list[Tensor]:
        x = self.upsample(x)[:, :, : s.size(2), : s.size(3)]
        return [self.conv(torch.cat([x, s], dim=1))]

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        return per_frame(self._merge, x, s)[0]


class AvgPool(nn.Module):
    """The source image at 1/2, 1/4 and 1/8, fed to the decoder beside the encoder features."""

    def __init__(self) -> None:
        super().__init__()
        self.avgpool = nn.AvgPool2d(2, 2, count_include_pad=False, ceil_mode=True)

    def _pyramid(self, s0: Tensor) -> list[Tensor]:
        s1 = self.avgpool(s0)
        s2 = self.avgpool(s1)
        return [s1, s2, self.avgpool(s2)]

    def forward(self, s0: Tensor) -> list[Tensor]:
        return per_frame(self._pyramid, s0)


class RecurrentDecoder(nn.Module):
    def __init__(self, feature_channels: list[int], decoder_channels: list[int]) -> None:
        super().__init__()
        self.avgpool = AvgPool()
        self.decode4 = BottleneckBlock(feature_channels[3])
        self.decode3 = UpsamplingBlock(feature_channels[3], feature_channels[2], 3, decoder_channels[0])
        self.decode2 = UpsamplingBlock(decoder_channels[0], feature_channels[1], 3, decoder_channels[1])
        self.decode1 = UpsamplingBlock(decoder_channels[1], feature_channels[0], 3, decoder_channels[2])
        self.decode0 = OutputBlock(decoder_channels[2], 3, decoder_channels[3])

    def forward(
        self,
        s0: Tensor,
        f1: Tensor,
        f2: Tensor,
        f3: Tensor,
        f4: Tensor,
        r1: Optional[Tensor],
        r2: Optional[Tensor],
        r3: Optional[Tensor],
        r4: Optional[Tensor],
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        s1, s2, s3 = self.avgpool(s0)
        x4, r4 = self.decode4(f4, r4)
        x3, r3 = self.decode3(x4, f3, s3, r3)
        x2, r2 = self.decode2(x3, f2, s2, r2)
        x1, r1 = self.decode1(x2, f1, s1, r1)
        return self.decode0(x1, s0), r1, r2, r3, r4
