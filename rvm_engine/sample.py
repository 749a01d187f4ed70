"""The built-in sample shot: a slow pan across scikit-image's astronaut portrait.

The portrait (NASA, public domain) ships inside the scikit-image wheel, so the shot needs no
download. Crops that move across it make a short clip with a real person in it.
"""

from __future__ import annotations

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
