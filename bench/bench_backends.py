"""CPU backends side by side: our engine through each backend against ONNX Runtime and OpenVINO
on the official export, in one process, on the same frames, interleaved.

Every contender runs the same frames once per round, in turn, for ``--rounds`` rounds, so a
neighbour's load on a shared machine falls on all of them alike; the figures to quote are the
ratios. Our backends run through ``MattingSession`` (input checks and state handling included);
the official export runs bare, as in bench_engine.py, and so do our ONNX Runtime and OpenVINO
steps in the rows marked "step alone" (the same network work as the official rows). The row
"official export, onnxruntime, plates back" adds to the official export the work a session does
(the finite check, the clamp, the foreground interleaved again), done the plain numpy way: the
like-for-like figure for the "ours ... float32" rows.
    .venv/bin/python bench/bench_backends.py                       # 1920x1080 @ 0.25 and 3840x2160 @ 0.125
    .venv/bin/python bench/bench_backends.py --sizes 1920x1080@0.25 --frames 4 --rounds 3
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import tempfile
import time
import warnings
from typing import Callable

import numpy as np
import torch


def _session_step(model, backend: str, precision: str, ratio: float) -> Callable[[np.ndarray], None]:
    from rvm_engine.session import MattingSession

    session = MattingSession(model, backend=backend, precision=precision, downsample_ratio=ratio)
    return lambda frame: session.run(frame)


def _bare_step(model, backend: str, ratio: float, height: int, width: int) -> Callable[[np.ndarray], None]:
    """Our backend's network step alone, fed as the official export is below (no session: no
    input checks, clamp or conversion of the results to [H,W,3])."""
    from rvm_engine.backends import cold_states, frame_step

    step = frame_step(model, backend, "float32", height, width, ratio)
    rec = cold_states(model, height, width, ratio)

    def run(frame: np.ndarray) -> None:
        nonlocal rec
        _, _, rec = step.run(np.ascontiguousarray(frame.transpose(2, 0, 1)[None]), rec)
    return run


def _official_step(runtime: str, export: str, ratio: float, precision: str,
                   tuned: bool = False, plates: bool = False) -> Callable[[np.ndarray], None]:
    """The official export run bare: src [1,3,H,W], states starting as [1,1,1,1] zeros, the ratio an input.

    ``plates``: with the work a session does to give plates back, made the plain numpy way (the
    finite check, the clamp in the copy to planes, the foreground interleaved again as [H,W,3]):
    the official export doing what "ours ... float32" rows do."""
    rec = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    ratio_in = np.array([ratio], np.float32)
    threads = torch.get_num_threads()
    if runtime == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        if tuned:  # our backend's settings, to tell what the graph gives from what the settings give
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(export, options, providers=["CPUExecutionProvider"])

        def run(inputs: dict) -> list:
            return session.run(None, inputs)
    else:
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(export), "CPU", {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bfloat16" else "f32",
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads})
        request = compiled.create_infer_request()
        outputs = [compiled.output(name) for name in ("fgr", "pha", "r1o", "r2o", "r3o", "r4o")]

        def run(inputs: dict) -> list:
            request.infer(inputs)
            return [np.array(request.get_tensor(output).data, copy=True) for output in outputs]

    def step(frame: np.ndarray) -> None:
        nonlocal rec
        if plates:
            if not (np.isfinite(frame.min()) and np.isfinite(frame.max())):
                raise ValueError("frame is not finite")
            src = np.clip(frame.transpose(2, 0, 1)[None], 0.0, 1.0)
        else:
            src = np.ascontiguousarray(frame.transpose(2, 0, 1)[None])
        out = run({"src": src, "r1i": rec[0], "r2i": rec[1], "r3i": rec[2], "r4i": rec[3], "downsample_ratio": ratio_in})
        rec = out[2:]
        if plates:
            np.ascontiguousarray(out[0][0].transpose(1, 2, 0))
            np.ascontiguousarray(out[1][0, 0])
    return step


def bench_size(width: int, height: int, ratio: float, frames_count: int, rounds: int, with_bf16: bool) -> None:
    from rvm_engine.backends import cpu_has_bf16, is_installed
    from rvm_engine.sample import sample_frames
    from rvm_engine.weights import find_onnx_export, load_model

    frames = sample_frames(count=frames_count, width=width, height=height, step=4)
    model = load_model(device="cpu")
    export_file = tempfile.NamedTemporaryFile(suffix=".onnx", delete=False)
    export_file.write(find_onnx_export())
    export_file.close()
    contenders: dict[str, Callable[[np.ndarray], None]] = {}
    precisions = ["float32"] + (["bfloat16"] if with_bf16 else [])
    for precision in precisions:
        for backend in ("torch", "onnxruntime", "openvino"):
            if is_installed(backend) and not (backend == "onnxruntime" and precision == "bfloat16"):
                contenders[f"ours {backend} {precision}"] = _session_step(model, backend, precision, ratio)
                if backend != "torch" and precision == "float32":
                    contenders[f"ours {backend} {precision}, step alone"] = _bare_step(
                        model, backend, ratio, height, width)
        for runtime in ("onnxruntime", "openvino"):
            if is_installed(runtime) and not (runtime == "onnxruntime" and precision == "bfloat16"):
                contenders[f"official export, {runtime} {precision}"] = _official_step(
                    runtime, export_file.name, ratio, precision)
        if precision == "float32" and is_installed("onnxruntime"):
            contenders["official export, onnxruntime, our settings"] = _official_step(
                "onnxruntime", export_file.name, ratio, precision, tuned=True)
            contenders["official export, onnxruntime, plates back"] = _official_step(
                "onnxruntime", export_file.name, ratio, precision, plates=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in contenders.values():  # warm-up: exports, compilation, first-frame allocations
            step(frames[0])
    seconds = dict.fromkeys(contenders, 0.0)
    for _ in range(rounds):
        for name, step in contenders.items():
            start = time.perf_counter()
            for frame in frames:
                step(frame)
            seconds[name] += time.perf_counter() - start
    os.unlink(export_file.name)

    runs = frames_count * rounds
    # The reference: the faster of the two runtimes as they come, on the official export, float32.
    official = {name: s for name, s in seconds.items() if name.startswith("official") and name.endswith("float32")}
    best_name = min(official, key=official.__getitem__)
    fp32_torch = seconds["ours torch float32"]
    print(f"\n{width}x{height} @ downsample_ratio {ratio}: {frames_count} frames x {rounds} interleaved rounds"
          f"{'' if cpu_has_bf16() or not with_bf16 else ' (no bf16 instructions: bfloat16 runs as float32)'}")
    print(f"{'':46s} {'ms/frame':>9s} {'fps':>6s}  {'vs ' + best_name:>40s}  vs ours torch float32")
    for name, s in seconds.items():
        print(f"{name:46s} {1000 * s / runs:9.1f} {runs / s:6.2f}  {seconds[best_name] / s:40.2f}  {fp32_torch / s:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["1920x1080@0.25", "3840x2160@0.125"],
                        help="WIDTHxHEIGHT@RATIO (default: 1080p at 0.25 and 4K at 0.125)")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-bf16", action="store_true", help="float32 only")
    args = parser.parse_args()

    import onnxruntime
    from machine import describe_machine

    try:
        import openvino

        ov_version = openvino.__version__
    except ImportError:
        ov_version = "not installed"
    print(describe_machine())
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}, "
          f"openvino {ov_version}")
    for size in args.sizes:
        dims, ratio = size.split("@")
        width, height = (int(v) for v in dims.split("x"))
        bench_size(width, height, float(ratio), args.frames, args.rounds, not args.no_bf16)


if __name__ == "__main__":
    main()
