"""MobileNetV3-Large encoder, dilated in its last stage (output stride 16).

It is torchvision's ``MobileNetV3`` so that parameter names match the official checkpoint
(``backbone.features.N...``); the classifier head is dropped and four feature maps are
returned, at 1/2, 1/4, 1/8 and 1/16 of the input.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.models.mobilenetv3 import InvertedResidualConfig, MobileNetV3

from .frames import per_frame

# (in, kernel, expanded, out, squeeze-excite, activation, stride, dilation): the
# large configuration with the last stage dilated instead of strided.
_BLOCKS = [
    (16, 3, 16, 16, False, "RE", 1, 1),
    (16, 3, 64, 24, False, "RE", 2, 1),
    (24, 3, 72, 24, False, "RE", 1, 1),
    (24, 5, 72, 40, True, "RE", 2, 1),
    (40, 5, 120, 40, True, "RE", 1, 1),
    (40, 5, 120, 40, True, "RE", 1, 1),
    (40, 3, 240, 80, False, "HS", 2, 1),
    (80, 3, 200, 80, False, "HS", 1, 1),
    (80, 3, 184, 80, False, "HS", 1, 1),
    (80, 3, 184, 80, False, "HS", 1, 1),
    (80, 3, 480, 112, True, "HS", 1, 1),
    (112, 3, 672, 112, True, "HS", 1, 1),
    (112, 5, 672, 160, True, "HS", 2, 2),
    (160, 5, 960, 160, True, "HS", 1, 2),
    (160, 5, 960, 160, True, "HS", 1, 2),
]
# Indices into ``features`` after which a skip feature is taken.
_TAPS = (1, 3, 6, 16)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class MobileNetV3LargeEncoder(MobileNetV3):
    def __init__(self) -> None:
        settings = [InvertedResidualConfig(*cfg, width_mult=1.0) for cfg in _BLOCKS]
        super().__init__(inverted_residual_setting=settings, last_channel=1280)
        del self.avgpool
        del self.classifier
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def _encode(self, x: Tensor) -> list[Tensor]:
        x = (x - self.mean) / self.std  # ImageNet normalisation, as the backbone was trained
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                taps.append(x)
        return taps

    def forward(self, x: Tensor) -> list[Tensor]:  # type: ignore[override]
        return per_frame(self._encode, x)
