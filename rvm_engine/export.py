"""Our network, with our weights, as an ONNX graph for the CPU backends (``backends.py``).

The graph takes frames already checked and clamped to 0..1 (``MattingSession`` does both).
One graph per clip shape: the downsample ratio and the frame size are fixed in it (a clip keeps
both for its whole length), so the runtimes fold the shape computations and the ratio's resize
into constants. The batch axis is left free, so the bridge can run the next frames of several
clips of one shape as one batch (each clip's states stacked on it); one frame is a batch of one.
The recurrent states are inputs and outputs, as in the official export; a cold
clip passes zeros of the state shapes (``state_shapes``), which is what the network does with
``None``. Exports are cached beside the converted weights, named by a hash of the weights, the
variant, refiner, ratio, size and opset, and written atomically (a half-written graph is never
read back).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from .model import MattingNetwork
from .weights import cache_dir

OPSET = 17
GRAPH_VERSION = 4  # in the cache key: raise it when what is exported changes (2: no input clamp; 3: free batch;
#                   4: the refiner's full-size step in fewer passes)
STATE_INPUTS = ("r1i", "r2i", "r3i", "r4i")
OUTPUTS = ("fgr", "pha", "r1o", "r2o", "r3o", "r4o")
_export_lock = threading.Lock()


class _OneFrame(nn.Module):
    """The network's step with the ratio fixed: ``src, r1..r4 -> fgr, pha, r1..r4``."""

    def __init__(self, model: MattingNetwork, downsample_ratio: float) -> None:
        super().__init__()
        self.model = model
        self.downsample_ratio = downsample_ratio

    def forward(self, src: Tensor, r1: Tensor, r2: Tensor, r3: Tensor, r4: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.model.matte(src, r1, r2, r3, r4, self.downsample_ratio))


def state_shapes(model: MattingNetwork, height: int, width: int, downsample_ratio: float) -> list[tuple[int, ...]]:
    """Shapes of the four recurrent states for one frame of ``height`` x ``width``.

    The coarse pass sees ``floor(size * ratio)``; every stride-2 stage of both encoders, and the
    decoder's pooled source pyramid, round up, so state k sits at that size halved k times
    rounding up. Channels are half each decoder block's (the GRU keeps half).
    """
    h, w = (int(height * downsample_ratio), int(width * downsample_ratio)) if downsample_ratio != 1 else (height, width)
    decoder = model.decoder
    shapes: list[tuple[int, ...]] = []
    for block in (decoder.decode1, decoder.decode2, decoder.decode3, decoder.decode4):
        h, w = (h + 1) // 2, (w + 1) // 2
        shapes.append((1, block.gru.channels, h, w))
    return shapes


def weights_digest(model: MattingNetwork) -> str:
    """sha256 of the model's parameters and buffers (names, shapes and bytes), first 16 hex digits."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def export_path(model: MattingNetwork, height: int, width: int, downsample_ratio: float) -> Path:
    name = (f"rvm_{model.variant}_{model.refiner_name}_{weights_digest(model)}_r{downsample_ratio:.6g}_"
            f"{width}x{height}_opset{OPSET}_v{GRAPH_VERSION}.onnx")
    return cache_dir() / "exports" / name


def exported_graph(model: MattingNetwork, height: int, width: int, downsample_ratio: float) -> Path:
    """The cached ONNX graph of ``model`` for frames of this size at this ratio (exported once)."""
    path = export_path(model, height, width, downsample_ratio)
    with _export_lock:
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        # A copy: the exporter puts the module it is given back in training mode afterwards,
        # which would switch the shared model's BatchNorms to batch statistics.
        step = _OneFrame(_cpu_copy(model), downsample_ratio).eval()
        src = torch.zeros(1, 3, height, width)
        states = tuple(torch.zeros(shape) for shape in state_shapes(model, height, width, downsample_ratio))
        fd, temp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            # Without the input checks and clamp (``matte``): in a trace the checks become
            # constants, and the clamp, a full-size pass, is cheaper in place on the session's copy.
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(step, (src, *states), temp, input_names=["src", *STATE_INPUTS],
                                  output_names=list(OUTPUTS), opset_version=OPSET, dynamo=False,
                                  dynamic_axes={name: {0: "batch"} for name in ("src", *STATE_INPUTS, *OUTPUTS)})
            os.replace(temp, path)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
    return path


def _cpu_copy(model: MattingNetwork) -> MattingNetwork:
    twin = MattingNetwork(model.variant, model.refiner_name)
    twin.load_state_dict({name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()})
    return twin.eval()
