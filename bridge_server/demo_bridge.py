"""The bridge half of the README's demo: start a bridge, send the sample shot, stop the bridge."""

from __future__ import annotations

from pathlib import Path
from typing import List

from .launch import ServerProcess
from .remote_render import render_through_bridge


def render_sample_through_bridge(root: Path, source: str, frames: List[int], alpha: str, foreground: str) -> str:
    """Serve ``root`` from a bridge child process on a free loopback port, render ``frames`` of
    ``source`` through it into the ``alpha`` and ``foreground`` patterns, stop the bridge (its log
    goes to ``root/bridge.log``); returns a line saying how the frames were made."""
    from tqdm import tqdm

    with ServerProcess([str(root)], log_path=str(root / "bridge.log")) as server:
        with tqdm(total=len(frames), unit="frame") as bar:
            results = render_through_bridge(server.address, source, frames, alpha=alpha, foreground=foreground,
                                            progress=lambda done, total, result: bar.update(1))
        address = server.address
    in_sequence = sum(1 for result in results if result.how == "sequence" and result.exact)
    return f"through the bridge at {address} ({in_sequence} of {len(results)} frames in sequence)"
