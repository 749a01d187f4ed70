"""ResNet-50 encoder, dilated in its last stage (output stride 16).

torchvision's ``ResNet`` so that parameter names match the official checkpoint. Unlike the
MobileNetV3 encoder, the official ResNet-50 variant feeds the 0..1 image unnormalised.
"""

from __future__ import annotations

from torch import Tensor
from torchvision.models.resnet import Bottleneck, ResNet

from .frames import per_frame


class ResNet50Encoder(ResNet):
    def __init__(self) -> None:
        super().__init__(block=Bottleneck, layers=[3, 4, 6, 3], replace_stride_with_dilation=[False, False, True])
        del self.avgpool
        del self.fc

    def _encode(self, x: Tensor) -> list[Tensor]:
        f1 = self.relu(self.bn1(self.conv1(x)))  # 1/2
        f2 = self.layer1(self.maxpool(f1))  # 1/4
        f3 = self.layer2(f2)  # 1/8
        f4 = self.layer4(self.layer3(f3))  # 1/16
        return [f1, f2, f3, f4]

    def forward(self, x: Tensor) -> list[Tensor]:  # type: ignore[override]
        return per_frame(self._encode, x)
