"""Many clips on one bridge: four clips rendered at once, their frames batched, against the same
clips on a bridge that runs every frame alone (``--batch-max 1``), side by side in one run.

Each clip is its own shot (the sample pan at another speed), rendered by its own thread on a
client of its own (as four artists would), plates read and alpha written by the bridge. Two
bridges run at once, one batching (``--batch-max 8``) and one not, with the same workers and
threads; the ways alternate and each keeps its best run, so a shared machine's load hits both
alike. For each backend asked (the default, ``auto``, and ``torch``) it prints frames/s both
ways, their ratio, the mean batch the batching bridge ran, and how far the batched plates are
from the plates made alone.

    .venv/bin/python bench/bench_batch.py                   # 1920x1080 at 0.25, 4 clips x 12 frames
    .venv/bin/python bench/bench_batch.py --small           # 256x256, 4 clips x 6 frames: a quick check
    .venv/bin/python bench/bench_batch.py --device cuda     # on a GPU host (the backend is torch there)
"""

from __future__ import annotations

import os

# As the CLI and rvm_engine do, before torch loads: idle OpenMP threads sleep instead of spinning.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import tempfile
import threading
import time
from typing import Dict, List, Tuple

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--frames", type=int, default=12, help="frames each clip renders")
    parser.add_argument("--clips", type=int, default=4, help="clips rendered at once")
    parser.add_argument("--ratio", type=float, default=0.25, help="downsample_ratio of every clip")
    parser.add_argument("--small", action="store_true", help="256x256, 6 frames a clip")
    parser.add_argument("--device", default="cpu", help="cpu or cuda, for both bridges")
    parser.add_argument("--backends", default=None,
                        help="comma-separated clip backends to compare (default: auto,torch on the CPU; torch on CUDA)")
    parser.add_argument("--batch-max", type=int, default=8, help="the batching bridge's --batch-max")
    parser.add_argument("--workers", type=int, default=2, help="--workers of both bridges")
    parser.add_argument("--threads", type=int, default=None,
                        help="--threads of both bridges (default: torch's own choice)")
    parser.add_argument("--window", type=int, default=3, help="requests each client keeps queued")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each way, alternating; best kept")
    args = parser.parse_args()
    if args.small:
        args.width, args.height, args.frames = 256, 256, 6
    backends = (args.backends or ("torch" if args.device.startswith("cuda") else "auto,torch")).split(",")

    import torch
    from machine import describe_machine

    from bridge_server.client import BridgeClient
    from bridge_server.client.launch import ServerProcess
    from rvm_engine.sample import write_sample_plates

    root = tempfile.mkdtemp(prefix="bench-batch-")
    frames = list(range(1001, 1001 + args.frames))
    shots = [write_sample_plates(os.path.join(root, f"shot{i}"), args.frames, args.width, args.height, step=3 + 2 * i)
             for i in range(args.clips)]
    threads = args.threads or torch.get_num_threads()
    print(describe_machine())
    print(f"{args.clips} clips x {args.frames} frames {args.width}x{args.height}, downsample_ratio {args.ratio}, "
          f"device {args.device}, {args.workers} workers, {threads} threads, window {args.window}; plates in {root}")

    def render(address: str, name: str, backend: str, some: List[int]) -> Tuple[int, List[int]]:
        """Every clip renders ``some`` frames at once, each on its own thread and client."""
        sizes: List[List[int]] = [[] for _ in shots]
        errors: List[BaseException] = []

        def one(index: int) -> None:
            try:
                with BridgeClient(address, timeout=600, name=f"clip{index}") as client:
                    clip = client.open_clip(f"{name}-{index}", source=shots[index], first_frame=some[0],
                                            outputs={"alpha": os.path.join(root, name, f"clip{index}",
                                                                           "alpha.####.exr")},
                                            downsample_ratio=args.ratio, backend=backend)
                    sizes[index] = [result.batch for result in clip.frames(some, window=args.window)]
                    clip.close()
            except BaseException as error:  # noqa: BLE001 - reported after the threads end
                errors.append(error)

        workers = [threading.Thread(target=one, args=(index,)) for index in range(len(shots))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if errors:
            raise errors[0]
        return sum(len(s) for s in sizes), [size for s in sizes for size in s]

    common = ["--threads", str(threads), "--device", args.device, "--workers", str(args.workers)]
    ways = {"batched": ["--batch-max", str(args.batch_max)], "one at a time": ["--batch-max", "1"]}
    fps: Dict[Tuple[str, str], float] = {}
    mean_batch: Dict[str, float] = {}
    servers = {way: ServerProcess([root], extra_args=common + extra, log_path=os.path.join(root, f"{way[:3]}.log"))
               for way, extra in ways.items()}
    try:
        for server in servers.values():
            server.start()
        for backend in backends:
            for way, server in servers.items():  # first-call costs (exports, kernels) are not throughput
                render(server.address, f"warm-{backend}-{way[:3]}", backend, frames[:2])
            sizes: List[int] = []
            for run in range(args.repeat):
                for way, server in servers.items():
                    started = time.perf_counter()
                    count, made = render(server.address, f"{backend}-{way[:3]}-{run}", backend, frames)
                    fps[backend, way] = max(fps.get((backend, way), 0.0), count / (time.perf_counter() - started))
                    if way == "batched":
                        sizes += made
            mean_batch[backend] = float(np.mean(sizes))
    finally:
        for server in servers.values():
            server.stop()

    import OpenImageIO as oiio

    def alpha(name: str, index: int, frame: int) -> np.ndarray:
        return np.asarray(oiio.ImageBuf(os.path.join(root, name, f"clip{index}", f"alpha.{frame:04d}.exr"))
                          .get_pixels(oiio.FLOAT))

    print(f"{'backend':10}{'batched f/s':>13}{'alone f/s':>11}{'ratio':>8}{'mean batch':>12}{'max |diff|':>12}")
    for backend in backends:
        diff = max(float(np.abs(alpha(f"{backend}-bat-0", i, f) - alpha(f"{backend}-one-0", i, f)).max())
                   for i in range(len(shots)) for f in frames)
        batched, alone = fps[backend, "batched"], fps[backend, "one at a time"]
        print(f"{backend:10}{batched:13.2f}{alone:11.2f}{batched / alone:8.2f}{mean_batch[backend]:12.2f}{diff:12.2e}")
    print("ratio: batched / one at a time; max |diff|: batched alpha plates (half) against the same frames made alone")


if __name__ == "__main__":
    main()
