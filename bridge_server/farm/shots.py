"""A shot list: one farm job per shot, from a CSV file or a folder of plate sequences.

CSV columns (a header row names them): ``shot`` and ``input`` are needed; ``frames`` and
``shot_start`` may be left empty (all frames on disk; the first of them). A relative input is
relative to the CSV's folder. A folder gives one shot per sequence found in it, named after it.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import List, Optional

from . import FarmError


@dataclass
class Shot:
    name: str
    input: str
    frames: Optional[str] = None
    shot_start: Optional[int] = None


def read_shots(path: str) -> List[Shot]:
    """The shots of a CSV file or a folder of sequences. Raises FarmError, naming the line."""
    shots = _from_folder(path) if os.path.isdir(path) else _from_csv(path)
    if not shots:
        raise FarmError(f"no shots in {path}")
    for shot in shots:
        check_shot_name(shot.name, path)
    names = [shot.name.casefold() for shot in shots]  # sh010 and SH010 are one file on Windows and macOS
    twice = sorted({shot.name for shot in shots if names.count(shot.name.casefold()) > 1})
    if twice:
        raise FarmError(f"shot names {', '.join(twice)} appear twice in {path}; each job needs its own name")
    return shots


def check_shot_name(name: str, where: str) -> None:
    """Refuse a shot name that cannot be a file name: job files are named after it and ``{shot}``
    puts it in output paths, so ``../x`` or ``a/b`` would write outside the folders asked for."""
    if name in (".", "..") or name.startswith(".") or any(c in _NOT_IN_NAMES or ord(c) < 32 for c in name):
        raise FarmError(f"shot name {name!r} in {where} cannot name files (job files and {{shot}} in output paths): "
                        "give one without / \\ : * ? \" < > | that does not start with '.'")


_NOT_IN_NAMES = set('/\\:*?"<>|')


def _from_csv(path: str) -> List[Shot]:
    try:
        # utf-8-sig: spreadsheets save "CSV UTF-8" with a byte-order mark before the header.
        with open(path, newline="", encoding="utf-8-sig") as table:
            reader = csv.DictReader(table)
            reader.fieldnames = [str(name).strip().lower() for name in reader.fieldnames or []]
            rows = list(reader)
    except OSError as exc:
        raise FarmError(f"cannot read shot list {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise FarmError(f"shot list {path} is not UTF-8 text; save it as CSV UTF-8") from None
    if rows and not {"shot", "input"} <= set(reader.fieldnames or []):
        found = ", ".join(reader.fieldnames or []) or "none"
        raise FarmError(f"{path}: the header row names {found}; it needs comma-separated columns shot,input "
                        "(and frames,shot_start if wanted)")
    folder = os.path.dirname(os.path.abspath(path))
    shots = []
    for line, row in enumerate(rows, start=2):
        if None in row:
            raise FarmError(f"{path} line {line}: more values than columns; quote a path that holds a comma")
        name, source = (row.get("shot") or "").strip(), (row.get("input") or "").strip()
        if not name or not source:
            raise FarmError(f"{path} line {line}: give a shot name and an input (columns shot,input)")
        start = (row.get("shot_start") or "").strip()
        if start and not start.lstrip("-").isdigit():
            raise FarmError(f"{path} line {line}: shot_start {start!r} is not a frame number")
        shots.append(Shot(name, os.path.join(folder, source), (row.get("frames") or "").strip() or None,
                          int(start) if start else None))
    return shots


def _from_folder(folder: str) -> List[Shot]:
    import fileseq

    shots = []
    for seq in sorted(fileseq.findSequencesOnDisk(folder), key=str):
        if not seq.padding():
            continue  # a lone file, not a sequence
        token = "#" * seq.zfill() if seq.zfill() > 1 else "@"  # a single # would mean four digits
        pattern = f"{seq.dirname()}{seq.basename()}{token}{seq.extension()}"
        shots.append(Shot(seq.basename().rstrip("._") or "shot", pattern))
    return shots
