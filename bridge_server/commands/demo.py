"""``rvm-bridge demo``: the sample shot, matted through a bridge (the README's first command)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("demo", help="matte the built-in sample shot through the bridge and write plates and "
                                           "a preview")
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--in-process", action="store_true", help="skip the bridge: render in this process")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(args.out, through_bridge=not args.in_process)
    return 0
