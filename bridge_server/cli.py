"""The ``rvm-bridge`` command: ``render``, ``serve``, ``status``, ``keys``, ``demo``, ``ratios``, ``farm``, ``install``, ``fusion-matte``.

Each sub-command is a thin shell in ``bridge_server/commands/``. Every error the engine or the
bridge raises on purpose is printed as one line (exit status 1); Ctrl-C exits with 130 after
the plates in flight are written.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from rvm_engine import __version__

from .commands import demo, farm, fusion_matte, install, keys, ratios, render, serve, status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rvm-bridge", description="Robust Video Matting for compositors.")
    parser.add_argument("--version", action="version", version=f"rvm-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (render, serve, status, keys, demo, ratios, farm, install, fusion_matte):
        command.add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    import zmq

    from rvm_engine.errors import RVMError

    from .client.errors import BridgeError

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
        print(f"rvm-bridge {args.command}: cancelled; every plate on disk is complete (use --resume to carry on)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
