"""Helpers for the bridge server tests: a small shot on disk, its in-process reference render,
a real server process, and raw sockets for sending what no well-behaved client would."""

from __future__ import annotations

import json
import os
from typing import Dict, List

import numpy as np
import zmq

from bridge_server.client.launch import ServerProcess

FIRST = 1001
# One thread per network run: steady on small shared CI machines, and the same count in the
# reference render and the bridge, so their plates can be compared bit for bit.
THREADS = 1


def write_shot(folder: str, count: int = 12, size: int = 64) -> str:
    """``count`` scene-linear EXR plates panning across the astronaut portrait; returns the pattern."""
    from rvm_engine.plates import write_plate
    from rvm_engine.sample import sample_frames

    os.makedirs(folder, exist_ok=True)
    frames = sample_frames(count=count, width=size, height=size, step=6)
    for index, rgb in enumerate(frames):
        linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4).astype(np.float32)
        write_plate(os.path.join(folder, f"plate.{FIRST + index:04d}.exr"), linear, ["R", "G", "B"], pixel_type="half")
    return os.path.join(folder, "plate.####.exr")


def reference_render(pattern: str, frames: List[int], folder: str) -> str:
    """The in-process render of ``frames`` (alpha plates) on one CPU thread, as the test bridges
    run (the thread count changes float rounding); returns the alpha pattern."""
    import torch

    from rvm_engine.clip import ClipSettings
    from rvm_engine.render import render_sequence

    alpha = os.path.join(folder, "alpha.####.exr")
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        render_sequence(pattern, frames, ClipSettings(alpha=alpha), progress=False, seq_chunk=1)
    finally:
        torch.set_num_threads(threads)
    return alpha


def pixels(path: str) -> np.ndarray:
    import OpenImageIO as oiio

    image = oiio.ImageBuf(path)
    return image.get_pixels(oiio.FLOAT)


def frame_path(pattern: str, frame: int) -> str:
    return pattern.replace("####", f"{frame:04d}")


def same_plates(pattern_a: str, pattern_b: str, frames) -> Dict[int, bool]:
    return {frame: bool(np.array_equal(pixels(frame_path(pattern_a, frame)), pixels(frame_path(pattern_b, frame))))
            for frame in frames}


def start_bridge(root: str, *extra: str) -> ServerProcess:
    server = ServerProcess([root], extra_args=["--threads", str(THREADS), *extra],
                           log_path=os.path.join(root, "bridge.log"))
    server.start()
    return server


class RawPeer:
    """A bare DEALER socket: sends any parts, reads the reply header (or nothing)."""

    def __init__(self, address: str) -> None:
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(address)

    def send(self, parts: List[bytes]) -> None:
        self.socket.send_multipart([b""] + list(parts))

    def reply(self, timeout: float = 10.0, skip_pending: bool = True):
        """The next reply, past any "still running" notes (None after ``timeout`` seconds)."""
        while self.socket.poll(int(timeout * 1000)):
            parts = self.socket.recv_multipart()
            header = json.loads(parts[1])
            if not (skip_pending and header.get("pending")):
                return header, parts[2:]
        return None

    def close(self) -> None:
        self.socket.close(0)
