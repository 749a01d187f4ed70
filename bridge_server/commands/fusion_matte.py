"""``rvm-bridge fusion-matte``: what the Lua launcher of Comp > RVM Matte runs.

Editions that list only Lua scripts (free Resolve 21.1+) cannot run the Python comp script, so
the Lua launcher hands this command the raw facts it read from Fusion (the Loader's clip and
trims, or the MediaIn's Resolve file path and used range); the command works out the frames and
plate names with the Python script's own functions (``host_plugins.resolve.sources``), renders
through the bridge, and prints ``RVM_*`` lines the launcher wires Loaders from. No model or
protocol logic lives in Lua.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..client.errors import BridgeError
from ..client.protocol import DEFAULT_ADDRESS


def add_parser(sub: Any) -> None:
    p = sub.add_parser("fusion-matte", help="matte a Fusion Loader's or MediaIn's clip (the Lua launcher's command)")
    p.add_argument("--clip", default="", help="a Loader's Clip: one frame's file of the sequence")
    p.add_argument("--initial", type=int, default=None, help="the Loader's TOOLIT_Clip_InitialFrame")
    p.add_argument("--trim-in", type=int, default=0, help="the Loader's TOOLIT_Clip_TrimIn")
    p.add_argument("--trim-out", type=int, default=None, help="the Loader's TOOLIT_Clip_TrimOut")
    p.add_argument("--file-path", default="", help="a MediaIn's Media Pool clip's File Path (Resolve)")
    p.add_argument("--source-start", type=int, default=0, help="the timeline item's source start frame")
    p.add_argument("--duration", type=int, default=0, help="the timeline item's duration (frames)")
    p.add_argument("--comp-start", type=int, default=0, help="comp frame of the clip's first used frame")
    p.add_argument("--tool", default="Loader1", help="the matted tool's name (labels only)")
    p.add_argument("--server", default=DEFAULT_ADDRESS, help=f"bridge address (default {DEFAULT_ADDRESS})")
    p.add_argument("--variant", default="mobilenetv3")
    p.add_argument("--downsample-ratio", default="auto")
    p.add_argument("--colour-space", default="")
    p.add_argument("--frames", default="", help="first-last, both included (default: the clip's used range)")
    p.add_argument("--plates-folder", default="", help="default: rvm/ beside the source")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds of bridge silence accepted")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host_plugins.resolve import dialog, sources
    from host_plugins.resolve.messages import UserError, explain

    from ..client.render import render_through_bridge

    try:
        if args.clip:
            attrs = {"TOOLS_Name": args.tool, "TOOLST_Clip_Name": {1.0: args.clip},
                     "TOOLIT_Clip_InitialFrame": {1.0: args.initial}, "TOOLIT_Clip_TrimIn": {1.0: args.trim_in},
                     "TOOLIT_Clip_TrimOut": {1.0: args.trim_out}}
            source = sources.loader_source({key: value for key, value in attrs.items()
                                            if not (isinstance(value, dict) and value[1.0] is None)})
        else:
            source = sources.used_range(sources.resolve_file_path(args.file_path, args.tool), args.source_start,
                                        args.duration, 0)
        if source.kind != "sequence":
            raise UserError(f"RVM Matte: {source.pattern} is not an image sequence; the Lua launcher mattes file "
                            "sequences only (render it to EXRs with a Saver, load those, and run it again).")
        first, last = sources.parse_frames(args.frames, source)
        settings = dialog.MatteSettings(address=args.server, variant=args.variant,
                                        downsample_ratio=dialog.parse_ratio(args.downsample_ratio),
                                        colour_space=args.colour_space)
        plates = sources.output_patterns(source, args.plates_folder)

        def progress(done: int, total: int, result: Any) -> None:
            print(f"RVM_PROGRESS {done} {total} {result.frame}", flush=True)

        summary = render_through_bridge(args.server, source.pattern, f"{first}-{last}", alpha=plates["alpha"],
                                        foreground=plates["foreground"], settings=settings.clip_settings(),
                                        progress=progress, timeout=args.timeout, name="resolve RVM Matte (Lua)")
    except (UserError, BridgeError) as error:
        print(f"RVM_ERROR {explain(error, args.server)}", flush=True)
        return 1
    for role, pattern in plates.items():
        print(f"RVM_PLATE {role} {sources.frame_path(pattern, first)}")
    print(f"RVM_RANGE {first} {last} {args.comp_start + (first - source.first)}")
    print(f"RVM_DONE {summary.describe(args.server).splitlines()[0]}", flush=True)
    return 0

