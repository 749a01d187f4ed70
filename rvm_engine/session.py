"""A matting session: one clip's recurrent state and where in the clip it stands.

RVM's matte for frame N depends on the frames before it through four recurrent states. A
session owns them, with the device, precision and downsample ratio they were made with, and
the frame number they belong to. The batch renderer and the bridge server hold one per clip.
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import Tensor

from . import backends, cuda_step
from .errors import FrameInputError
from .model import MattingNetwork, check_source
from .ratio_guidance import check_framing, guided_ratio

PRECISIONS = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class MattingSession:
    """One clip's matting state.

    ``downsample_ratio=None`` picks the automatic ratio from the first frame's size and the
    ``framing`` (portrait or full-body, the official table's columns; see ``ratio_guidance``)
    and keeps it for the clip (the recurrent state only fits frames of one size and ratio).
    ``downsample_ratio`` then holds the ratio actually used.

    ``backend`` is ``torch``, ``onnxruntime``, ``openvino`` or ``auto`` (see ``backends``);
    ``backend`` then holds the one that runs. With ONNX Runtime or OpenVINO the state is numpy
    arrays between frames.
    """

    def __init__(
        self,
        model: MattingNetwork,
        *,
        device: Union[str, torch.device, None] = None,
        precision: str = "float32",
        downsample_ratio: Optional[float] = None,
        framing: str = "portrait",
        backend: str = "torch",
    ) -> None:
        if precision not in PRECISIONS:
            raise FrameInputError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        if downsample_ratio is not None and not 0 < downsample_ratio <= 1:
            raise FrameInputError(f"downsample_ratio {downsample_ratio} must be in (0, 1], or None for automatic")
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        if precision == "float16" and self.device.type == "cpu":
            raise FrameInputError("precision float16 needs a CUDA device; use float32 (or bfloat16) on the CPU")
        precision = backends.effective_precision(precision, self.device)
        self.backend = backends.resolve_backend(backend, self.device, precision)
        self.dtype = PRECISIONS[precision]
        self.framing = check_framing(framing)
        self.model = model
        self.precision = precision
        self.requested_ratio = downsample_ratio
        self.downsample_ratio: Optional[float] = downsample_ratio
        self.frame: Optional[int] = None
        self.frames_run = 0
        self._size: Optional[tuple[int, int]] = None
        self._rec: list[Any] = [None] * 4  # tensors (torch) or numpy arrays (other backends)
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
        twin._rec = [None if r is None else r.copy() if isinstance(r, np.ndarray) else r.clone() for r in self._rec]
        twin._staging = None
        return twin

    @property
    def is_cold(self) -> bool:
        return self._rec[0] is None

    def state_nbytes(self) -> int:
        """Bytes held by the recurrent state (on its device)."""
        return sum(int(r.nbytes) if isinstance(r, np.ndarray) else r.numel() * r.element_size()
                   for r in self._rec if r is not None)

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
        if self.backend != "torch":
            if src.ndim in (4, 5) and src.shape[0] != 1:
                raise FrameInputError(f"src has a batch of {src.shape[0]}; the {self.backend} backend mattes one clip: "
                                      "[1,3,H,W] or [1,T,3,H,W]")
            frames = src.detach().to("cpu", torch.float32).reshape(-1, *src.shape[-3:]).numpy()
            fgr, pha = (torch.from_numpy(out) for out in self._run_frames(frames, ratio))
            self.frame = frame
            return fgr.reshape(*src.shape[:-3], *fgr.shape[1:]), pha.reshape(*src.shape[:-3], *pha.shape[1:])
        src = src.to(self.device, torch.float32, non_blocking=True)
        if src.shape[0] == 1 and cuda_step.graphs_enabled(self.device):
            return self._run_static(src, ratio, frame)
        # Reduced precision through autocast: the shared model keeps its float32 weights.
        reduced = self.dtype != torch.float32
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.dtype, enabled=reduced):
            fgr, pha, *rec = self.model(src, *self._rec, downsample_ratio=ratio)
        self._rec = list(rec)
        self.frames_run += src.shape[1] if src.ndim == 5 else src.shape[0]
        self.frame = frame
        return fgr, pha

    def _run_static(self, src: Tensor, ratio: float, frame: Optional[int]) -> tuple[Tensor, Tensor]:
        """``run_tensor`` for one clip on CUDA: each frame through the shared captured step
        (``cuda_step``) in the session's precision."""
        src = check_source(src, ratio)
        height, width = int(src.shape[-2]), int(src.shape[-1])
        step = cuda_step.step_for(self.model, height, width, ratio, self.dtype, self.device)
        fgrs, phas = [], []
        for one in src.reshape(-1, 3, height, width):
            fgr, pha, self._rec = step.run(one[None], self._rec)
            fgrs.append(fgr)
            phas.append(pha)
            self.frames_run += 1
        self.frame = frame
        lead = src.shape[:-3]
        return torch.cat(fgrs).reshape(*lead, *fgrs[0].shape[1:]), torch.cat(phas).reshape(*lead, *phas[0].shape[1:])

    def _run_frames(self, frames: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
        """``frames`` ``[N,3,H,W]`` float32 (one clip's, in order; any strides) through the session's
        ONNX Runtime or OpenVINO step; returns ``fgr [N,3,H,W]`` and ``pha [N,1,H,W]``. Numpy
        throughout: on a busy CPU torch's thread pool made each copy and check between frames
        several times slower."""
        # The torch model's checks (shape, finite values, ratio), then its clamp to 0..1 made in
        # the one pass that copies the frames into the contiguous NCHW the runtimes take.
        check_source(torch.from_numpy(frames), ratio, clamp=False)
        frames = np.clip(frames, 0.0, 1.0, out=np.empty(frames.shape, np.float32))
        height, width = frames.shape[-2:]
        step = backends.frame_step(self.model, self.backend, self.precision, height, width, ratio)
        if self._rec[0] is None:
            self._rec = backends.cold_states(self.model, height, width, ratio)
        fgrs, phas = [], []
        for frame in frames:
            fgr, pha, self._rec = step.run(frame[None], self._rec)
            fgrs.append(fgr)
            phas.append(pha)
            self.frames_run += 1
        if len(fgrs) == 1:
            return fgrs[0], phas[0]
        return np.concatenate(fgrs), np.concatenate(phas)

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
        if self.backend != "torch":
            ratio = self._prepare(int(frames.shape[1]), int(frames.shape[2]))
            fgr_nchw, pha_nchw = self._run_frames(np.asarray(frames, np.float32).transpose(0, 3, 1, 2), ratio)
            self.frame = last_frame
            return np.ascontiguousarray(fgr_nchw.transpose(0, 2, 3, 1)), np.ascontiguousarray(pha_nchw[:, 0])
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
