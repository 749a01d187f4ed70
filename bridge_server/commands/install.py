"""``rvm-bridge install nuke DEST`` / ``rvm-bridge install resolve``: lay out a host plug-in (the
client, pyzmq per Python) where the host loads it."""

from __future__ import annotations

import argparse
from typing import Any

PLATFORM_HELP = ("artists' platforms: linux-x86_64, linux-aarch64, windows-x86_64, macos-arm64, macos-x86_64 "
                 "(default: this machine's)")
WHEELS_HELP = "take pyzmq wheels from this folder instead of PyPI (offline)"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from ..install.pathpicker import platform_name

    p = subparsers.add_parser("install", help="install a host plug-in (Nuke's RVMMatte node, Resolve's RVM Matte "
                                              "scripts)")
    hosts = p.add_subparsers(dest="host", required=True, metavar="{nuke,resolve}")

    nuke = hosts.add_parser("nuke", help="lay out the RVMMatte plug-in folder for Nuke")
    nuke.add_argument("dest", help="plug-in folder to fill (created); add it to NUKE_PATH")
    nuke.add_argument("--nuke", nargs="+", type=int, default=[13, 14, 15, 16, 17], metavar="MAJOR",
                      help="Nuke major versions to vendor pyzmq for (default: 13 14 15 16 17)")
    nuke.add_argument("--platform", nargs="+", default=[platform_name()], dest="platforms", metavar="NAME",
                      help=PLATFORM_HELP)
    nuke.add_argument("--wheels", metavar="DIR", help=WHEELS_HELP)
    nuke.set_defaults(func=run_nuke)

    resolve = hosts.add_parser("resolve", help="install the RVM Matte scripts into DaVinci Resolve's Fusion Scripts "
                                               "folder (this user's by default)")
    where = resolve.add_mutually_exclusive_group()
    where.add_argument("--all-users", action="store_true",
                       help="install into the all-users Fusion Scripts folder (needs administrator rights)")
    where.add_argument("--dest", metavar="DIR", help="install into this Fusion/Scripts folder instead")
    resolve.add_argument("--python", nargs="+", dest="pythons", metavar="X.Y",
                         help="the Pythons Resolve runs, to vendor pyzmq for (default: the one PYTHON3HOME or "
                              "FUSION_PYTHON3_HOME names, else 3.7 to 3.11; plus the abi3 wheel for 3.12 and later)")
    resolve.add_argument("--platform", nargs="+", default=[platform_name()], dest="platforms", metavar="NAME",
                         help=PLATFORM_HELP)
    resolve.add_argument("--wheels", metavar="DIR", help=WHEELS_HELP)
    resolve.add_argument("--no-pyzmq", action="store_true",
                         help="vendor no pyzmq (Resolve's Python has its own)")
    resolve.set_defaults(func=run_resolve)
    return p


def run_nuke(args: argparse.Namespace) -> int:
    from ..install.nuke import install_nuke

    done = install_nuke(args.dest, args.nuke, args.platforms, wheel_source=args.wheels)
    print("\n".join(done.lines()))
    return 0


def run_resolve(args: argparse.Namespace) -> int:
    from ..install.resolve import install_resolve

    done = install_resolve(args.dest, all_users=args.all_users, pythons=args.pythons, platforms=args.platforms,
                           wheel_source=args.wheels, with_pyzmq=not args.no_pyzmq)
    print("\n".join(done.lines()))
    return 0
