"""``MattingNetwork``: RVM wired from its blocks, with the official call contract.

``fgr, pha, *rec = model(src, *rec, downsample_ratio)`` where ``src`` is RGB in 0..1 shaped
``[B,3,H,W]`` or ``[B,T,3,H,W]`` and ``rec`` starts as four ``None``. Parameter names follow the
official checkpoints so an official ``.pth`` loads as it is.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import FrameInputError, WeightsError
from .network.decoder import RecurrentDecoder
from .network.deep_guided_filter import DeepGuidedFilterRefiner
from .network.fast_guided_filter import FastGuidedFilterRefiner
from .network.lraspp import LRASPP
from .network.mobilenetv3 import MobileNetV3LargeEncoder
from .network.resnet import ResNet50Encoder

VARIANTS = ("mobilenetv3", "resnet50")
REFINERS = ("deep_guided_filter", "fast_guided_filter")
# The official rule of thumb: the network sees at most 512 px on the longer side.
AUTO_DOWNSAMPLE_LONG_SIDE = 512


def auto_downsample_ratio(height: int, width: int) -> float:
    """The official automatic ratio: the longer side becomes at most 512 px (never upsampled)."""
    return min(AUTO_DOWNSAMPLE_LONG_SIDE / max(height, width), 1.0)


class Projection(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 5:
            return self.conv(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        return self.conv(x)


class MattingNetwork(nn.Module):
    def __init__(self, variant: str = "mobilenetv3", refiner: str = "deep_guided_filter") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise WeightsError(f"unknown RVM variant {variant!r}: choose one of {', '.join(VARIANTS)}")
        if refiner not in REFINERS:
            raise WeightsError(f"unknown refiner {refiner!r}: choose one of {', '.join(REFINERS)}")
        self.variant = variant
        self.refiner_name = refiner
        self.backbone: nn.Module
        if variant == "mobilenetv3":
            self.backbone = MobileNetV3LargeEncoder()
            self.aspp = LRASPP(960, 128)
            self.decoder = RecurrentDecoder([16, 24, 40, 128], [80, 40, 32, 16])
        else:
            self.backbone = ResNet50Encoder()
            self.aspp = LRASPP(2048, 256)
            self.decoder = RecurrentDecoder([64, 256, 512, 256], [128, 64, 32, 16])
        self.project_mat = Projection(16, 4)
        self.project_seg = Projection(16, 1)
        self.refiner: nn.Module
        if refiner == "deep_guided_filter":
            self.refiner = DeepGuidedFilterRefiner()
        else:
            self.refiner = FastGuidedFilterRefiner()

    def forward(
        self,
        src: Tensor,
        r1: Optional[Tensor] = None,
        r2: Optional[Tensor] = None,
        r3: Optional[Tensor] = None,
        r4: Optional[Tensor] = None,
        downsample_ratio: float = 1,
        segmentation_pass: bool = False,
    ) -> list[Tensor]:
        """Matte one frame or a series of frames; returns ``[fgr, pha, r1, r2, r3, r4]``.

        With ``segmentation_pass`` it returns ``[seg, r1, r2, r3, r4]`` (the training-time
        segmentation logits). Values outside 0..1 are clamped; NaN or Inf, a wrong shape, an
        empty batch or a ratio that shrinks the frame to nothing raise ``FrameInputError``.
        """
        src = check_source(src, downsample_ratio)
        return self.matte(src, r1, r2, r3, r4, downsample_ratio, segmentation_pass)

    def matte(
        self,
        src: Tensor,
        r1: Optional[Tensor],
        r2: Optional[Tensor],
        r3: Optional[Tensor],
        r4: Optional[Tensor],
        downsample_ratio: float,
        segmentation_pass: bool = False,
    ) -> list[Tensor]:
        """``forward`` without the input checks and clamp: for a caller that made them (the ONNX
        export, whose backends clamp the frame in place on their own copy)."""
        src_sm = _resize(src, downsample_ratio) if downsample_ratio != 1 else src
        # A model cast to a reduced precision given a float32 frame runs the network in its own
        # precision and the refiner's full-size step in float32: at full size bfloat16 is slower
        # than float32 on CPUs (no vector bilinear resize in it), and the plate is float32 anyway.
        src_sm = src_sm.to(self.project_mat.conv.weight.dtype)
        f1, f2, f3, f4 = self.backbone(src_sm)
        f4 = self.aspp(f4)
        hid, *rec = self.decoder(src_sm, f1, f2, f3, f4, r1, r2, r3, r4)
        if segmentation_pass:
            return [self.project_seg(hid), *rec]
        fgr_residual, pha = self.project_mat(hid).split([3, 1], dim=-3)
        if downsample_ratio != 1:
            # The refiner makes the final fgr and pha at full size (the residual added and both
            # clamped in its own passes). At full resolution there is nothing to refine: the
            # official model skips it.
            fgr, pha = self.refiner(src, src_sm, fgr_residual, pha, hid)
            return [fgr, pha, *rec]
        fgr = (fgr_residual + src).clamp(0.0, 1.0)
        return [fgr, pha.to(fgr.dtype).clamp(0.0, 1.0), *rec]  # both in the frame's precision, as refined ones are


def _resize(x: Tensor, scale: float) -> Tensor:
    def down(t: Tensor) -> Tensor:
        return F.interpolate(t, scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=False)

    if x.ndim == 5:
        return down(x.flatten(0, 1)).unflatten(0, x.shape[:2])
    return down(x)


def check_source(src: Tensor, downsample_ratio: float, clamp: bool = True) -> Tensor:
    """Validate a source batch; return it clamped to 0..1 (as it is with ``clamp=False``).

    Raises ``FrameInputError`` naming what is wrong and what the network expects.
    """
    if not isinstance(src, Tensor):
        raise FrameInputError(f"src must be a torch.Tensor, got {type(src).__name__}")
    if src.ndim not in (4, 5) or src.shape[-3] != 3:
        raise FrameInputError(
            f"src has shape {tuple(src.shape)}; RVM expects RGB frames shaped [B,3,H,W] or [B,T,3,H,W] "
            "(drop alpha or add colour channels before matting)"
        )
    if src.numel() == 0:
        raise FrameInputError(f"src has shape {tuple(src.shape)}: an empty batch has nothing to matte")
    if not src.is_floating_point():
        raise FrameInputError(f"src has dtype {src.dtype}; convert to float and scale to 0..1 first")
    if not 0 < downsample_ratio <= 1:
        raise FrameInputError(f"downsample_ratio {downsample_ratio} must be in (0, 1]")
    height, width = src.shape[-2:]
    if int(height * downsample_ratio) < 1 or int(width * downsample_ratio) < 1:
        raise FrameInputError(
            f"downsample_ratio {downsample_ratio} shrinks a {width}x{height} frame to nothing; use a larger ratio"
        )
    if not _all_finite(src):
        raise FrameInputError("src contains NaN or Inf; make the plate safe (the engine's colour step does) first")
    return src.clamp(0.0, 1.0) if clamp else src


def _all_finite(src: Tensor) -> bool:
    """True when no value is NaN or Inf. Min and max carry any NaN and show any Inf; on a CPU
    numpy finds them 20x faster than ``torch.isfinite(src).all()`` (4 ms against 84 ms for a
    1080p frame on 2 cores)."""
    if src.device.type == "cpu":
        values = src.detach().numpy()
        return bool(np.isfinite(values.min()) and np.isfinite(values.max()))
    low, high = torch.aminmax(src.detach())
    return bool(torch.isfinite(low) and torch.isfinite(high))
