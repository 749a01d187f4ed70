"""A matting session: one clip's recurrent state and where in the clip it stands.

RVM's matte for frame N depends on the frames before it through four recurrent states. A
session owns them, with the device, precision and downsample ratio they were made with, and
the frame number they belong to. The batch renderer and the bridge server hold one per clip.
``run_sessions`` runs the next frame of several clips' sessions as one batch (the bridge's
many clips on one GPU).
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from typing import Any, Hashable, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from . import backends, cuda_step
from .errors import FrameInputError
from .model import MattingNetwork, check_source
from .ratio_guidance import check_framing, guided_ratio

PRECISIONS = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Backends whose step takes a batch of clips: torch, and ONNX Runtime on our export (its batch axis
# is free). OpenVINO is compiled for one frame on static shapes.
BATCH_BACKENDS = ("torch", "onnxruntime")


def _frames_in(src: Tensor, dtype: torch.dtype) -> Tensor:
    """Frames for a model cast to ``dtype``: in that precision on CUDA (as its captured step takes
    them); float32 on the CPU, where the model then runs only its coarse network in ``dtype`` and
    the refiner's full-size step in float32 (``MattingNetwork.matte``): bfloat16 at 1080p ran
    1.33-1.44x float32 so (two runs), 1.0x all in bfloat16, and alpha moved a tenth as much."""
    return src.to(dtype) if src.device.type == "cuda" else src


def _states_in(states: list[Any], dtype: torch.dtype) -> list[Any]:
    return [None if state is None else state.to(dtype) for state in states]


def interleaved(planes: np.ndarray) -> np.ndarray:
    """``[N,C,H,W]`` -> contiguous ``[N,H,W,C]``, a plane at a time: numpy's strided copy of the
    whole transpose is 1.6x slower (24 against 15 ms a 4K frame)."""
    out = np.empty((planes.shape[0], *planes.shape[2:], planes.shape[1]), planes.dtype)
    for frame, planes_of_frame in zip(out, planes):  # 2-D copies: numpy walks [N,H,W] views slowly
        for channel, plane in enumerate(planes_of_frame):
            frame[..., channel] = plane
    return out


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
        self.backend = backends.resolve_backend(backend, self.device, precision, model.refiner_name)
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

    def batch_key(self, height: int, width: int) -> Optional[Hashable]:
        """What sessions whose next frames of ``height`` x ``width`` run as one batch share: model,
        device, precision, backend, frame size and ratio. None: this one runs alone (a backend
        without batches, or a frame of another size than its state's, which ``run`` refuses)."""
        if self.backend not in BATCH_BACKENDS or self._size not in (None, (height, width)):
            return None
        ratio = self.downsample_ratio or guided_ratio(height, width, self.framing)
        return (id(self.model), str(self.device), self.precision, self.backend, height, width, ratio)

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
        # Reduced precision runs a copy of the model cast to it (made once, kept; the shared model
        # keeps its float32 weights), as the official speed test does, not autocast, whose per-op
        # casts cost more than they save (bfloat16 at 1080p: 1.08x float32 under autocast).
        src = check_source(src, ratio)
        net = cuda_step.model_in(self.model, self.dtype)
        with torch.inference_mode():
            r1, r2, r3, r4 = _states_in(self._rec, self.dtype)
            fgr, pha, *rec = net.matte(_frames_in(src, self.dtype), r1, r2, r3, r4, ratio)
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

    def _run_frames(self, frames: np.ndarray, ratio: float,
                    interleave: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``frames`` ``[N,3,H,W]`` float32 (one clip's, in order; any strides) through the session's
        ONNX Runtime or OpenVINO step; returns ``fgr [N,3,H,W]`` and ``pha [N,1,H,W]``, or with
        ``interleave`` ``fgr [N,H,W,3]`` and ``pha [N,H,W]`` (what plates hold). Numpy
        throughout: on a busy CPU torch's thread pool made each copy and check between frames
        several times slower."""
        # The torch model's checks (shape, finite values, ratio), then its clamp to 0..1 made in
        # the one pass that copies the frames into the contiguous NCHW the runtimes take.
        if any(stride < 0 for stride in frames.strides):  # a flipped plate: torch takes no negative strides
            frames = frames.copy(order="K")
        check_source(torch.from_numpy(frames), ratio, clamp=False)
        count, _, height, width = frames.shape
        step = backends.frame_step(self.model, self.backend, self.precision, height, width, ratio)
        if self._rec[0] is None:
            self._rec = backends.cold_states(self.model, height, width, ratio)
        fgrs, phas = [], []
        # One frame's clamped copy and planes, reused frame after frame (a series of T frames
        # would otherwise keep a T-frame copy for the next call).
        planes_or_none = step.scratch.borrow("fgr", (1, 3, height, width)) if interleave else nullcontext(None)
        with step.scratch.borrow("src", (1, 3, height, width)) as clamped, planes_or_none as planes:
            for index in range(count):
                np.clip(frames[index:index + 1], 0.0, 1.0, out=clamped)
                # Interleaved results are made from planes the step writes into reused memory.
                fgr, pha, self._rec = step.run(clamped, self._rec, planes)
                fgrs.append(interleaved(fgr) if interleave else fgr)
                phas.append(pha[:, 0] if interleave else pha)
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
            fgr_hwc, pha_hw = self._run_frames(np.asarray(frames, np.float32).transpose(0, 3, 1, 2), ratio,
                                               interleave=True)
            self.frame = last_frame
            return fgr_hwc, pha_hw
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


class Matte(NamedTuple):
    """One session's frame from ``run_sessions``: as ``run`` gives it, and how many sessions' frames
    ran in its network call (1: alone)."""

    fgr: Any  # numpy [H,W,3], or a tensor [3,H,W] on the device for a tensor frame
    pha: Any  # numpy [H,W], or a tensor [H,W] on the device
    batch: int = 1


def _frame_size(frame: Any) -> Optional[tuple[int, int]]:
    """(height, width) of a numpy ``[H,W,3]`` or tensor ``[3,H,W]`` frame; None for another shape."""
    if isinstance(frame, Tensor):
        return (int(frame.shape[1]), int(frame.shape[2])) if frame.ndim == 3 and frame.shape[0] == 3 else None
    return (int(frame.shape[0]), int(frame.shape[1])) if frame.ndim == 3 and frame.shape[2] == 3 else None


def _run_alone(session: MattingSession, frame: Any, number: Optional[int]) -> Matte:
    if isinstance(frame, Tensor):
        fgr, pha = session.run_tensor(frame[None, None], number)
        return Matte(fgr[0, 0], pha[0, 0, 0])
    return Matte(*session.run(frame, number))


def run_sessions(sessions: Sequence[MattingSession], frames: Sequence[Any],
                 numbers: Sequence[Optional[int]]) -> list[Union[Matte, Exception]]:
    """Matte the next frame of each session: ``frames[i]``, float32 ``[H,W,3]`` in the model's sRGB,
    as clip frame ``numbers[i]`` (or a tensor ``[3,H,W]`` already on the session's device, made by
    torch colour: its outputs stay there as tensors). Sessions with one ``batch_key`` run as one batch: frames stacked
    on the batch axis, the four recurrent states concatenated, outputs and new states split back
    (each session's own copy). Returns a ``Matte`` per session (``fgr [H,W,3]`` and ``pha [H,W]`` as
    ``run`` gives them, and the batch size), or the exception its frame raised: when a batch fails,
    each of its sessions runs alone, so a bad frame fails only its own session.

    A frame in a batch is what it is alone within float rounding, not always bit for bit: on the
    CPU torch's first convolution picks another kernel for a batch (up to about 8e-6 on 1080p at
    0.25); ONNX Runtime on one thread gives the same bits (docs/server.md, "Many clips on one GPU").
    """
    if len({id(session) for session in sessions}) != len(sessions):
        raise ValueError("run_sessions: a session appears twice; one frame per session")
    results: dict[int, Union[Matte, Exception]] = {}
    groups: dict[Hashable, list[int]] = {}
    for index, (session, frame) in enumerate(zip(sessions, frames)):
        size = _frame_size(frame)
        key = None if size is None else session.batch_key(*size)
        groups.setdefault(("alone", index) if key is None else key, []).append(index)
    for members in groups.values():
        if len(members) > 1:
            try:
                together = _run_together([sessions[i] for i in members], [frames[i] for i in members],
                                         [numbers[i] for i in members])
            except Exception:  # noqa: BLE001 - one bad frame must not fail the others: each runs alone
                pass
            else:
                for index, matte in zip(members, together):
                    results[index] = matte
                continue
        for index in members:
            try:
                results[index] = _run_alone(sessions[index], frames[index], numbers[index])
            except Exception as error:  # noqa: BLE001 - handed back as this session's result
                results[index] = error
    return [results[index] for index in range(len(sessions))]


def _run_together(sessions: list[MattingSession], frames: list[Any],
                  numbers: list[Optional[int]]) -> list[Matte]:
    """One network call for sessions of one ``batch_key``. The recurrent states and frame numbers
    change only if it succeeds; each session's frame size and ratio are fixed first (as ``run``
    fixes them), so a failed batch run again one session at a time runs with the same ones."""
    lead = sessions[0]
    on_device = all(isinstance(frame, Tensor) for frame in frames)
    if not on_device and any(isinstance(frame, Tensor) for frame in frames):
        raise FrameInputError("a batch mixes frames on the device with frames in host memory")
    size = _frame_size(frames[0])
    assert size is not None  # run_sessions batches only frames with a size
    height, width = size
    for session in sessions:
        ratio = session._prepare(height, width)
    if on_device and lead.backend != "torch":  # a runtime beside torch colour takes host frames
        frames = [frame.permute(1, 2, 0).float().cpu().numpy() for frame in frames]
    batch = None if on_device else np.stack(frames).astype(np.float32, copy=False)  # [B,H,W,3]
    cold = [session._rec[0] is None for session in sessions]
    if lead.backend == "torch":
        if batch is None:
            src = torch.stack(frames).to(lead.device, torch.float32)[:, None]  # [B,1,3,H,W]
        else:
            src = torch.from_numpy(batch).to(lead.device).permute(0, 3, 1, 2).contiguous()[:, None]
        warm = next((s._rec for s, c in zip(sessions, cold) if not c), None)
        rec: list[Any] = [None] * 4 if warm is None else [
            torch.cat([torch.zeros_like(warm[k]) if c else s._rec[k] for s, c in zip(sessions, cold)])
            for k in range(4)]
        net = cuda_step.model_in(lead.model, lead.dtype)  # as a clip alone: the model cast to the precision
        src = check_source(src, ratio)
        with torch.inference_mode():
            r1, r2, r3, r4 = _states_in(rec, lead.dtype)
            fgr, pha, *rec = net.matte(_frames_in(src, lead.dtype), r1, r2, r3, r4, ratio)
        states: list[list[Any]] = [[r[i:i + 1].clone() for r in rec] for i in range(len(sessions))]
        if batch is None:  # tensors in, tensors out, on the device
            outputs = [(fgr[i, 0].clone(), pha[i, 0, 0].clone()) for i in range(len(sessions))]
        else:
            fgrs = fgr[:, 0].permute(0, 2, 3, 1).float().contiguous().cpu().numpy()
            phas = pha[:, 0, 0].float().contiguous().cpu().numpy()
            outputs = [(fgrs[i].copy(), phas[i].copy()) for i in range(len(sessions))]
    else:
        assert batch is not None  # frames on the device were brought to the host above
        nchw = batch.transpose(0, 3, 1, 2)
        check_source(torch.from_numpy(nchw), ratio, clamp=False)
        step = backends.frame_step(lead.model, lead.backend, lead.precision, height, width, ratio)
        zeros = backends.cold_states(lead.model, height, width, ratio)
        inputs = [np.concatenate([zeros[k] if c else s._rec[k] for s, c in zip(sessions, cold)]) for k in range(4)]
        with step.scratch.borrow("src", nchw.shape) as clamped, step.scratch.borrow("fgr", nchw.shape) as planes:
            np.clip(nchw, 0.0, 1.0, out=clamped)
            _, pha_nchw, rec_out = step.run(clamped, inputs, planes)
            fgrs = interleaved(planes)
        phas = pha_nchw[:, 0]
        states = [[r[i:i + 1].copy() for r in rec_out] for i in range(len(sessions))]
        outputs = [(fgrs[i].copy(), phas[i].copy()) for i in range(len(sessions))]
        if on_device:  # tensor frames get tensors back, as run_tensor gives them
            outputs = [(torch.from_numpy(f).permute(2, 0, 1), torch.from_numpy(p)) for f, p in outputs]
    for session, state, number in zip(sessions, states, numbers):
        session._rec, session.frame = state, number
        session.frames_run += 1
    return [Matte(fgr_i, pha_i, len(sessions)) for fgr_i, pha_i in outputs]
