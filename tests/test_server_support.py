"""Helpers for the bridge server tests: a small shot with a person in it, its in-process
reference render, a real server process, and raw sockets for sending what no well-behaved
client would."""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

import numpy as np
import zmq

from bridge_server.client.launch import ServerProcess

FIRST = 1001
SIZE = 128
# One thread per network run: steady on small shared CI machines, and the same count in the
# reference render and the bridge, so their plates can be compared bit for bit.
THREADS = 1


def shot_frames(count: int, size: int = SIZE) -> np.ndarray:
    """``count`` sRGB frames ``[T,H,W,3]``: the whole astronaut portrait, small, panning 2 px a
    frame, so the person is in every frame (RVM finds no person in a 64 px crop of her suit)."""
    from skimage.data import astronaut
    from skimage.transform import resize

    wide = resize(astronaut().astype(np.float32) / 255.0, (size, size + 2 * count), order=1,
                  anti_aliasing=True).astype(np.float32)
    return np.ascontiguousarray(np.stack([wide[:, 2 * i: 2 * i + size] for i in range(count)]))


def to_linear(rgb: np.ndarray) -> np.ndarray:
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4).astype(np.float32)


def write_shot(folder: str, count: int = 12, size: int = SIZE, name: str = "plate") -> str:
    """``count`` scene-linear half EXR plates of the portrait; returns the pattern."""
    from rvm_engine.plate_writing import write_plate

    os.makedirs(folder, exist_ok=True)
    for index, rgb in enumerate(shot_frames(count, size)):
        write_plate(os.path.join(folder, f"{name}.{FIRST + index:04d}.exr"), to_linear(rgb), ["R", "G", "B"],
                    pixel_type="half")
    return os.path.join(folder, f"{name}.####.exr")


def reference_render(pattern: str, frames: List[int], folder: str, foreground: bool = False,
                     rgba: bool = False) -> Dict[str, str]:
    """The in-process render of ``frames`` on one CPU thread, as the test bridges run (the thread
    count changes float rounding); returns the output patterns by name."""
    import torch

    from rvm_engine.clip import ClipSettings
    from rvm_engine.render import render_sequence

    outputs = {"alpha": os.path.join(folder, "alpha.####.exr")}
    if foreground:
        outputs["foreground"] = os.path.join(folder, "fg.####.exr")
    if rgba:
        outputs["rgba"] = os.path.join(folder, "rgba.####.exr")
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        render_sequence(pattern, frames, ClipSettings(**outputs), progress=False, seq_chunk=1)
    finally:
        torch.set_num_threads(threads)
    return outputs


def pixels(path: str) -> np.ndarray:
    import OpenImageIO as oiio

    image = oiio.ImageBuf(path)
    return np.asarray(image.get_pixels(oiio.FLOAT))


def frame_path(pattern: str, frame: int) -> str:
    return pattern.replace("####", f"{frame:04d}")


def same_plate(pattern_a: str, pattern_b: str, frame: int) -> bool:
    return bool(np.array_equal(pixels(frame_path(pattern_a, frame)), pixels(frame_path(pattern_b, frame))))


def has_a_person(alpha: np.ndarray) -> bool:
    """A real matte of the portrait: the person is found (alpha well above 0 somewhere), the
    background to her right is not, and a good part of the frame is background."""
    alpha = np.asarray(alpha).reshape(alpha.shape[0], alpha.shape[1], -1)[..., 0]
    size = alpha.shape[1]
    beside = alpha[size // 4: size // 2, -size // 10:]
    return bool(alpha.max() > 0.3 and beside.max() < 0.1 and (alpha < 0.05).mean() > 0.25)


def start_bridge(root: str, *extra: str, log: Optional[str] = None) -> ServerProcess:
    server = ServerProcess([root], extra_args=["--threads", str(THREADS), *extra],
                           log_path=log or os.path.join(root, "bridge.log"))
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
