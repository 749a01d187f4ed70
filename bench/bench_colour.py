"""Which road into the model's sRGB gives the better matte on a bright plate: the plain sRGB curve
or an OCIO display view (the built-in config's ACES SDR view)?

The sample shot is made scene-linear and pushed up by EXPOSURE stops, so much of it sits above 1.0.
Each road mattes the bright plates; the reference is the matte of the normally exposed plates
through the plain curve (what RVM was trained on). Prints mean absolute alpha error and
the IoU of alpha > 0.5 against the reference, and their ratios, side by side in one run.
    .venv/bin/python bench/bench_colour.py [--stops 2 --frames 8]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stops", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--ratio", type=float, default=0.5)
    args = parser.parse_args()

    import numpy as np
    import OpenImageIO as oiio

    from rvm_engine.colour import SCENE_LINEAR_REC709, SRGB_ENCODED, PlateColour
    from rvm_engine.sample import sample_frames
    from rvm_engine.session import MattingSession
    from rvm_engine.weights import load_model

    model = load_model()
    frames = sample_frames(args.frames, width=320, height=384, step=8)
    linear = [np.asarray(oiio.ImageBufAlgo.colorconvert(oiio.ImageBuf(f), SRGB_ENCODED, SCENE_LINEAR_REC709)
                         .get_pixels(oiio.FLOAT), np.float32).reshape(f.shape) for f in frames]

    def mattes(plates: list, road: str) -> list:
        colour = PlateColour(SCENE_LINEAR_REC709, to_model=road)
        session = MattingSession(model, downsample_ratio=args.ratio)
        return [session.run(colour.to_model(p)[0])[1] for p in plates]

    reference = mattes(linear, "srgb")
    from machine import describe_machine

    print(describe_machine())
    print(f"{args.frames} frames 320x384, downsample_ratio {args.ratio}; reference: normal exposure through 'srgb'")
    print(f"{'stops':>6} {'road':>8} {'above 1.0':>10} {'alpha MAE':>10} {'IoU':>7}")
    for stops in args.stops:
        bright = [p * (2.0 ** stops) for p in linear]
        hot = float(np.mean([np.mean(p.max(axis=-1) > 1.0) for p in bright]))
        scores = {}
        for road in ("srgb", "display"):
            alphas = mattes(bright, road)
            mae = float(np.mean([np.abs(a - r).mean() for a, r in zip(alphas, reference)]))
            iou = float(np.mean([((a > 0.5) & (r > 0.5)).sum() / max(1, ((a > 0.5) | (r > 0.5)).sum())
                                 for a, r in zip(alphas, reference)]))
            scores[road] = (mae, iou)
            print(f"{stops:6.1f} {road:>8} {hot:10.1%} {mae:10.4f} {iou:7.3f}")
        print(f"{'':6} display/srgb: MAE ratio {scores['display'][0] / scores['srgb'][0]:.2f}, "
              f"IoU ratio {scores['display'][1] / scores['srgb'][1]:.3f}")


if __name__ == "__main__":
    main()
