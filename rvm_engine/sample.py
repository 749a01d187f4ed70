"""The built-in sample shot: a slow pan across scikit-image's astronaut portrait.

The portrait (NASA, public domain) ships inside the scikit-image wheel, so the shot needs no
download. Crops that move across it make a short clip with a real person in it.
"""

from __future__ import annotations

import os
from typing import Union

import numpy as np


def sample_frames(count: int = 12, width: int = 320, height: int = 384, step: int = 8) -> np.ndarray:
    """``count`` frames ``[T,H,W,3]`` float32 sRGB 0..1, panning right by ``step`` px a frame.

    Frames larger than the 512x512 portrait are scaled up from it (bilinear) first.
    """
    from skimage.data import astronaut
    from skimage.transform import resize

    portrait = astronaut().astype(np.float32) / 255.0
    span = width + step * (count - 1)
    scale = max(span / portrait.shape[1], height / portrait.shape[0], 1.0)
    if scale > 1.0:
        size = (int(np.ceil(portrait.shape[0] * scale)), int(np.ceil(portrait.shape[1] * scale)))
        portrait = resize(portrait, size, order=1, anti_aliasing=False).astype(np.float32)
    top = (portrait.shape[0] - height) // 2
    left0 = (portrait.shape[1] - span) // 2
    frames = [portrait[top : top + height, left0 + i * step : left0 + i * step + width] for i in range(count)]
    return np.ascontiguousarray(np.stack(frames))


def write_sample_plates(folder: Union[str, os.PathLike], count: int = 12, width: int = 320, height: int = 384,
                        step: int = 8, first: int = 1001) -> str:
    """The sample shot as scene-linear Rec.709 half EXRs ``sample.####.exr`` (as a host writes
    plates); returns the pattern. Frames are numbered from ``first``."""
    import OpenImageIO as oiio

    from .colour import SCENE_LINEAR_REC709, SRGB_ENCODED
    from .plate_writing import write_plate

    os.makedirs(folder, exist_ok=True)
    for i, frame in enumerate(sample_frames(count=count, width=width, height=height, step=step)):
        buf = oiio.ImageBufAlgo.colorconvert(oiio.ImageBuf(frame), SRGB_ENCODED, SCENE_LINEAR_REC709)
        linear = np.asarray(buf.get_pixels(oiio.FLOAT), np.float32).reshape(frame.shape)
        write_plate(os.path.join(folder, f"sample.{first + i:04d}.exr"), linear, ["R", "G", "B"])
    return os.path.join(os.fspath(folder), "sample.####.exr")
