"""A long inline render under the memory budget: does the clip ever go cold?

A host streaming 1080p frames inline with inline outputs (the Nuke node on a machine that shares
no storage with the bridge) fills the cache with outputs; the budget must drop those, never the
recurrent state being advanced (a cold restart is a visible pop). Sends ``--frames`` frames of
the sample shot in order through a real bridge with the default 4 GiB budget (or ``--budget``)
and prints how each frame was made, what the budget dropped, and the rate.

    .venv/bin/python bench/bench_budget.py                     # 300 frames 1920x1080, ratio 0.25
    .venv/bin/python bench/bench_budget.py --frames 40 --width 640 --height 360
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--ratio", type=float, default=0.25)
    parser.add_argument("--budget", default="4G")
    parser.add_argument("--window", type=int, default=3)
    args = parser.parse_args()

    import numpy as np
    from machine import describe_machine

    from bridge_server.client import BridgeClient, InlineFrame
    from bridge_server.client.launch import ServerProcess
    from rvm_engine.sample import sample_frames

    print(describe_machine())
    # A short loop of distinct frames, sent again and again with the frame number advancing: the
    # pixels change every frame, as a real shot's do, without holding 300 1080p frames in memory.
    loop = [np.ascontiguousarray(rgb, np.float16)
            for rgb in sample_frames(count=12, width=args.width, height=args.height, step=4)]
    print(f"{args.frames} inline frames {args.width}x{args.height} half, downsample_ratio {args.ratio}, "
          f"budget {args.budget}, window {args.window}")
    root = tempfile.mkdtemp(prefix="bench-budget-")
    with ServerProcess([root], extra_args=["--memory-budget", args.budget],
                       log_path=os.path.join(root, "bridge.log")) as server:
        with BridgeClient(server.address, timeout=600) as client:
            clip = client.open_clip(first_frame=1, downsample_ratio=args.ratio, inline_outputs=True)

            def frames():
                for index in range(args.frames):
                    rgb = loop[index % len(loop)] * np.float16(1.0 + 0.001 * index)
                    yield index + 1, None, InlineFrame(rgb.tobytes(), args.height, args.width, 3, "float16")

            started = time.perf_counter()
            made = Counter()
            for result in clip.frames(frames(), window=args.window):
                made[(result.how, result.exact)] += 1
            seconds = time.perf_counter() - started
            status = client.status()
    print(f"frames made: {dict(made)}")
    cold = sum(count for (how, _), count in made.items() if how == "cold") + \
        sum(count for (_, exact), count in made.items() if not exact)
    dropped = status["dropped"]
    print(f"dropped by the budget: {dropped['inline_outputs']} cached inline outputs "
          f"({dropped['inline_output_bytes'] / 2 ** 30:.2f} GiB), {dropped['states']} recurrent states")
    print(f"memory at the end: {status['memory_bytes'] / 2 ** 30:.2f} GiB of {status['memory_budget'] / 2 ** 30:.2f} GiB")
    print(f"{args.frames / seconds:.2f} frames/s; frames not made in sequence from the first: {cold}")


if __name__ == "__main__":
    main()
