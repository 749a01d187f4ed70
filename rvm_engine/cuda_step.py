"""One network step replayed as a CUDA graph: RVM's few hundred small kernels in one launch.

At 1920x1080 (ratio 0.25) a frame is some 300 kernels of a few microseconds each; launched one
by one from Python the GPU waits on the CPU between them, which is why the plain model ran at
13 ms a frame on an H100, slower than the official figure on a GTX 1080 Ti. A CUDA graph
records the step once per frame size, ratio and precision and then replays it with one call.

The graph reads fixed buffers: the frame and the four recurrent states are copied in before a
replay and the outputs copied out after it, so clips share one graph and each keeps its own
state. A cold clip starts from zero states, which is what the network makes of ``None``.
Float16 and bfloat16 run a copy of the model cast to that type (as the official speed test
does), not autocast, whose casts cost more than they save at batch 1.

The first replay of every graph is checked against the same step run eagerly; a graph that
disagrees (beyond ``GRAPH_TOLERANCE``) is dropped and that shape runs eagerly, with a warning.
"""

from __future__ import annotations

import collections
import copy
import logging
import os
import threading
import weakref
from typing import Any, Optional

import torch
from torch import Tensor

from .export import state_shapes
from .model import MattingNetwork

log = logging.getLogger(__name__)

#: Graphs kept per model; each holds its own activation memory (a few hundred MB at 4K).
MAX_GRAPHS = 4
#: Largest difference allowed between a graph's first replay and the eager step on the same input.
GRAPH_TOLERANCE = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 2e-2}
#: ``RVM_BRIDGE_CUDA_GRAPHS=0`` turns graphs off (every frame runs eagerly).
ENV_SWITCH = "RVM_BRIDGE_CUDA_GRAPHS"


def graphs_enabled(device: torch.device) -> bool:
    """Whether frames on ``device`` go through captured graphs."""
    return device.type == "cuda" and os.environ.get(ENV_SWITCH, "1") != "0"


class StaticStep:
    """The network for one frame size, ratio and precision over fixed buffers.

    ``capture=True`` (CUDA only) records the step as a graph; without it the same buffers run
    eagerly, which is how the CPU tests check the buffer handling the graph relies on.
    """

    def __init__(self, model: MattingNetwork, height: int, width: int, ratio: float, dtype: torch.dtype,
                 device: torch.device, *, capture: bool) -> None:
        self.model, self.ratio, self.dtype = model, ratio, dtype
        self.shape = (1, 3, height, width)
        self.lock = threading.Lock()
        with torch.inference_mode():
            self.src = torch.zeros(self.shape, dtype=dtype, device=device)
            self.states = [torch.zeros(s, dtype=dtype, device=device) for s in state_shapes(model, height, width, ratio)]
        self.graph: Optional[Any] = None
        self.checked = not capture
        self._outputs: list[Tensor] = []
        if capture:
            try:
                self._capture()
            except RuntimeError as exc:  # a kernel that cannot be captured: run this shape eagerly
                log.warning("could not capture a CUDA graph for %dx%d frames at ratio %s (%s); running eagerly",
                            width, height, ratio, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                self.graph, self.checked = None, True

    def _forward(self) -> list[Tensor]:
        r1, r2, r3, r4 = self.states
        return self.model.matte(self.src, r1, r2, r3, r4, self.ratio)

    def _capture(self) -> None:
        with torch.inference_mode():
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):  # cuDNN picks its algorithms and the allocator settles first
                    self._forward()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._outputs = self._forward()
        self.graph = graph

    def run(self, src: Tensor, rec: list[Optional[Tensor]]) -> tuple[Tensor, Tensor, list[Tensor]]:
        """``src`` ``[1,3,H,W]`` (checked and clamped by the caller) and the clip's states
        (``None`` when cold) -> ``fgr``, ``pha`` and the new states, each the caller's own."""
        with self.lock, torch.inference_mode():
            self.src.copy_(src)
            for buffer, state in zip(self.states, rec):
                if state is None:
                    buffer.zero_()
                else:
                    buffer.copy_(state)
            if self.graph is None:
                outputs = self._forward()
            else:
                if not self.checked:
                    eager = [t.clone() for t in self._forward()]
                self.graph.replay()
                outputs = self._outputs
                if not self.checked:
                    self._check(eager)
                    if self.graph is None:
                        outputs = eager
            fgr, pha, *new = [t.clone() for t in outputs]
        return fgr, pha, new

    def _check(self, eager: list[Tensor]) -> None:
        self.checked = True
        worst = max(float((a.float() - b.float()).abs().max()) for a, b in zip(eager, self._outputs))
        if worst > GRAPH_TOLERANCE.get(self.dtype, 1e-4):
            log.warning("CUDA graph for %s frames at ratio %s differs from the eager step by %.3g; "
                        "running that size eagerly", "x".join(map(str, self.shape[2:][::-1])), self.ratio, worst)
            self.graph = None
            self._outputs = []


class _ModelSteps:
    """Graphs and reduced-precision copies of one model, least recently used dropped first."""

    def __init__(self) -> None:
        self.steps: collections.OrderedDict[tuple[Any, ...], StaticStep] = collections.OrderedDict()
        self.casts: dict[torch.dtype, MattingNetwork] = {}


_by_model: weakref.WeakKeyDictionary[MattingNetwork, _ModelSteps] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def model_in(model: MattingNetwork, dtype: torch.dtype) -> MattingNetwork:
    """``model`` itself for float32, else a copy of it cast to ``dtype`` (made once, kept: weights
    changed in place on ``model`` afterwards do not reach it; load a new model instead)."""
    if dtype == torch.float32:
        return model
    with _lock:
        held = _by_model.setdefault(model, _ModelSteps())
        if dtype not in held.casts:
            held.casts[dtype] = copy.deepcopy(model).to(dtype).eval()
        return held.casts[dtype]


def step_for(model: MattingNetwork, height: int, width: int, ratio: float, dtype: torch.dtype,
             device: torch.device, *, capture: Optional[bool] = None) -> StaticStep:
    """The shared step for this model, frame size, ratio and precision (built on first use)."""
    if capture is None:
        capture = graphs_enabled(device) and device.type == "cuda"

    net = model_in(model, dtype)
    key = (height, width, ratio, dtype, str(device), capture)
    with _lock:
        held = _by_model.setdefault(model, _ModelSteps())
        step = held.steps.get(key)
        if step is not None:
            held.steps.move_to_end(key)
            return step
    step = StaticStep(net, height, width, ratio, dtype, device, capture=capture)
    with _lock:
        held.steps[key] = step
        while len(held.steps) > MAX_GRAPHS:
            held.steps.popitem(last=False)
    return step
