"""Engine speed on the sample shot: our PyTorch MobileNetV3 against ONNX Runtime on the official export.

Both run the same frames in the same process, one after the other, so the ratio is fair.
    .venv/bin/python bench/bench_engine.py [--width 1920 --height 1080 --frames 12 --ratio 0.25]
    .venv/bin/python bench/bench_engine.py --device cuda      # adds float16 (GPU only)
"""

from __future__ import annotations

import os

# As the CLI and rvm_engine do, before torch loads: idle OpenMP threads sleep instead of spinning.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import time

import numpy as np
import torch


def _fps(fn, frames: np.ndarray, warmup: int) -> float:
    for f in frames[:warmup]:
        fn(f)
    start = time.perf_counter()
    for f in frames:
        fn(f)
    return len(frames) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--ratio", type=float, default=0.25)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    from rvm_engine.sample import sample_frames
    from rvm_engine.session import MattingSession
    from rvm_engine.weights import find_onnx_export, load_model

    frames = sample_frames(count=args.frames, width=args.width, height=args.height, step=4)
    from machine import describe_machine

    print(describe_machine())
    print(f"sample shot: {args.frames} frames {args.width}x{args.height}, downsample_ratio {args.ratio}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")
    model = load_model(device=args.device)
    results: dict[str, float] = {}

    def engine(precision: str):
        session = MattingSession(model, precision=precision, downsample_ratio=args.ratio)

        def step(f):
            session.run(f)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
        return step

    results["rvm-bridge torch float32"] = _fps(engine("float32"), frames, args.warmup)
    if args.device.startswith("cuda"):
        results["rvm-bridge torch float16"] = _fps(engine("float16"), frames, args.warmup)
        # The network alone, frames already on the GPU: what the host<->device copies cost.
        on_device = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous().to(args.device)
        for precision in ("float32", "float16"):
            session = MattingSession(model, precision=precision, downsample_ratio=args.ratio)

            def network(i, session=session):
                session.run_tensor(on_device[int(i) : int(i) + 1])
                torch.cuda.synchronize()
            results[f"network alone, frames on GPU, {precision}"] = _fps(network, np.arange(len(frames)), args.warmup)

    import onnxruntime as ort

    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    if not args.device.startswith("cuda"):
        providers = ["CPUExecutionProvider"]
    export = ort.InferenceSession(find_onnx_export(), providers=providers)
    rec = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    ratio = np.array([args.ratio], np.float32)

    def onnx_step(f):
        nonlocal rec
        src = np.ascontiguousarray(f.transpose(2, 0, 1)[None])
        out = export.run(None, {"src": src, "r1i": rec[0], "r2i": rec[1], "r3i": rec[2], "r4i": rec[3], "downsample_ratio": ratio})
        rec = out[2:]

    results[f"onnxruntime official export ({providers[0]})"] = _fps(onnx_step, frames, args.warmup)

    base = results["rvm-bridge torch float32"]
    for name, fps in results.items():
        print(f"{name:48s} {fps:7.2f} fps  {1000 / fps:8.1f} ms/frame  ratio to torch float32: {fps / base:5.2f}")
    onnx_fps = [v for k, v in results.items() if k.startswith("onnxruntime")][0]
    print(f"torch float32 / onnxruntime = {base / onnx_fps:.2f}")


if __name__ == "__main__":
    main()
