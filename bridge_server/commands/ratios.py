"""``rvm-bridge ratios``: try downsample ratios on a stretch of a shot and write a contact sheet.

Prints a table (ratio, what the network sees, ms/frame, mean alpha difference from the highest
ratio, dtSSD flicker), a suggested ratio and why, and writes one PNG to judge by eye
(``rvm_engine.contact_sheet``). In this process, or through a running bridge (``--server``),
which reads the plates and writes the sheet itself, as a host's "try ratios" button asks it to.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict, List

from ..client.parameters import TRY_RATIOS, TRY_RATIOS_MAX, TRY_RATIOS_PREROLL, TRY_RATIOS_SETTINGS
from .render import add_clip_options, clip_settings, frames_count


def ratio_list(text: str) -> List[float]:
    """``0.125,0.25,0.4`` as numbers in (0, 1] (argparse type)."""
    try:
        ratios = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of ratios, e.g. 0.25,0.4") from None
    if not 0 < len(ratios) <= TRY_RATIOS_MAX or not all(0 < ratio <= 1 for ratio in ratios):
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 to {TRY_RATIOS_MAX} ratios, each in (0, 1]")
    return ratios


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "ratios", help="try downsample ratios on a stretch of a shot: a contact sheet, a table and a suggestion",
        description="Matte a short stretch of PLATES at several downsample ratios (each after a pre-roll, so it is "
                    "judged warm), print ms/frame, the mean alpha difference from the highest ratio and dtSSD "
                    "flicker, suggest a ratio, and write a contact-sheet PNG.")
    p.add_argument("plates", help="plate sequence pattern (shot.####.exr, shot.%%04d.exr, ...)")
    p.add_argument("--frames", required=True, help="the stretch to judge, e.g. 1013-1020 (both ends included; "
                                                   "at least two frames, a dozen is plenty)")
    p.add_argument("--ratios", type=ratio_list, default=list(TRY_RATIOS), metavar="R,R,...",
                   help=f"ratios to try (default {','.join(f'{r:g}' for r in TRY_RATIOS)})")
    p.add_argument("--preroll", type=frames_count, default=TRY_RATIOS_PREROLL, metavar="FRAMES",
                   help=f"frames before the stretch run first, when on disk (default {TRY_RATIOS_PREROLL})")
    p.add_argument("--sheet", default="ratios.png", help="the contact sheet PNG to write (default ratios.png)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead of the table")
    add_clip_options(p, only=TRY_RATIOS_SETTINGS)
    local = p.add_argument_group("in this process")
    local.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    remote = p.add_argument_group("through a bridge")
    remote.add_argument("--server", metavar="ADDRESS", help="run on the bridge at ADDRESS; it reads the plates and "
                                                            "writes the sheet (both under its roots)")
    remote.add_argument("--keys", metavar="DIR", help="CURVE keys for a bridge started with --keys")
    remote.add_argument("--timeout", type=float, default=600.0,
                        help="seconds of silence from the bridge before giving up (default 600)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    figures = _through_bridge(args) if args.server else _in_process(args)
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        print(figures["table"])
        print(f"contact sheet: {figures['sheet']}")
    return 0


def _in_process(args: argparse.Namespace) -> Dict[str, Any]:
    from rvm_engine.clip import ClipSettings
    from rvm_engine.contact_sheet import check_sheet_path, write_sheet
    from rvm_engine.ratio_sweep import sweep_ratios

    settings = ClipSettings(device=args.device, **clip_settings(args))
    check_sheet_path(os.path.abspath(args.sheet))
    sweep = sweep_ratios(args.plates, args.frames, args.ratios, settings=settings, preroll=args.preroll)
    sheet = write_sheet(sweep, os.path.abspath(args.sheet))
    return dict(sweep.to_json(), sheet=sheet)


def _through_bridge(args: argparse.Namespace) -> Dict[str, Any]:
    from ..client.client import BridgeClient
    from ..client.errors import BadParameter

    if args.device != "cpu":
        raise BadParameter("--device is for runs in this process; a bridge uses its own (rvm-bridge serve --device)")
    settings = clip_settings(args)
    for key in ("checkpoint", "ocio_config"):
        if settings.get(key) and not settings[key].startswith("ocio://"):
            settings[key] = os.path.abspath(settings[key])
    with BridgeClient(args.server, timeout=args.timeout, keys_dir=args.keys, name="rvm-bridge ratios") as client:
        return client.try_ratios(os.path.abspath(args.plates), args.frames, args.ratios,
                                 sheet=os.path.abspath(args.sheet), preroll=args.preroll, settings=settings,
                                 timeout=args.timeout)
