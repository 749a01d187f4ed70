"""Colour on the CPU: OCIO through OpenImageIO's ImageBufAlgo against OCIO straight on the array.

Side by side in one run, the two roads of `PlateColour` (`RVM_BRIDGE_OCIO_DIRECT=0` / `1`, see
rvm_engine/ocio_direct.py) on the same frames: `to_model` and `foreground_to_plate` at 1920x1080
and 3840x2160 for a few colour settings (best of --repeats, roads alternated), then the whole
`render_sequence` of the sample shot as 1080p half ZIP EXRs with each road (alternated, --renders
times each, best taken). Prints milliseconds or frames/s and direct ÷ OpenImageIO ratios.
    .venv/bin/python bench/bench_ocio.py [--repeats 7 --frames 8 --renders 2]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import functools  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

ROADS = {"OpenImageIO": "0", "direct": "1"}


def best_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * min(times)


def on_road(road: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        os.environ["RVM_BRIDGE_OCIO_DIRECT"] = ROADS[road]
        return fn()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--frames", type=int, default=8, help="frames of the whole render (0: skip it)")
    parser.add_argument("--renders", type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import OpenImageIO as oiio
    from machine import describe_machine

    from rvm_engine import ocio_direct
    from rvm_engine.colour import SCENE_LINEAR_REC709, PlateColour

    print(describe_machine())
    print(f"OpenImageIO {oiio.__version__} (OCIO {oiio.get_string_attribute('opencolorio_version')}), "
          f"OIIO threads {oiio.get_int_attribute('threads')}; direct road: {ocio_direct.why_not() or 'available'}")
    rng = np.random.default_rng(0)
    print(f"{'colour':34s} {'size':>9s} {'call':>20s} {'OpenImageIO ms':>15s} {'direct ms':>10s} {'ratio':>6s}")
    for space, to_model in ((SCENE_LINEAR_REC709, "srgb"), ("ACEScg", "srgb"), ("ACEScg", "display")):
        colour = PlateColour(space, to_model=to_model)
        for width, height in ((1920, 1080), (3840, 2160)):
            plate = rng.random((height, width, 3), dtype=np.float32) * 2.0
            model = colour.to_model(plate)[0]
            fgr = np.clip(model + 0.01, 0.0, 1.0)
            calls = {"to_model": functools.partial(colour.to_model, plate),
                     "foreground_to_plate": functools.partial(colour.foreground_to_plate, fgr, model, plate)}
            for name, fn in calls.items():
                ms = {road: [] for road in ROADS}
                for _ in range(2):  # alternate the roads: drift on a shared machine hits both
                    for road in ROADS:
                        ms[road].append(best_ms(on_road(road, fn), max(1, args.repeats // 2)))
                old, new = min(ms["OpenImageIO"]), min(ms["direct"])
                print(f"{space + ', ' + to_model:34s} {width}x{height:<4d} {name:>20s} {old:15.1f} {new:10.1f} {old / new:5.2f}x")
    if args.frames:
        whole_render(args)
    os.environ.pop("RVM_BRIDGE_OCIO_DIRECT", None)


def whole_render(args: argparse.Namespace) -> None:
    import numpy as np

    from rvm_engine.clip import ClipSettings
    from rvm_engine.render import render_sequence
    from rvm_engine.sample import write_sample_plates
    from rvm_engine.weights import load_model

    model = load_model()
    with tempfile.TemporaryDirectory(prefix="rvm-ocio-") as tmp:
        root = Path(tmp)
        pattern = write_sample_plates(root / "plates", args.frames, 1920, 1080, step=4)
        rates: dict[str, list[float]] = {road: [] for road in ROADS}
        for attempt in range(args.renders):
            for road in ROADS:
                os.environ["RVM_BRIDGE_OCIO_DIRECT"] = ROADS[road]
                out = root / f"{road}-{attempt}"
                settings = ClipSettings(alpha=str(out / "a.####.exr"), foreground=str(out / "fg.####.exr"))
                report = render_sequence(pattern, None, settings, model=model, progress=False)
                rates[road].append(args.frames / report.seconds)
        old, new = max(rates["OpenImageIO"]), max(rates["direct"])
        print(f"whole render_sequence, {args.frames} plates 1920x1080 half ZIP EXR (default settings, best of "
              f"{args.renders}): OpenImageIO road {old:.2f} frames/s, direct {new:.2f} frames/s, {new / old:.2f}x")
        same = all(
            np.array_equal(read(root / f"OpenImageIO-0/{kind}.{1001 + i}.exr"), read(root / f"direct-0/{kind}.{1001 + i}.exr"))
            for kind in ("a", "fg") for i in range(args.frames)
        )
        print(f"plates of the two roads the same bit for bit: {same}")


def read(path: Path) -> Any:
    import OpenImageIO as oiio

    return oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT)


if __name__ == "__main__":
    main()
