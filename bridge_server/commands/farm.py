"""``rvm-bridge farm openjd|deadline|opencue``: write farm jobs whose tasks are chunk renders.

Each task runs ``rvm-bridge render INPUT --frames A-B --chunk --shot-start S --preroll P ...`` on
the render node (the batch renderer, in process, on its GPU or CPU), so a farm's plates equal a
local render with the same chunks. One job per shot (``--shots`` for a list).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from typing import Any, List

from ..client.parameters import CLIP_PARAMETERS
from .render import DEFAULT_PREROLL, add_clip_options, clip_settings, frames_count

ENGINES = ("openjd", "deadline", "opencue")
# Clip settings that every template carries as job parameters; the others travel as extra words.
_IN_JOB = ("variant", "downsample_ratio", "colour_space")


def chunk_size(text: str) -> int:
    """Frames per task: a whole number (argparse type; the job refuses one under 1 in words)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of frames") from None


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "farm", help="write render-farm jobs (OpenJD, Deadline, OpenCue) whose tasks pre-roll their chunks",
        description="Write one farm job per shot. Every task renders one chunk in process and pre-rolls "
                    "from max(shot start, first frame - pre-roll) without writing those plates.")
    p.add_argument("engine", choices=ENGINES, help="openjd: job templates; deadline: job/plugin info files; "
                                                   "opencue: pyoutline job XML (or submit with --cuebot)")
    p.add_argument("input", nargs="?", help="input plate sequence pattern (or give --shots)")
    p.add_argument("--shots", metavar="CSV|FOLDER",
                   help="a shot list (CSV with columns shot,input[,frames,shot_start]) or a folder of sequences: "
                        "one job per shot; put {shot} in the output patterns")
    p.add_argument("--out", required=True, metavar="FOLDER", help="folder the job files are written to")
    p.add_argument("--frames", help="frame range (default: all on disk); gaps split it into contiguous ranges")
    p.add_argument("--shot-start", type=int, metavar="FRAME",
                   help="the shot's first frame when the range starts later (default: the range's first frame)")
    p.add_argument("--chunk", type=chunk_size, default=100, metavar="FRAMES",
                   help="frames per task (default 100; the pre-roll is paid once per task)")
    p.add_argument("--preroll", type=frames_count, default=DEFAULT_PREROLL, metavar="FRAMES",
                   help=f"frames run, not written, before each chunk (default {DEFAULT_PREROLL}, measured: "
                        "docs/farm.md)")
    p.add_argument("--alpha", help="output pattern for the alpha plates")
    p.add_argument("--foreground", help="output pattern for the foreground plates")
    p.add_argument("--rgba", help="output pattern for RGBA plates")
    add_clip_options(p)
    p.add_argument("--device", default="cpu", help="device on the render node: cpu or cuda[:N] (default cpu)")
    p.add_argument("--command", dest="node_command", default="rvm-bridge",
                   help="how a render node runs rvm-bridge (default: rvm-bridge; e.g. '/opt/rvm/bin/rvm-bridge' "
                        "or 'python -m bridge_server')")
    cue = p.add_argument_group("opencue")
    cue.add_argument("--show", default="rvm", help="OpenCue show (default rvm)")
    cue.add_argument("--cuebot", metavar="HOST", help="submit to the Cuebot at HOST instead of only writing the XML")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..farm import FarmError, deadline, opencue
    from ..farm.job import make_job
    from ..farm.shots import Shot, read_shots

    if bool(args.input) == bool(args.shots):
        raise FarmError("give an input plate sequence or --shots, one of the two")
    if args.shots and (args.frames or args.shot_start is not None):
        raise FarmError("with --shots, frames and shot starts are per shot: put them in the shot list's frames and "
                        "shot_start columns (--frames and --shot-start would be ignored)")
    shots = read_shots(args.shots) if args.shots else [Shot(_shot_name(args.input), args.input, args.frames,
                                                            args.shot_start)]
    outputs = {name: getattr(args, name) for name in ("alpha", "foreground", "rgba")}
    if len(shots) > 1 and any(value and "{shot}" not in value for value in outputs.values()):
        raise FarmError(f"{len(shots)} shots would write the same plates: put {{shot}} in the output patterns, "
                           "e.g. --alpha /out/{shot}/alpha.####.exr")
    try:
        command = shlex.split(args.node_command)
    except ValueError as exc:
        raise FarmError(f"--command {args.node_command!r} cannot be read as a command line ({exc})") from None
    if not command:
        raise FarmError("--command is empty; give how a render node runs rvm-bridge, e.g. /opt/rvm/bin/rvm-bridge")
    settings = clip_settings(args)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise FarmError(f"cannot make the job folder --out {args.out}: {exc.strerror}") from None
    for shot in shots:
        job = make_job(shot.name, shot.input, shot.frames, outputs, shot_start=shot.shot_start, chunk=args.chunk,
                       preroll=args.preroll, variant=settings["variant"],
                       downsample_ratio=settings["downsample_ratio"], colour_space=settings["colour_space"],
                       device=args.device, extra=_extra_words(settings), command=command)
        for note in job.notes:
            print(f"note: {note}")
        if args.engine == "openjd":
            written = _write_openjd(job, args.out)
        elif args.engine == "deadline":
            written = deadline.write(job, args.out)
        else:
            written = opencue.write(job, args.out, args.show)
            if args.cuebot:
                opencue.submit(job, args.cuebot, args.show)
                print(f"{job.name}: submitted to the Cuebot at {args.cuebot}")
        for path in written:
            print(path)
    return 0


def _write_openjd(job: Any, folder: str) -> List[str]:
    from ..farm import openjd

    written = []
    for kind, template in (("template", openjd.chunked_template(job)), ("fallback", openjd.fallback_template(job))):
        try:
            openjd.validate(template)
        except ImportError:
            print("note: openjd-model is not installed, so the templates were not validated "
                  "(pip install openjd-cli; openjd check FILE)")
        path = os.path.join(folder, f"{job.name}.{kind}.yaml")
        with open(path, "w", encoding="utf-8") as out:
            out.write(openjd.to_yaml(template))
        written.append(path)
    path = os.path.join(folder, f"{job.name}.params.json")
    with open(path, "w", encoding="utf-8") as out:
        json.dump(openjd.path_values(job), out, indent=2)
    return written + [path]


def _extra_words(settings: dict) -> List[str]:
    """Clip settings changed from their defaults, as the task's command-line words."""
    words: List[str] = []
    for parameter in CLIP_PARAMETERS:
        if not parameter.command_line or parameter.name in _IN_JOB:
            continue
        value = settings[parameter.name]
        if value == parameter.default:
            continue
        if parameter.kind == "boolean":
            words.append(parameter.option if value else "--no-" + parameter.option[2:])
            continue
        if parameter.kind == "path" and value and not str(value).startswith("ocio://"):
            value = os.path.abspath(value)
        words += [parameter.option, str(value)]
    return words


def _shot_name(pattern: str) -> str:
    """The job's name from the plates' file name: it names the job files and fills {shot}, so
    characters no file name may hold (on Windows too) and spaces become '_'."""
    import re

    base = os.path.basename(pattern).split(".")[0].split("#")[0].split("%")[0].split("$")[0].split("@")[0]
    return re.sub(r'[\\/:*?"<>|\s\x00-\x1f]+', "_", base).strip("._-") or "shot"
