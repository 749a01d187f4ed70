"""The main job on the built-in default: the sample shot, matted through the bridge.

Writes the sample shot as a scene-linear EXR sequence (as a host would), starts a bridge on
loopback, sends the frames in order, lets the server write alpha and foreground plates, stops
the bridge, and makes a preview PNG of composites over RVM's green.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from rvm_engine.sample import write_sample_plates

FIRST_FRAME = 1001
FRAMES = 24
GREEN = np.array([120, 255, 155], np.float32) / 255  # the official composition background


def write_preview(alpha_pattern: str, fg_pattern: str, frames: list[int], path: Path) -> None:
    """A strip of composites over green (top) and alphas (bottom) for a few frames, as sRGB PNG."""
    import OpenImageIO as oiio

    from rvm_engine.colour import SCENE_LINEAR_REC709, SRGB_ENCODED
    from rvm_engine.plate_writing import write_plate
    from rvm_engine.plates import read_plate
    from rvm_engine.sequences import output_sequence

    picks = frames[:: max(1, len(frames) // 4)][:4]
    alpha_seq, fg_seq = output_sequence(alpha_pattern, picks), output_sequence(fg_pattern, picks)
    tops, bottoms = [], []
    for f in picks:
        fg = read_plate(fg_seq.path(f)).pixels
        buf = oiio.ImageBufAlgo.colorconvert(oiio.ImageBuf(np.ascontiguousarray(fg)), SCENE_LINEAR_REC709, SRGB_ENCODED)
        fg_srgb = np.clip(np.asarray(buf.get_pixels(oiio.FLOAT), np.float32).reshape(fg.shape), 0, 1)
        alpha = _read_alpha(alpha_seq.path(f))
        tops.append(fg_srgb * alpha[..., None] + GREEN * (1 - alpha[..., None]))
        bottoms.append(np.repeat(alpha[..., None], 3, axis=-1))
    write_plate(path, np.concatenate([np.concatenate(tops, 1), np.concatenate(bottoms, 1)], 0), ["R", "G", "B"], pixel_type="uint8")


def _read_alpha(path: str) -> np.ndarray:
    import OpenImageIO as oiio

    buf = oiio.ImageBuf(path)
    return np.asarray(buf.get_pixels(oiio.FLOAT), np.float32)[..., 0]


def run_demo(out: str, *, through_bridge: bool = True) -> None:
    """Run the main job into folder ``out`` and print where everything went."""
    root = Path(out).resolve()
    started = time.perf_counter()
    source = write_sample_plates(root / "plates", count=FRAMES, width=384, height=448, step=4, first=FIRST_FRAME)
    alpha = str(root / "alpha" / "sample_alpha.####.exr")
    foreground = str(root / "foreground" / "sample_fg.####.exr")
    frames = list(range(FIRST_FRAME, FIRST_FRAME + FRAMES))
    (root / "alpha").mkdir(exist_ok=True)
    (root / "foreground").mkdir(exist_ok=True)
    if through_bridge:
        how = _through_bridge(root, source, frames, alpha, foreground)
    else:
        from rvm_engine.clip import ClipSettings
        from rvm_engine.render import render_sequence

        render_sequence(source, frames, ClipSettings(alpha=alpha, foreground=foreground), progress=True)
        how = "in process"
    preview = root / "preview.png"
    write_preview(alpha, foreground, frames, preview)
    print(f"sample shot: {len(frames)} frames {FIRST_FRAME}-{frames[-1]} matted {how} in {time.perf_counter() - started:.1f} s")
    print(f"  source plates    {source}")
    print(f"  alpha plates     {alpha}")
    print(f"  foreground       {foreground}")
    print(f"  preview          {preview}")


def _through_bridge(root: Path, source: str, frames: list[int], alpha: str, foreground: str) -> str:
    """Serve ``root`` from a bridge child process on a free loopback port, render ``frames`` of
    ``source`` through it, stop the bridge (its log goes to ``root/bridge.log``); returns a line
    saying how the frames were made."""
    from tqdm import tqdm

    from .client.launch import ServerProcess
    from .client.render import render_through_bridge

    with ServerProcess([str(root)], log_path=str(root / "bridge.log")) as server:
        with tqdm(total=len(frames), unit="frame") as bar:
            summary = render_through_bridge(server.address, source, frames, alpha=alpha, foreground=foreground,
                                            progress=lambda done, total, result: bar.update(1))
        address = server.address
    in_sequence = sum(1 for result in summary.results if result.how == "sequence" and result.exact)
    return f"through the bridge at {address} ({in_sequence} of {len(summary.results)} frames in sequence)"


if __name__ == "__main__":
    run_demo(os.environ.get("RVM_DEMO_OUT", "out/demo"))
