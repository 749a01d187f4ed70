"""``rvm-bridge install nuke DEST``: lay out a host plug-in folder (the client, pyzmq per Python)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from ..install.pathpicker import platform_name

    p = subparsers.add_parser("install", help="install a host plug-in (Nuke's RVMMatte node)")
    p.add_argument("host", choices=["nuke"], help="the host to install for")
    p.add_argument("dest", help="plug-in folder to fill (created); add it to NUKE_PATH")
    p.add_argument("--nuke", nargs="+", type=int, default=[13, 14, 15, 16, 17], metavar="MAJOR",
                   help="Nuke major versions to vendor pyzmq for (default: 13 14 15 16 17)")
    p.add_argument("--platform", nargs="+", default=[platform_name()], dest="platforms", metavar="NAME",
                   help="artists' platforms: linux-x86_64, linux-aarch64, windows-x86_64, macos-arm64, "
                        "macos-x86_64 (default: this machine's)")
    p.add_argument("--wheels", metavar="DIR", help="take pyzmq wheels from this folder instead of PyPI (offline)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..install.nuke import install_nuke

    done = install_nuke(args.dest, args.nuke, args.platforms, wheel_source=args.wheels)
    print("\n".join(done.lines()))
    return 0
