"""``rvm-bridge keys DIR``: make CURVE keys so a bridge can listen beyond this machine."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("keys", help="make CURVE keys so a bridge can listen beyond this machine")
    p.add_argument("dir", help="folder for the keys (created)")
    p.add_argument("--force", action="store_true", help="replace keys already there")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..client.keys import make_keys

    made = make_keys(args.dir, overwrite=args.force)
    print(f"server secret key: {made['server_secret']} (keep on the server; start it with --keys {args.dir})")
    print(f"give clients: {made['server_public']} and {made['client_secret']}")
    print(f"clients admitted: the public keys in {args.dir}/authorized_clients/")
    return 0
