"""``rvm-bridge serve``, ``rvm-bridge status`` and ``rvm-bridge keys``: thin shells over the
server, the client and the key maker. ``bridge_server/cli.py`` adds these sub-commands;
``python -m bridge_server.server`` runs ``serve`` on its own.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Optional, Sequence

from .protocol import DEFAULT_ADDRESS, DEFAULT_PORT, Limits

_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}


def parse_size(text: str) -> int:
    """Bytes in ``512M``, ``4G``, ``1048576``; raises argparse.ArgumentTypeError."""
    value = text.strip().lower().rstrip("b")
    unit = value[-1:] if value[-1:] in _UNITS and not value[-1:].isdigit() else ""
    try:
        number = float(value[: len(value) - len(unit)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not a number with an optional K, M, G or T") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive")
    return int(number * _UNITS[unit])


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to ``subparsers`` (``func`` runs the server until SIGINT/SIGTERM)."""
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
    p.add_argument("--max-heads", type=int, default=4,
                   help="recurrent states kept per clip, for interleaved chunks (default 4)")
    p.add_argument("--memory-budget", type=parse_size, default=4 * 1024 ** 3, metavar="SIZE",
                   help="recurrent states and inline outputs kept before idle clips are dropped (default 4G)")
    p.add_argument("--max-clips", type=int, default=32, help="clips open at once (default 32)")
    p.add_argument("--max-queued", type=int, default=64, help="frames queued per clip before refusing more (default 64)")
    p.add_argument("--preroll-limit", type=int, default=48,
                   help="a frame at most this far past the held state pre-rolls the gap (default 48)")
    p.add_argument("--cold-preroll", type=int, default=12,
                   help="past the limit, frames pre-rolled from a cold state before the asked frame (default 12)")
    p.add_argument("--inline-wait", type=float, default=3.0,
                   help="seconds an inline frame waits for the frames before it before going on cold (default 3)")
    p.add_argument("--preload", default="mobilenetv3",
                   help="comma-separated variants loaded at start ('' for none); others load on demand")
    p.add_argument("--path-map", action="append", default=[], metavar="CLIENT=SERVER",
                   help="path mapping sent to clients in hello, e.g. 'P:\\shows=/mnt/shows' (repeatable)")
    p.add_argument("--max-image-side", type=int, default=Limits.max_image_side, help="largest inline image side")
    p.add_argument("--max-message", type=parse_size, default=Limits.max_buffer_bytes, metavar="SIZE",
                   help="largest message part accepted (default 1G)")
    p.add_argument("--ready-file", help="write the bound address to this file once listening")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=run_serve)
    return p


def run_serve(args: argparse.Namespace) -> int:
    from .errors import BridgeError
    from .pathmap import PathMap
    from .server import BridgeServer, ServerConfig

    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    path_map = PathMap.parse(";".join(args.path_map))
    config = ServerConfig(
        roots=args.root, address=args.address, keys_dir=args.keys, device=args.device, workers=args.workers,
        memory_budget=args.memory_budget, max_clips=args.max_clips, max_queued_per_clip=args.max_queued, preroll_limit=args.preroll_limit,
        cold_preroll=min(args.cold_preroll, args.preroll_limit), inline_wait=args.inline_wait,
        preload=[v for v in args.preload.split(",") if v], max_heads=args.max_heads,
        threads=args.threads, path_map=path_map, ready_file=args.ready_file,
        limits=Limits(max_buffer_bytes=args.max_message, max_image_side=args.max_image_side))
    try:
        server = BridgeServer(config)
    except (ValueError, BridgeError) as error:  # a root that is not a folder, keys missing, ...
        print(f"rvm-bridge serve: error: {error}", file=sys.stderr)
        return 2
    server.serve_forever()
    return 0


def add_status_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``status``: loaded models, open clips (frame position, memory), queue, throughput."""
    p = subparsers.add_parser("status", help="show what a running bridge holds and how fast it goes")
    _client_options(p)
    p.add_argument("--json", action="store_true", help="print the raw status reply")
    p.set_defaults(func=run_status)
    return p


def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", "--server", dest="address", default=DEFAULT_ADDRESS,
                   help=f"bridge address (default {DEFAULT_ADDRESS})")
    p.add_argument("--keys", metavar="DIR", help="CURVE keys for a server started with --keys")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each reply (default 5)")


def run_status(args: argparse.Namespace) -> int:
    from .client import BridgeClient

    with BridgeClient(args.address, timeout=args.timeout, retries=1, keys_dir=args.keys) as client:
        status = client.status()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(format_status(args.address, status))
    return 0


def format_status(address: str, status: Any) -> str:
    """The human-readable ``rvm-bridge status`` report."""
    lines = [f"bridge {address}: up {status['uptime_s']:.0f} s on {status['device']}",
             f"  models loaded: {', '.join(m['variant'] for m in status['models']) or 'none'}",
             f"  queue depth: {status['queue_depth']} frames, {status['requests_in_flight']} requests in flight",
             f"  throughput: {status['throughput_fps']:.2f} frames/s over the last minute, "
             f"{status['frames_total']} frames in all",
             f"  memory: {status['memory_bytes'] / 2 ** 20:.1f} MiB of {status['memory_budget'] / 2 ** 20:.0f} MiB",
             f"  clips: {len(status['clips'])}"]
    for clip in status["clips"]:
        heads = ", ".join(f"{h['frame']}{'' if h['exact'] else '~'}" for h in clip["heads"]) or "cold"
        lines.append(f"    {clip['clip']} ({clip['kind']}, {clip['variant']}): at frame {heads}; "
                     f"{clip['frames_made']} made, {clip['queued']} queued, {'busy' if clip['busy'] else 'idle'}, "
                     f"{clip['memory_bytes'] / 2 ** 20:.1f} MiB")
    return "\n".join(lines)


def add_keys_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``keys DIR``: make a CURVE server key pair and a client key pair."""
    p = subparsers.add_parser("keys", help="make CURVE keys so a bridge can listen beyond this machine")
    p.add_argument("dir", help="folder for the keys (created)")
    p.add_argument("--force", action="store_true", help="replace keys already there")
    p.set_defaults(func=run_keys)
    return p


def run_keys(args: argparse.Namespace) -> int:
    from .keys import make_keys

    made = make_keys(args.dir, overwrite=args.force)
    print(f"server secret key: {made['server_secret']} (keep on the server; start it with --keys {args.dir})")
    print(f"give clients: {made['server_public']} and {made['client_secret']}")
    print(f"clients admitted: the public keys in {args.dir}/authorized_clients/")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m bridge_server.server [serve options]``."""
    parser = argparse.ArgumentParser(prog="python -m bridge_server.server")
    sub = parser.add_subparsers(dest="command")
    serve = add_serve_parser(sub)
    args = serve.parse_args(argv)
    return int(args.func(args))
