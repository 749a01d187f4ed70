"""The network alone on a GPU: our engine against the official speed test's way, side by side.

The official `inference_speed_test.py` casts the model to the precision, freezes it as TorchScript
and times a loop over one random frame already on the GPU, synchronising after each frame. Our
network cannot be scripted (a helper takes a variable number of tensors), so the baseline here
traces it instead and freezes the trace: the same frozen graph for that one frame size and ratio.
Ours is `MattingSession.run_tensor` on the same frame: captured CUDA graphs (rvm_engine.cuda_step)
in the session's precision, the recurrent state kept on the GPU.

Per size (1920x1080 at 0.25, 3840x2160 at 0.125) and precision (float32, float16) it prints
frames/s of both and ours / official (the issue's goal: at least 2), and how far float16 alpha
is from float32 (goal: within 5e-3) over real frames of the sample shot.

    .venv/bin/python bench/bench_gpu_model.py                    # on a CUDA host
    .venv/bin/python bench/bench_gpu_model.py --device cpu --small --frames 3   # a smoke run here
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402


def _rate(step, frames: int, warmup: int, sync) -> float:
    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(frames):
        step()
        sync()  # as the official loop: every frame finished before the next
    return frames / (time.perf_counter() - start)


def _official(model, src: torch.Tensor, ratio: float, dtype: torch.dtype):
    """The official speed test's model: cast, frozen TorchScript (traced here), its states fed back."""

    class Step(torch.nn.Module):
        def __init__(self, net) -> None:
            super().__init__()
            self.net = net

        def forward(self, x, r1, r2, r3, r4):
            return self.net.matte(x, r1, r2, r3, r4, ratio)

    import copy

    net = copy.deepcopy(model).to(dtype).eval()
    with torch.inference_mode():
        _, _, *rec = net.matte(src.to(dtype), None, None, None, None, ratio)
    with torch.no_grad():
        frozen = torch.jit.freeze(torch.jit.trace(Step(net).eval(), (src.to(dtype), *rec)))
    state = {"rec": rec}
    x = src.to(dtype)

    def step() -> None:
        with torch.no_grad():
            _, _, *state["rec"] = frozen(x, *state["rec"])
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=200, help="timed frames per measurement")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--small", action="store_true", help="256x256 and 512x512 frames (a smoke run)")
    parser.add_argument("--variant", default="mobilenetv3")
    args = parser.parse_args()

    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from machine import describe_machine

    from rvm_engine import cuda_step
    from rvm_engine.sample import sample_frames
    from rvm_engine.session import MattingSession
    from rvm_engine.weights import load_model

    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True  # as the official test
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sizes = [(256, 256, 0.5), (512, 512, 0.25)] if args.small else [(1920, 1080, 0.25), (3840, 2160, 0.125)]
    precisions = ["float32", "float16"] if device.type == "cuda" else ["float32"]
    print(describe_machine())
    print(f"torch {torch.__version__}, device {device}, {args.variant}, {args.frames} timed frames after "
          f"{args.warmup}, CUDA graphs {'on' if cuda_step.graphs_enabled(device) else 'off'}")
    model = load_model(args.variant, device=device)
    for width, height, ratio in sizes:
        clip = sample_frames(count=8, width=width, height=height, step=6)
        frames = torch.from_numpy(clip).permute(0, 3, 1, 2).contiguous().to(device)
        src = frames[:1]
        alphas: dict[str, list[np.ndarray]] = {}
        for precision in precisions:
            dtype = getattr(torch, precision)
            official = _rate(_official(model, src, ratio, dtype), args.frames, args.warmup, sync)
            session = MattingSession(model, device=device, precision=precision, downsample_ratio=ratio)
            ours = _rate(lambda s=session, x=src: s.run_tensor(x), args.frames, args.warmup, sync)
            print(f"{width}x{height} r{ratio} {precision:8s}  official way (frozen TorchScript) {official:8.1f} fps"
                  f"   ours {ours:8.1f} fps   ours / official {ours / official:5.2f}")
            fresh = MattingSession(model, device=device, precision=precision, downsample_ratio=ratio)
            alphas[precision] = [fresh.run_tensor(f[None])[1].float().cpu().numpy() for f in frames]
        if "float16" in alphas:
            diff = np.abs(np.stack(alphas["float16"]) - np.stack(alphas["float32"]))
            print(f"{width}x{height} float16 alpha vs float32 over {len(frames)} frames: max {diff.max():.2e}, "
                  f"mean {diff.mean():.2e}, 99.9th percentile {np.percentile(diff, 99.9):.2e} (goal 5e-3)")


if __name__ == "__main__":
    main()
