"""The ``rvm-bridge`` command: render, serve, status, keys, demo.

A thin shell over the engine and the server; every error the engine or the bridge raises on
purpose is printed as one line (exit status 1), Ctrl-C exits with 130 after the plates in
flight are written.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from rvm_engine import __version__


def _add_render_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "render",
        help="matte a plate sequence into alpha / foreground plates",
        description="Matte INPUT (shot.####.exr, shot.%%04d.exr, shot.$F4.exr, shot.@@@@.exr) in frame order.",
    )
    p.add_argument("input", help="input plate sequence pattern (or one file)")
    p.add_argument("--frames", help="frame range, e.g. 1001-1100 or 1001-1100x2 (both ends included); default: all on disk")
    p.add_argument("--alpha", help="output pattern for the alpha plates (single A channel)")
    p.add_argument("--foreground", help="output pattern for the foreground plates (R,G,B in the input's colour space)")
    p.add_argument("--rgba", help="output pattern for RGBA plates (premultiplied unless --straight)")
    p.add_argument("--straight", action="store_true", help="write --rgba plates unpremultiplied")
    p.add_argument("--downsample-ratio", type=float, default=None, help="network resolution ratio (default: automatic, long side <= 512 px)")
    p.add_argument("--variant", default="mobilenetv3", choices=["mobilenetv3", "resnet50"])
    p.add_argument("--checkpoint", help="an official rvm_*.pth to use instead of the provisioned weights")
    p.add_argument("--refiner", default="deep_guided_filter", choices=["deep_guided_filter", "fast_guided_filter"])
    p.add_argument("--colour-space", "--color-space", dest="colour_space", help="OCIO colour space of the input (default: scene-linear Rec.709 for EXR, sRGB otherwise)")
    p.add_argument("--ocio-config", help="OCIO config (default: $OCIO, else the built-in config)")
    p.add_argument("--to-model", default="srgb", help="how plates reach the model's sRGB: 'srgb' (default) or 'display[:DISPLAY/VIEW]'")
    p.add_argument("--layer", help="EXR layer holding the RGB (e.g. beauty); default: R,G,B or rgba.*")
    p.add_argument("--pixel-type", default="half", choices=["half", "float"])
    p.add_argument("--compression", default="zip", help="EXR compression (none, rle, zips, zip, piz, pxr24, b44, b44a, dwaa, dwab, ...)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--precision", default="float32", choices=["float32", "float16"], help="float16 needs CUDA")
    p.add_argument("--chunk-size", type=int, default=1, help="frames per network call (1 gives plates identical to the bridge)")
    p.add_argument("--resume", action="store_true", help="continue a stopped render from the first frame with missing plates")
    p.add_argument("--preroll", type=_frames_count, default=32, help="frames run before a resumed frame without writing (default 32)")
    p.add_argument("--server", help="render through a running bridge at this address instead of in this process")
    p.add_argument("--keys", help="with --server: folder holding the server's public key and a client key pair (CURVE)")
    p.add_argument("--timeout", type=float, default=300.0, help="with --server: seconds to wait for a frame before retrying (default 300)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_render)


def _frames_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of frames") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} frames: give 0 or more")
    return value


def _settings(args: argparse.Namespace):
    from rvm_engine.clip import ClipSettings

    return ClipSettings(
        variant=args.variant, checkpoint=args.checkpoint, refiner=args.refiner, downsample_ratio=args.downsample_ratio,
        colour_space=args.colour_space, ocio_config=args.ocio_config, to_model=args.to_model, precision=args.precision,
        device=args.device, alpha=args.alpha, foreground=args.foreground, rgba=args.rgba,
        rgba_premultiplied=not args.straight, pixel_type=args.pixel_type, compression=args.compression, layer=args.layer,
    )


def _render(args: argparse.Namespace) -> int:
    if args.server:
        from bridge_server.remote_render import render_remote

        return render_remote(args)
    from rvm_engine.render import render_sequence

    report = render_sequence(
        args.input, args.frames, _settings(args), resume=args.resume, preroll=args.preroll,
        seq_chunk=args.chunk_size, progress=not args.no_progress,
    )
    line = f"wrote {len(report.written)} frames in {report.seconds:.1f} s"
    if args.resume:
        line += f"; resumed after {report.skipped} complete frames, pre-rolled {report.prerolled}"
    if report.bad_pixels:
        line += f"; {report.bad_pixels} NaN/Inf pixels made safe"
    print(line)
    return 0


def _add_demo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="matte the built-in sample shot through the bridge and write plates and a preview")
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--in-process", action="store_true", help="skip the bridge: render in this process")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from bridge_server.demo import run_demo

    run_demo(args.out, through_bridge=not args.in_process)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rvm-bridge", description="Robust Video Matting for compositors.")
    parser.add_argument("--version", action="version", version=f"rvm-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_render_parser(sub)
    _add_demo_parser(sub)
    try:
        from bridge_server import server_cli
    except ImportError:  # server not installed in this build
        server_cli = None  # type: ignore[assignment]
    if server_cli is not None:
        server_cli.add_serve_parser(sub)
        server_cli.add_status_parser(sub)
        server_cli.add_keys_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from rvm_engine.errors import RVMError

    try:
        from bridge_server.errors import BridgeError
    except ImportError:
        BridgeError = RVMError  # type: ignore[misc,assignment]
    import zmq

    try:
        return int(args.func(args) or 0)
    except (RVMError, BridgeError) as exc:
        print(f"rvm-bridge {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except zmq.ZMQError as exc:
        address = getattr(args, "server", None) or getattr(args, "address", None) or ""
        hint = "another process already listens there; stop it or choose another --address" \
            if exc.errno == zmq.EADDRINUSE else "addresses look like tcp://127.0.0.1:5701"
        print(f"rvm-bridge {args.command}: error: ZeroMQ refused address {address!r}: {exc.strerror}; {hint}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rvm-bridge {args.command}: cancelled; every plate on disk is complete (use --resume to carry on)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
