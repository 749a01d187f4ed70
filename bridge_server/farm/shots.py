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
    names = [shot.name for shot in shots]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise FarmError(f"shot names {', '.join(twice)} appear twice in {path}; each job needs its own name")
    return shots


def _from_csv(path: str) -> List[Shot]:
    try:
        with open(path, newline="", encoding="utf-8") as table:
            rows = list(csv.DictReader(table))
    except OSError as exc:
        raise FarmError(f"cannot read shot list {path}: {exc.strerror}") from None
    folder = os.path.dirname(os.path.abspath(path))
    shots = []
    for line, row in enumerate(rows, start=2):
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
