"""A matting session: one clip's recurrent state and where in the clip it stands.

RVM's matte for frame N depends on the frames before it through four recurrent states. A
session owns them, with the device, precision and downsample ratio they were made with, and
the frame number they belong to. The batch renderer and the bridge server hold one per clip.
"""

from __future__ import annotations

import copy
from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor

from .errors import FrameInputError
from .model import MattingNetwork
from .ratio_guidance import check_framing, guided_ratio

PRECISIONS = {"float32": torch.float32, "float16": torch.float16}


class MattingSession:
    """One clip's matting state.

    ``downsample_ratio=None`` picks the automatic ratio from the first frame's size and the
    ``framing`` (portrait or full-body, the official table's columns; see ``ratio_guidance``)
    and keeps it for the clip (the recurrent state only fits frames of one size and ratio).
    ``downsample_ratio`` then holds the ratio actually used.
    """

    def __init__(
        self,
        model: MattingNetwork,
        *,
        device: Union[str, torch.device, None] = None,
        precision: str = "float32",
        downsample_ratio: Optional[float] = None,
        framing: str = "portrait",
    ) -> None:
        if precision not in PRECISIONS:
            raise FrameInputError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        if downsample_ratio is not None and not 0 < downsample_ratio <= 1:
            raise FrameInputError(f"downsample_ratio {downsample_ratio} must be in (0, 1], or None for automatic")
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.dtype = PRECISIONS[precision]
        if self.dtype == torch.float16 and self.device.type == "cpu":
            raise FrameInputError("precision float16 needs a CUDA device; use float32 on the CPU")
        self.framing = check_framing(framing)
        self.model = model
        self.precision = precision
        self.requested_ratio = downsample_ratio
        self.downsample_ratio: Optional[float] = downsample_ratio
        self.frame: Optional[int] = None
        self.frames_run = 0
        self._size: Optional[tuple[int, int]] = None
        self._rec: list[Optional[Tensor]] = [None] * 4
        self._staging: Optional[Tensor] = None  # pinned host buffer reused for CUDA uploads

    def reset(self) -> None:
        """Forget the recurrent state: the next frame starts cold."""
        self._rec = [None] * 4
        self.frame = None
        self.frames_run = 0
        self._size = None
        self.downsample_ratio = self.requested_ratio

    def clone(self) -> MattingSession:
        """An independent copy of this session: the same model, device, precision and ratio, the
        recurrent state copied (so two chunks of a clip can each advance their own)."""
        twin = copy.copy(self)
        twin._rec = [None if r is None else r.clone() for r in self._rec]
        twin._staging = None
        return twin

    @property
    def is_cold(self) -> bool:
        return self._rec[0] is None

    def state_nbytes(self) -> int:
        """Bytes held by the recurrent state (on its device)."""
        return sum(r.numel() * r.element_size() for r in self._rec if r is not None)

    def _prepare(self, height: int, width: int) -> float:
        if self._size is not None and self._size != (height, width):
            raise FrameInputError(
                f"frame is {width}x{height} but this clip's state was built on {self._size[1]}x{self._size[0]} frames; "
                "reset the session (or open a new clip) for a plate of another size"
            )
        self._size = (height, width)
        if self.downsample_ratio is None:
            self.downsample_ratio = guided_ratio(height, width, self.framing)
        return self.downsample_ratio

    def run_tensor(self, src: Tensor, frame: Optional[int] = None) -> tuple[Tensor, Tensor]:
        """Matte ``src`` (``[B,3,H,W]`` or ``[B,T,3,H,W]``, RGB 0..1) and advance the state.

        Returns ``fgr`` and ``pha`` on the session's device in the session's precision.
        ``frame`` records the clip frame the state now belongs to (the last of a series).
        """
        ratio = self._prepare(int(src.shape[-2]), int(src.shape[-1]))
        src = src.to(self.device, torch.float32, non_blocking=True)
        # Half precision through autocast: the shared model keeps its float32 weights.
        half = self.dtype == torch.float16
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.float16, enabled=half):
            fgr, pha, *rec = self.model(src, *self._rec, downsample_ratio=ratio)
        self._rec = list(rec)
        self.frames_run += src.shape[1] if src.ndim == 5 else src.shape[0]
        self.frame = frame
        return fgr, pha

    def run(self, rgb: np.ndarray, frame: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
        """Matte one frame given as float32 ``[H,W,3]`` in the model's sRGB 0..1.

        Returns ``fgr`` float32 ``[H,W,3]`` and ``pha`` float32 ``[H,W]``.
        """
        fgr, pha = self.run_batch(rgb[None], frame)
        return fgr[0], pha[0]

    def run_batch(self, frames: np.ndarray, last_frame: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
        """Matte ``T`` consecutive frames ``[T,H,W,3]`` in one call; the state advances through all of them."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise FrameInputError(f"frames have shape {frames.shape}; expected [T,H,W,3] RGB")
        src = self._upload(np.ascontiguousarray(frames, dtype=np.float32))
        fgr, pha = self.run_tensor(src, last_frame)
        # Reorder on the device, so the copy back is one contiguous block.
        fgr_np = fgr[0].permute(0, 2, 3, 1).float().contiguous().cpu().numpy()
        pha_np = pha[0, :, 0].float().contiguous().cpu().numpy()
        return fgr_np, pha_np

    def _upload(self, frames: np.ndarray) -> Tensor:
        """``[T,H,W,3]`` host frames -> ``[1,T,3,H,W]`` contiguous on the session's device.

        Contiguous NCHW matters: a permuted view is channels-last and picks other conv kernels.
        On CUDA the frames go through a pinned buffer kept between frames (pinning anew each
        frame costs more than the copy).
        """
        host = torch.from_numpy(frames)
        if self.device.type == "cuda":
            if self._staging is None or self._staging.shape != host.shape:
                self._staging = torch.empty(host.shape, dtype=torch.float32, pin_memory=True)
            self._staging.copy_(host)
            host = self._staging.to(self.device, non_blocking=True)
        return host.permute(0, 3, 1, 2).contiguous()[None]
