"""The overlap's gain: the batch renderer against a plain read-run-write loop over the same plates.

Writes the sample shot as 1920x1080 linear half EXRs (ZIP), then mattes them twice in one run,
alpha and foreground plates each time, and prints frames per second and their ratio.
    .venv/bin/python bench/bench_render.py [--frames 16 --width 1920 --height 1080 --ratio 0.25 --device cpu]
"""

from __future__ import annotations

import os

# As the CLI and rvm_engine do, before torch loads: idle OpenMP threads sleep instead of spinning.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--ratio", type=float, default=0.25)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import numpy as np
    import OpenImageIO as oiio

    from rvm_engine.clip import ClipMatter, ClipSettings
    from rvm_engine.plates import read_plate
    from rvm_engine.render import render_sequence
    from rvm_engine.sample import write_sample_plates
    from rvm_engine.sequences import parse_sequence
    from rvm_engine.weights import load_model

    with tempfile.TemporaryDirectory(prefix="rvm-bench-") as tmp:
        root = Path(tmp)
        pattern = write_sample_plates(root, args.frames, args.width, args.height, step=4)
        model = load_model(device=args.device)
        from machine import describe_machine

        print(describe_machine())
        print(f"{args.frames} plates {args.width}x{args.height} half ZIP EXR, downsample_ratio {args.ratio}, device {args.device}")

        def settings(tag: str) -> ClipSettings:
            return ClipSettings(alpha=str(root / tag / "a.####.exr"), foreground=str(root / tag / "fg.####.exr"),
                                downsample_ratio=args.ratio, device=args.device)

        # Plain loop: one stage after another, frame after frame.
        (root / "loop").mkdir()
        seq = parse_sequence(pattern)
        matter = ClipMatter(settings("loop"), model)
        stage = {"read": 0.0, "matte": 0.0, "write": 0.0}
        start = time.perf_counter()
        for f in seq.frames:
            t0 = time.perf_counter()
            plate = read_plate(seq.path(f))
            t1 = time.perf_counter()
            result = matter.matte(plate, f)
            t2 = time.perf_counter()
            matter.write(result)
            t3 = time.perf_counter()
            stage["read"] += t1 - t0
            stage["matte"] += t2 - t1
            stage["write"] += t3 - t2
        loop_fps = args.frames / (time.perf_counter() - start)

        report = render_sequence(pattern, None, settings("render"), model=model, progress=False)
        render_fps = args.frames / report.seconds

        for name, total in stage.items():
            print(f"  plain loop stage {name:6s} {1000 * total / args.frames:8.1f} ms/frame")
        print(f"plain read-run-write loop   {loop_fps:6.2f} fps")
        print(f"batch render (overlapped)   {render_fps:6.2f} fps")
        print(f"overlap gain (render / loop) = {render_fps / loop_fps:.2f}")
        for f in seq.frames:  # both ways give the same plates
            a = np.asarray(oiio.ImageBuf(str(root / "loop" / f"a.{f:04d}.exr")).get_pixels(oiio.FLOAT))
            b = np.asarray(oiio.ImageBuf(str(root / "render" / f"a.{f:04d}.exr")).get_pixels(oiio.FLOAT))
            assert np.array_equal(a, b), f"frame {f} differs between the loop and the render"
        print("plates identical between the two: yes")


if __name__ == "__main__":
    main()
