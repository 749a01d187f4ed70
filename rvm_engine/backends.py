"""CPU backends: the same network step run by ONNX Runtime or OpenVINO instead of torch.

A backend runs one frame: ``src [1,3,H,W]`` and four recurrent states in, ``fgr``, ``pha`` and
four states out, all numpy float32, on an export of *our* model with *our* weights
(``export.py``), so its results equal torch's within float rounding (the parity tests bound
them at 1e-4). ``MattingSession`` holds the states between frames and picks the backend.

``auto`` is a fixed preference, from bench/bench_backends.py on the 2-core development CPU
(docs/engine.md, "CPU backends"): for float32 ONNX Runtime, then OpenVINO, then torch; for
bfloat16 OpenVINO, then torch; the first one installed. CUDA always runs torch.

Precision ``bfloat16`` on the CPU: OpenVINO's inference precision hint (its own bf16 kernels,
float32 weights and state at the edges), or torch on a bfloat16 copy of the model (the coarse
network in bfloat16, the refiner's full-size step in float32). ONNX Runtime has no bfloat16
CPU path and refuses it. On a CPU without bf16 instructions (``avx512_bf16``, AMX) both would
emulate it, slower than float32, so the session warns and runs float32 instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
import warnings
import weakref
from collections import OrderedDict
from typing import Any, Iterator, Optional, Protocol

import numpy as np
import torch

from .errors import FrameInputError
from .export import OUTPUTS, STATE_INPUTS, exported_graph, state_shapes
from .model import MattingNetwork

BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
AUTO_PREFERENCE = {"float32": ("onnxruntime", "openvino", "torch"), "bfloat16": ("openvino", "torch")}
PIP_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


class BackendError(FrameInputError):
    """A backend or precision that cannot run here (not installed, not on this device)."""


class Scratch:
    """Full-size float32 arrays a step's callers reuse between frames (the clamped frame, the
    foreground's planes before they are interleaved), one idle array per role and shape.

    Fresh memory is paid for on first touch, a page fault a page: on the development VMs filling
    a new 4K frame cost 44-175 ms against 12 ms for the same copy into a reused one. A caller
    borrows, and gives back when done; a second caller at the same time gets a new array, and
    only one goes back; past ``MAX_IDLE`` the longest unused goes. Held as long as the step is
    built (``MAX_ENGINES`` shapes at most): a frame's clamped copy and foreground planes, about
    200 MB for a 4K shape, 50 MB at 1080p (more while batches of several clips run).
    """

    MAX_IDLE = 4

    def __init__(self) -> None:
        self._idle: OrderedDict[tuple[str, tuple[int, ...]], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def borrow(self, role: str, shape: tuple[int, ...]) -> Iterator[np.ndarray]:
        key = (role, tuple(int(n) for n in shape))
        with self._lock:
            array = self._idle.pop(key, None)
        if array is None:
            array = np.empty(key[1], np.float32)
        try:
            yield array
        finally:
            with self._lock:
                if key not in self._idle:
                    self._idle[key] = array
                    while len(self._idle) > self.MAX_IDLE:  # the longest unused goes: new shapes reuse too
                        self._idle.popitem(last=False)


class FrameStep(Protocol):
    scratch: Scratch

    def run(self, src: np.ndarray, states: list[np.ndarray],
            fgr: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """``src [B,3,H,W]`` (contiguous, clamped) and the states in; ``fgr``, ``pha``, the states
        out. With ``fgr`` given the foreground is written into it (and it is returned)."""
        ...


def is_installed(backend: str) -> bool:
    return backend == "torch" or importlib.util.find_spec(backend) is not None


def cpu_has_bf16() -> bool:
    """True when the CPU has bfloat16 instructions (``avx512_bf16`` or AMX), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    except OSError:
        return False
    return any(flag in flags for flag in BF16_FLAGS)


def resolve_backend(backend: str, device: torch.device, precision: str, refiner: str = "deep_guided_filter") -> str:
    """The backend that will run: ``auto`` resolved, an unusable choice refused with ``BackendError``.

    bfloat16 with the fast guided filter runs in torch: the filter divides by a window's variance
    plus 1e-5, which OpenVINO computes in bfloat16 and rounds to noise (alpha off by up to 1.0 on
    whole pixels); torch computes the filter in float32 (``FastGuidedFilterRefiner``)."""
    if backend not in BACKENDS:
        raise BackendError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if device.type != "cpu":
        if backend not in ("auto", "torch"):
            raise BackendError(f"the {backend} backend runs on the CPU; on {device.type} the engine runs torch "
                               "(use --backend torch or auto)")
        return "torch"
    fragile = precision == "bfloat16" and refiner == "fast_guided_filter"
    if backend == "auto":
        return "torch" if fragile else next(c for c in AUTO_PREFERENCE[precision] if is_installed(c))
    if backend == "openvino" and fragile:
        raise BackendError("OpenVINO runs the fast guided filter in bfloat16, which turns whole pixels to garbage: "
                           "use --backend torch (its filter runs in float32) or --precision float32, or the deep "
                           "guided filter")
    if not is_installed(backend):
        raise BackendError(f"the {backend} backend needs the {PIP_PACKAGES[backend]} package: "
                           f"pip install {PIP_PACKAGES[backend]} (or choose --backend torch)")
    if backend == "onnxruntime" and precision == "bfloat16":
        raise BackendError("ONNX Runtime has no bfloat16 CPU path; use --backend openvino or torch for bfloat16")
    return backend


def cold_states(model: MattingNetwork, height: int, width: int, downsample_ratio: float) -> list[np.ndarray]:
    """Zero recurrent states: what the network starts a clip with."""
    return [np.zeros(shape, np.float32) for shape in state_shapes(model, height, width, downsample_ratio)]


class OnnxRuntimeStep:
    def __init__(self, graph: str, threads: int) -> None:
        import onnxruntime as ort

        self.scratch = Scratch()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads sleep rather than spin: torch's threads do the frame's checks and
        # copies between runs, and spinning ORT threads slowed those tenfold on 2 cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # The NCHWc layout pass (blocked convolutions) stays on: with the refiner's full-size step
        # in fewer passes (graph version 4) it is 1.06x (4K at 0.125) and 1.18x (1080p at 0.25)
        # the graph without it; on version 3 it had made the full-size resize slower.
        self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def run(self, src: np.ndarray, states: list[np.ndarray],
            fgr: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        feed = {"src": src, **dict(zip(STATE_INPUTS, states))}
        if fgr is None:
            fgr, pha, *rec = self._session.run(None, feed)
            return fgr, pha, rec
        # The runtime writes the foreground into the caller's (reused) array and alpha into a new
        # one of ours, instead of new arrays of its own that would be copied again.
        binding = self._session.io_binding()
        for name, value in feed.items():
            binding.bind_cpu_input(name, value)
        pha = np.empty((src.shape[0], 1, *src.shape[2:]), np.float32)
        for name, array in (("fgr", fgr), ("pha", pha)):
            binding.bind_output(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
        for name in OUTPUTS[2:]:
            binding.bind_output(name, "cpu")
        self._session.run_with_iobinding(binding)
        rec = [value.numpy() for value in binding.get_outputs()[2:]]
        return fgr, pha, rec


class OpenVinoStep:
    def __init__(self, graph: str, threads: int, precision: str) -> None:
        import openvino as ov

        self.scratch = Scratch()
        core = ov.Core()
        hint = "bf16" if precision == "bfloat16" else "f32"  # say f32: on bf16 CPUs OpenVINO defaults to bf16
        network = core.read_model(graph)
        # The export leaves the batch free (for ONNX Runtime batches); OpenVINO runs one frame, on
        # static shapes, so it compiles for a batch of one.
        network.reshape({port.get_any_name(): [1, *port.get_partial_shape()[1:]] for port in network.inputs})
        self._compiled = core.compile_model(network, "CPU", {
            "INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads})
        self._outputs = [self._compiled.output(name) for name in OUTPUTS]
        self._local = threading.local()  # an infer request serves one thread at a time

    def run(self, src: np.ndarray, states: list[np.ndarray],
            fgr: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        request.infer({"src": src, **dict(zip(STATE_INPUTS, states))})
        # The request's output tensors are overwritten by its next frame: copy them out.
        if fgr is not None:
            np.copyto(fgr, request.get_tensor(self._outputs[0]).data)
        else:
            fgr = np.array(request.get_tensor(self._outputs[0]).data, copy=True)
        pha, *rec = (np.array(request.get_tensor(output).data, copy=True) for output in self._outputs[1:])
        return fgr, pha, rec


# Built engines, per model: one graph and one compiled runtime serve every clip of a shape. At
# most MAX_ENGINES shapes stay built (least recently used go): a server fed frames of many sizes
# would otherwise hold a compiled runtime for every size it ever saw.
MAX_ENGINES = 8
_engines: weakref.WeakKeyDictionary[MattingNetwork, OrderedDict[tuple[Any, ...], FrameStep]] = \
    weakref.WeakKeyDictionary()
_engines_lock = threading.Lock()


def frame_step(model: MattingNetwork, backend: str, precision: str, height: int, width: int,
               downsample_ratio: float) -> FrameStep:
    """The ``backend``'s step for frames of this size and ratio (exported and compiled once)."""
    key = (backend, precision, height, width, downsample_ratio)
    with _engines_lock:
        built = _engines.setdefault(model, OrderedDict())
        if key in built:
            built.move_to_end(key)
        else:
            graph = str(exported_graph(model, height, width, downsample_ratio))
            threads = torch.get_num_threads()
            if backend == "onnxruntime":
                built[key] = OnnxRuntimeStep(graph, threads)
            elif backend == "openvino":
                built[key] = OpenVinoStep(graph, threads, precision)
            else:
                raise BackendError(f"no frame step for backend {backend!r}")
            while len(built) > MAX_ENGINES:
                built.popitem(last=False)  # a clip still running on it keeps its own reference
        return built[key]


def effective_precision(precision: str, device: torch.device) -> str:
    """``bfloat16`` on a CPU without bf16 instructions runs as float32 (emulated bf16 is slower), with a warning."""
    if precision == "bfloat16" and device.type == "cpu" and not cpu_has_bf16():
        warnings.warn("this CPU has no bfloat16 instructions (avx512_bf16, AMX): running float32 instead",
                      RuntimeWarning, stacklevel=3)
        return "float32"
    return precision
