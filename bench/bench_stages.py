"""Where a 1080p EXR render spends its time: each stage alone, then the whole render.

Writes the sample shot as 1920x1080 scene-linear half ZIP EXRs, then measures frames per second of
each stage alone, on as many threads as the render gives it (readers for read and colour in, one
thread for the network, writers for colour out and the plate writes):
read (as float32; half kept, as the torch colour road reads), colour in (OCIO; torch), network (torch;
the default backend), colour out (OCIO; torch),
write (alpha + foreground plates); then the whole `render_sequence`, and whole ÷ slowest stage
of the road the render takes (its colour road and backend). A whole/slowest near 1 means the
stages overlap; the goal is 0.8 on 8+ cores.
    .venv/bin/python bench/bench_stages.py [--frames 8 --device cpu|cuda --ratio 0.25]
"""

from __future__ import annotations

import os

# As the CLI and rvm_engine do, before torch loads: idle OpenMP threads sleep instead of spinning.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Sequence  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--ratio", type=float, default=None, help="downsample ratio (default: automatic)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.frames < 2:
        parser.error("--frames must be at least 2")

    import OpenImageIO as oiio
    import torch

    from rvm_engine.clip import ClipSettings, colour_for_plate, torch_colour
    from rvm_engine.plates import read_plate
    from rvm_engine.render import _READERS, _WRITERS, render_sequence
    from rvm_engine.sample import write_sample_plates
    from rvm_engine.session import MattingSession
    from rvm_engine.weights import load_model

    with tempfile.TemporaryDirectory(prefix="rvm-stages-") as tmp:
        root = Path(tmp)
        pattern = write_sample_plates(root / "plates", args.frames, args.width, args.height, step=4)
        model = load_model(device=args.device)
        from machine import describe_machine

        print(describe_machine())
        print(f"{args.frames} plates {args.width}x{args.height} half ZIP EXR, device {args.device}, "
              f"torch threads {torch.get_num_threads()}, readers {_READERS}, writers {_WRITERS}, OIIO threads "
              f"{oiio.get_int_attribute('threads')}, exr_threads {oiio.get_int_attribute('exr_threads')}")

        def settings(tag: str) -> ClipSettings:
            return ClipSettings(alpha=str(root / tag / "a.####.exr"), foreground=str(root / tag / "fg.####.exr"),
                                downsample_ratio=args.ratio, device=args.device)

        rates = stage_rates(pattern, settings, model, torch.device(args.device), root)
        whole_settings = settings("render")
        colour = colour_for_plate(whole_settings, read_plate(pattern.replace("####", "1001")))
        road = "torch" if torch_colour(whole_settings, colour) is not None else "OCIO"
        backend = MattingSession(model, device=args.device, backend=whole_settings.backend).backend
        report = render_sequence(pattern, None, whole_settings, model=model, progress=False)
        whole = args.frames / report.seconds

        used = ["read, half kept" if road == "torch" else "read", f"colour in, {road}", f"network, {backend}", f"colour out, {road}", "write alpha + foreground"]
        for name, value in rates.items():
            print(f"  {name:28s} {value:7.2f} frames/s{'' if name in used else '   (not the render road)'}")
        slowest = min(used, key=lambda name: rates[name])
        one_after_another = 1.0 / sum(1.0 / rates[name] for name in used)
        print(f"whole render_sequence ({road} colour, {backend} network)  {whole:7.2f} frames/s")
        print(f"whole / slowest stage ({slowest}) = {whole / rates[slowest]:.2f}")
        print(f"whole / the stages one after another ({one_after_another:.2f} frames/s) = {whole / one_after_another:.2f}")


def stage_rates(pattern: str, settings: Callable[[str], Any], model: Any, device: Any, root: Path) -> dict[str, float]:
    """Frames per second of each stage alone, on the threads the render gives it."""
    import torch

    from rvm_engine.clip import ClipMatter, MatteResult, colour_for_plate
    from rvm_engine.colour_torch import bake
    from rvm_engine.movie_frames import read_source_frame
    from rvm_engine.render import _READERS, _WRITERS
    from rvm_engine.sequences import parse_sequence
    from rvm_engine.session import MattingSession
    from rvm_engine.stages import ordered_map

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def rate(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> tuple[float, list[Any]]:
        """Frames per second of ``fn`` over ``items`` on ``workers`` threads (after one untimed warm-up)."""
        fn(items[0])
        sync()
        started = time.perf_counter()
        out = list(ordered_map(fn, items, workers, workers + 2))
        sync()
        return len(items) / (time.perf_counter() - started), out

    def upload(pixels: Any) -> torch.Tensor:
        return torch.from_numpy(pixels).to(device).float()  # half plates become float32 on the device

    seq = parse_sequence(pattern)
    frames = list(seq.frames)
    rates: dict[str, float] = {}
    rates["read"], plates = rate(lambda f: read_source_frame(seq.path(f), f), frames, _READERS)
    # The torch colour road reads half plates as half (clip.reads_half): OIIO converts nothing.
    rates["read, half kept"], half_plates = rate(lambda f: read_source_frame(seq.path(f), f, half=True), frames,
                                                 _READERS)
    colour = colour_for_plate(settings("x"), plates[0])
    baked = bake(colour)
    on_device = baked.to(device) if baked is not None else None

    rates["colour in, OCIO"], host_in = rate(lambda p: colour.to_model(p.pixels)[0], plates, _READERS)
    device_in: list[Any] = []
    if on_device is not None:
        rates["colour in, torch"], device_in = rate(lambda p: on_device.to_model(upload(p.pixels))[0], half_plates,
                                                    _READERS)

    # The network on inputs already in place: device tensors for torch, numpy for the default backend.
    ratio = settings("x").downsample_ratio
    torch_session = MattingSession(model, device=device, downsample_ratio=ratio, backend="torch")
    default = MattingSession(model, device=device, downsample_ratio=ratio, backend="auto")
    inputs = device_in or [upload(m).permute(2, 0, 1).contiguous() for m in host_in]
    rates["network, torch"], device_out = rate(lambda m: torch_session.run_tensor(m[None, None]), inputs, 1)
    if default.backend != "torch":
        rates[f"network, {default.backend}"], host_out = rate(default.run, host_in, 1)
    else:
        host_out = [(fgr[0, 0].float().permute(1, 2, 0).cpu().numpy(), pha[0, 0, 0].float().cpu().numpy())
                    for fgr, pha in device_out]

    indices = list(range(len(plates)))
    rates["colour out, OCIO"], foregrounds = rate(
        lambda i: colour.foreground_to_plate(host_out[i][0], host_in[i], plates[i].pixels, alpha=host_out[i][1]),
        indices, _WRITERS)
    if on_device is not None and device_in:
        pixels = [upload(p.pixels) for p in plates]
        rates["colour out, torch"], _ = rate(
            lambda i: on_device.foreground_to_plate(device_out[i][0][0, 0], device_in[i], pixels[i],
                                                    alpha=device_out[i][1][0, 0, 0]).cpu().numpy(), indices, _WRITERS)

    (root / "stages").mkdir()
    writer = ClipMatter(settings("stages"), model)
    results = [MatteResult(f, host_out[i][1], plates[i], 0, lambda fg=foregrounds[i]: fg) for i, f in enumerate(frames)]
    rates["write alpha + foreground"], _ = rate(writer.write, results, _WRITERS)
    return rates


if __name__ == "__main__":
    main()
