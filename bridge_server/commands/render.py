"""``rvm-bridge render``: matte a plate sequence, in this process or through a running bridge.

The clip options (variant, downsample ratio, colour space, compression, ...) are generated from
the clip-parameter table the server describes (``bridge_server/client/parameters.py``), so the
command line, the protocol and the hosts' UI use one list and one name per idea. With
``--server`` the render needs no engine, torch or numpy here: the server plans it, reads the
source plates and writes the plates.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any, Dict, Optional, Sequence

from ..client.parameters import CLIP_PARAMETERS, Parameter
from ..client.pathmap import windows_style

DEFAULT_PREROLL = 32  # frames pre-rolled before a chunk, or a resumed frame the exact rule cannot reach
DEFAULT_RESUME_LIMIT = 1000


def frames_count(text: str) -> int:
    """A whole number of frames, 0 or more (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of frames") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} frames: give 0 or more")
    return value


def _number_or_auto(parameter: Parameter) -> Any:
    def parse(text: str) -> Optional[float]:
        if text.strip().lower() in ("auto", "none"):
            return None
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{parameter.option} {text!r} is not a number (or auto)") from None
        low, high = parameter.minimum, parameter.maximum
        if (low is not None and value <= low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{parameter.option} {value:g} must be in ({low:g}, {high:g}]")
        return value
    return parse


def add_clip_options(parser: argparse.ArgumentParser, only: Optional[Sequence[str]] = None) -> None:
    """The clip parameters a command line sets, one option each, from the one table (``only``
    those named, when given)."""
    group = parser.add_argument_group("clip settings (the same names as the bridge protocol and the hosts)")
    for parameter in CLIP_PARAMETERS:
        if not parameter.command_line or (only is not None and parameter.name not in only):
            continue
        names = [parameter.option, *parameter.aliases]
        default_text = "auto" if parameter.kind == "number" and parameter.default is None else parameter.default
        helptext = f"{parameter.help} (default: {default_text})"
        if parameter.kind == "boolean":
            group.add_argument(*names, dest=parameter.name, action=argparse.BooleanOptionalAction,
                               default=parameter.default, help=helptext)
        elif parameter.kind == "number":
            group.add_argument(*names, dest=parameter.name, type=_number_or_auto(parameter), default=parameter.default,
                               metavar="RATIO|auto", help=helptext)
        elif parameter.kind == "integer":
            group.add_argument(*names, dest=parameter.name, type=int, default=parameter.default, help=helptext)
        else:
            group.add_argument(*names, dest=parameter.name, default=parameter.default,
                               choices=list(parameter.choices) or None, help=helptext)


def clip_settings(args: argparse.Namespace) -> Dict[str, Any]:
    """The clip parameters given on the command line, by their table names."""
    return {parameter.name: getattr(args, parameter.name) for parameter in CLIP_PARAMETERS
            if parameter.command_line and hasattr(args, parameter.name)}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "render", help="matte a plate sequence into alpha / foreground plates",
        description="Matte INPUT (shot.####.exr, shot.%%04d.exr, shot.$F4.exr, shot.@@@@.exr) in frame order, "
                    "in this process or through a running bridge (--server).")
    p.add_argument("input", help="input plate sequence pattern (or one file)")
    p.add_argument("--frames", help="frame range, e.g. 1001-1100 or 1001-1100x2 (both ends included); "
                                    "default: all on disk")
    p.add_argument("--alpha", help="output pattern for the alpha plates (single A channel)")
    p.add_argument("--foreground", help="output pattern for the foreground plates (R,G,B in the input's colour space)")
    p.add_argument("--rgba", help="output pattern for RGBA plates (premultiplied unless --no-rgba-premultiplied)")
    add_clip_options(p)
    p.add_argument("--shot-start", type=int, metavar="FRAME",
                   help="the shot's first frame, when the range starts later: the state starts there (pre-rolled, "
                        "not written), so the plates equal a render of the whole shot")
    p.add_argument("--resume", action="store_true",
                   help="carry on a stopped render: complete plates are kept, and the frames before the first missing "
                        "plate are pre-rolled from the range start so the rest equal the uninterrupted render")
    p.add_argument("--resume-limit", type=frames_count, default=DEFAULT_RESUME_LIMIT, metavar="FRAMES",
                   help=f"pre-roll from the range start when within this many frames (default {DEFAULT_RESUME_LIMIT}); "
                        "beyond it --preroll frames are pre-rolled and the resumed plates are not exact (said loudly)")
    p.add_argument("--preroll", type=frames_count, default=DEFAULT_PREROLL, metavar="FRAMES",
                   help=f"frames pre-rolled past --resume-limit, or before a --chunk (default {DEFAULT_PREROLL}, "
                        "measured: docs/farm.md)")
    farm = p.add_argument_group("one chunk of a longer shot (a farm task)")
    farm.add_argument("--chunk", action="store_true",
                      help="render --frames as one chunk: pre-roll from max(shot start, first frame - --preroll), "
                           "not written, then write the chunk; --shot-start defaults to the first frame on disk; "
                           "progress as log lines")
    farm.add_argument("--within", metavar="FRAMES",
                      help="with --chunk: keep only the frames inside this range (the job's; some farms hand the "
                           "last chunk frames past its end)")
    local = p.add_argument_group("in this process")
    local.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    local.add_argument("--overwrite", action="store_true",
                       help="replace files in the outputs' way that rvm-bridge did not write (by default they are "
                            "refused, so a source or another tool's plate is never lost)")
    local.add_argument("--seq-chunk", type=int, default=1,
                       help="frames per network call, as convert_video's seq_chunk (1 gives plates identical to the "
                            "bridge)")
    remote = p.add_argument_group("through a bridge")
    remote.add_argument("--server", metavar="ADDRESS", help="render through the bridge at ADDRESS "
                                                            "(tcp://127.0.0.1:5701) instead of in this process")
    remote.add_argument("--keys", metavar="DIR", help="CURVE keys (server.key and client.key_secret) for a bridge "
                                                      "started with --keys")
    remote.add_argument("--timeout", type=float, default=300.0,
                        help="seconds of silence from the bridge before giving up (default 300)")
    remote.add_argument("--path-map", action="append", default=[], metavar="CLIENT=SERVER",
                        help="path mapping, e.g. 'P:\\shows=/mnt/shows' (repeatable; added to $RVM_BRIDGE_PATH_MAP "
                             "and the server's own rules)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..client.errors import BadParameter

    if args.chunk:
        if args.server or args.resume:
            raise BadParameter("--chunk renders in this process and rewrites its chunk whole; leave out --server "
                               "and --resume")
        return _chunk(args)
    if args.within:
        raise BadParameter("--within goes with --chunk")
    return _through_bridge(args) if args.server else _in_process(args)


def _chunk(args: argparse.Namespace) -> int:
    """One farm task: the batch renderer in this process, with the chunk rule of rvm_engine.chunks."""
    import fileseq

    from rvm_engine.chunks import render_chunk
    from rvm_engine.clip import ClipSettings

    from ..client.errors import BadParameter

    if not args.frames:
        raise BadParameter("--chunk needs --frames FIRST-LAST, the chunk's kept frames")
    frames = _frame_set(args.frames, "--frames")
    if args.within:
        inside = set(_frame_set(args.within, "--within"))
        kept = [f for f in frames if f in inside]
        if not kept:
            print(f"chunk {args.frames}: no frames inside {args.within}; nothing to render", flush=True)
            return 0
        frames = kept
    settings = ClipSettings(device=args.device, alpha=args.alpha, foreground=args.foreground, rgba=args.rgba,
                            overwrite=args.overwrite, **clip_settings(args))
    said = [0]

    def progress(done: int, total: int) -> None:
        if not args.no_progress and done > said[0]:
            said[0] = done
            print(f"rvm-bridge: {done}/{total} frames written", flush=True)

    report = render_chunk(args.input, frames, settings, shot_start=args.shot_start, preroll=args.preroll,
                          progress=progress, say=lambda line: print(line, flush=True))
    written = fileseq.FrameSet.from_iterable(report.written, sort=True) if report.written else "none"
    print(f"wrote {len(report.written)} frames ({written}) in {report.seconds:.1f} s; pre-rolled {report.prerolled}",
          flush=True)
    return 0


def _frame_set(text: str, option: str) -> list:
    import fileseq

    from ..client.errors import BadParameter

    try:
        return [int(f) for f in fileseq.FrameSet(text)]
    except (fileseq.ParseException, fileseq.MaxSizeException):
        raise BadParameter(f"{option} {text!r} is not a frame range (e.g. 1001-1008)") from None


def _in_process(args: argparse.Namespace) -> int:
    from rvm_engine.clip import ClipSettings
    from rvm_engine.render import render_sequence

    settings = ClipSettings(device=args.device, alpha=args.alpha, foreground=args.foreground, rgba=args.rgba,
                            overwrite=args.overwrite, **clip_settings(args))
    report = render_sequence(args.input, args.frames, settings, resume=args.resume, preroll=args.preroll,
                             resume_limit=args.resume_limit, shot_start=args.shot_start, seq_chunk=args.seq_chunk,
                             progress=not args.no_progress)
    line = f"wrote {len(report.written)} frames in {report.seconds:.1f} s"
    if args.resume:
        line += f"; resumed after {report.skipped} complete frames, pre-rolled {report.prerolled}"
    elif report.prerolled:
        line += f"; pre-rolled {report.prerolled}"
    if report.kept:
        line += f"; kept {report.kept} complete plates"
    if report.stray_temps:
        line += f"; removed {report.stray_temps} temporary files of stopped renders"
    if report.bad_pixels:
        line += f"; {report.bad_pixels} NaN/Inf pixels made safe"
    print(line)
    if args.resume or not report.exact:
        print(report.plan, file=sys.stdout if report.exact else sys.stderr)
    return 0


def _through_bridge(args: argparse.Namespace) -> int:
    from ..client.errors import BadParameter
    from ..client.pathmap import PathMap
    from ..client.render import render_through_bridge

    if args.device != "cpu" or args.seq_chunk != 1 or args.overwrite:
        raise BadParameter("--device, --seq-chunk and --overwrite are for renders in this process; a bridge uses its "
                           "own device (rvm-bridge serve --device) and never replaces files it did not write")
    if not (args.alpha or args.foreground or args.rgba):
        raise BadParameter("nothing to write: give at least one of --alpha, --foreground or --rgba")
    path_map = PathMap.from_environment()
    path_map.rules += PathMap.parse(";".join(args.path_map)).rules
    absolute = {name: (_absolute(getattr(args, name)) if getattr(args, name) else None)
                for name in ("alpha", "foreground", "rgba")}
    bar = _bar(not args.no_progress)
    cancel = threading.Event()
    try:
        summary = render_through_bridge(
            args.server, _absolute(args.input), args.frames, settings=_mapped_settings(args),
            shot_start=args.shot_start, resume=args.resume, preroll=args.preroll, resume_limit=args.resume_limit,
            progress=bar, cancel=cancel, timeout=args.timeout, keys_dir=args.keys, path_map=path_map,
            alpha=absolute["alpha"], foreground=absolute["foreground"], rgba=absolute["rgba"])
    finally:
        if bar is not None:
            bar.close()
    print(summary.describe(args.server))
    return 0


def _mapped_settings(args: argparse.Namespace) -> Dict[str, Any]:
    settings = clip_settings(args)
    if settings.get("checkpoint"):
        settings["checkpoint"] = _absolute(settings["checkpoint"])
    if settings.get("ocio_config") and not settings["ocio_config"].startswith("ocio://"):
        settings["ocio_config"] = _absolute(settings["ocio_config"])
    return settings


def _absolute(path: str) -> str:
    """``path`` made absolute here, except a Windows path on a POSIX machine (``P:\\shows\\...``):
    that is for the path mapping, which ``abspath`` would defeat (``/home/me/P:\\shows\\...``)."""
    return path if os.name != "nt" and windows_style(path) else os.path.abspath(path)


class _Bar:
    """A tqdm bar fed by the bridge render's progress callback."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=0, unit="frame", desc="matting", dynamic_ncols=True)

    def __call__(self, done: int, total: int, result: Any) -> None:
        if self.bar.total != total:
            self.bar.total = total
        self.bar.update(1)
        if result.how != "sequence":
            self.bar.set_postfix_str(f"{result.frame}: {result.how}")

    def close(self) -> None:
        self.bar.close()


def _bar(show: bool) -> Optional[_Bar]:
    return _Bar() if show else None
