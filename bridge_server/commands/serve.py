"""``rvm-bridge serve``: run a long-lived bridge until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from ..client.protocol import DEFAULT_ADDRESS, DEFAULT_PORT, Limits

_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}


def parse_size(text: str) -> int:
    """Bytes in ``512M``, ``4G``, ``1048576``; raises argparse.ArgumentTypeError."""
    value = text.strip().lower().rstrip("b")
    unit = value[-1:] if value[-1:] in _UNITS and not value[-1:].isdigit() else ""
    try:
        number = float(value[: len(value) - len(unit)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not a number with an optional K, M, G or T") from None
    if not 0 < number < 2 ** 63 / _UNITS[unit]:  # inf: no int
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive and finite")
    return int(number * _UNITS[unit])


def parse_shared_size(text: str) -> int:
    """``--shared-memory``: a size of at least 1 MiB (a bare ``512`` is bytes, not megabytes)."""
    size = parse_size(text)
    if size < 1024 ** 2:
        raise argparse.ArgumentTypeError(f"shared memory of {size} bytes holds no frame; give a size such as "
                                         f"{text.strip()}M or 4G, or --no-shared-memory to offer none")
    return size


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to ``subparsers``."""
    p = subparsers.add_parser("serve", help="run a long-lived bridge server that mattes frames for hosts",
                              description="Serve RVM to hosts over ZeroMQ; models load once, clips keep their state.")
    p.add_argument("--address", default=DEFAULT_ADDRESS,
                   help=f"where to listen (default {DEFAULT_ADDRESS}; port {DEFAULT_PORT} is clear of Nuke's Frame "
                        "Server range 5558-5662; port 0 = any free port). Other than loopback needs --keys")
    p.add_argument("--root", action="append", default=[], required=True, metavar="DIR",
                   help="folder plates may be read from and written to (repeat for several)")
    p.add_argument("--keys", metavar="DIR", help="CURVE keys made by `rvm-bridge keys DIR`: encrypt and admit "
                                                 "only clients holding the client key")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--workers", type=int, default=2, help="frames run at once, one clip each (default 2)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per network run (default: torch's, as an in-process render uses). Fewer "
                        "threads per worker is faster with several workers on few cores, but changes float "
                        "rounding (about 1e-7) against an in-process render using another count")
    p.add_argument("--batch-max", type=int, default=None, metavar="N",
                   help="many clips on one GPU: the next frames of up to N clips (same model, size and ratio, no "
                        "pre-roll) run as one batch, each on its own state (default 8 on CUDA, 1 = off on the CPU, "
                        "where batches were no faster). A frame made in a batch equals the one made alone within "
                        "float rounding (about 1e-5), not bit for bit")
    p.add_argument("--colour-on", default="auto", metavar="auto|ocio|torch",
                   help="where every clip's colour conversion runs: auto (torch on CUDA, OCIO on the CPU), ocio "
                        "(OCIO on the CPU always: a GPU bridge whose plates must equal a CPU render's to the bit) "
                        "or torch (OCIO baked into torch LUTs, within 1e-4 of OCIO; on a CPU bridge it runs the "
                        "GPU road, for tests). Transforms that do not bake stay on OCIO whatever this says")
    p.add_argument("--max-heads", type=int, default=4,
                   help="recurrent states kept per clip, for interleaved chunks (default 4)")
    p.add_argument("--head-live", type=float, default=30.0, metavar="SECONDS",
                   help="a state advanced this recently is some chunk's: a jump copies it instead of moving it "
                        "(default 30)")
    p.add_argument("--memory-budget", type=parse_size, default=4 * 1024 ** 3, metavar="SIZE",
                   help="recurrent states, cached inline outputs and queued frames kept before cached outputs and "
                        "then idle states are dropped (default 4G); a state a render is advancing is never dropped")
    p.add_argument("--max-clips", type=int, default=32, help="clips open at once (default 32)")
    p.add_argument("--max-queued", type=int, default=64,
                   help="frames queued per clip; more get a 'busy' reply the client backs off on (default 64)")
    p.add_argument("--preroll-limit", type=int, default=48,
                   help="a frame at most this far past a held state pre-rolls the gap (default 48)")
    p.add_argument("--cold-preroll", type=int, default=12,
                   help="past the limit, frames pre-rolled from a cold state before the asked frame (default 12)")
    p.add_argument("--inline-wait", type=float, default=3.0,
                   help="seconds an inline frame waits for the frames before it before going on cold (default 3)")
    p.add_argument("--preload", default="mobilenetv3",
                   help="comma-separated variants loaded at start ('' for none); others load on demand")
    p.add_argument("--path-map", action="append", default=[], metavar="CLIENT=SERVER",
                   help="path mapping sent to clients in hello, e.g. 'P:\\shows=/mnt/shows' (repeatable)")
    p.add_argument("--max-image-side", type=int, default=Limits.max_image_side,
                   help="largest image side, inline or read from a plate")
    p.add_argument("--max-message", type=parse_size, default=Limits.max_buffer_bytes, metavar="SIZE",
                   help="largest message part accepted (default 1G)")
    p.add_argument("--shared-memory", type=parse_shared_size, default=4 * 1024 ** 3, metavar="SIZE",
                   help="most bytes of clients' shared-memory segments mapped at once (default 4G; Linux only): "
                        "clients on this host lend memory for inline frames instead of sending them over ZeroMQ")
    p.add_argument("--no-shared-memory", action="store_true",
                   help="offer no shared memory: inline frames always travel over ZeroMQ")
    p.add_argument("--ready-file", help="write the bound address to this file once listening")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..client.errors import BridgeError
    from ..client.pathmap import PathMap
    from ..server import BridgeServer
    from ..server_config import ServerConfig

    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = ServerConfig(
            roots=args.root, address=args.address, keys_dir=args.keys, device=args.device, workers=args.workers,
            memory_budget=args.memory_budget, max_clips=args.max_clips, max_queued_per_clip=args.max_queued,
            preroll_limit=args.preroll_limit, cold_preroll=args.cold_preroll, inline_wait=args.inline_wait,
            preload=[v for v in args.preload.split(",") if v], max_heads=args.max_heads, head_live=args.head_live,
            threads=args.threads, batch_max=args.batch_max, path_map=PathMap.parse(";".join(args.path_map)), ready_file=args.ready_file,
            shared_memory=0 if args.no_shared_memory else args.shared_memory, colour_on=args.colour_on,
            limits=Limits(max_buffer_bytes=args.max_message, max_image_side=args.max_image_side,
                          max_image_pixels=min(Limits.max_image_pixels, args.max_image_side ** 2)))
        server = BridgeServer(config)
    except BridgeError as error:  # a root that is not a folder, keys missing, contradicting sizes, ...
        print(f"rvm-bridge serve: error: {error}", file=sys.stderr)
        return 2
    server.serve_forever()
    return 0
