"""The ratio contact sheet: one PNG a compositor judges downsample ratios by.

One row a ratio, lowest first, under a label strip naming the ratio, the size the network saw
and the figures. Each row shows the last judged frame as the composite over a checker and as
the alpha, then the same crop of both, enlarged with whole pixels (nearest neighbour), around
the frame's busiest matte edge (hair, where ratios differ most). The crop is outlined on the
full frames. Labels are drawn with OpenImageIO's ``render_text`` and the bundled DroidSans font;
where no font can be found the sheet is written without them, and the labels are always in the
PNG's ``ImageDescription`` too.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Optional

import numpy as np

from .errors import PlateError
from .plate_ownership import check_may_replace, ours_metadata
from .plate_writing import write_plate
from .ratio_sweep import RatioSweep

TILE_HEIGHT = 320
LABEL_HEIGHT = 30
HEADER_HEIGHT = 58
GAP = 6
BACKGROUND = np.array([0.12, 0.12, 0.12], np.float32)
TEXT = (0.95, 0.95, 0.95)
HIGHLIGHT = (1.0, 0.8, 0.2)
OUTLINE = np.array([1.0, 0.8, 0.2], np.float32)
FONTS = ("DroidSans", "DejaVuSans", "")  # OIIO's bundled font first; "" is OIIO's own default


def checker(height: int, width: int, square: int) -> np.ndarray:
    """A mid-grey checkerboard ``[H,W,3]`` (sRGB), to see both dark and light spill through."""
    ys, xs = np.indices((height, width))
    light = ((ys // square + xs // square) % 2).astype(np.float32)
    return np.repeat((0.42 + 0.2 * light)[..., None], 3, axis=-1)


def composite(foreground: np.ndarray, alpha: np.ndarray, square: int) -> np.ndarray:
    """``foreground`` (sRGB) over a checker by ``alpha``, as RVM's own composition does."""
    under = checker(alpha.shape[0], alpha.shape[1], square)
    return foreground * alpha[..., None] + under * (1.0 - alpha[..., None])


def sheet_labels(sweep: RatioSweep) -> list[str]:
    """The label of each row, in row order (lowest ratio first)."""
    labels, top = [], sweep.trials[-1].ratio
    for trial in sweep.trials:
        label = (f"ratio {trial.ratio:g}   network sees {trial.size[0]}x{trial.size[1]}   "
                 f"{trial.ms_per_frame:.0f} ms/frame   mean |a - a({top:g})| {trial.mean_difference:.4f}   "
                 f"dtSSD {trial.dtssd:.3f}")
        if trial.ratio == sweep.suggested:
            label += "   <- suggested"
        labels.append(label)
    return labels


def render_sheet(sweep: RatioSweep) -> tuple[np.ndarray, bool]:
    """The sheet as float ``[H,W,3]`` sRGB 0..1, and whether its text could be drawn."""
    assert sweep.source_rgb is not None
    height, width = sweep.source_rgb.shape[:2]
    scale = TILE_HEIGHT / height
    tile_width = max(1, round(width * scale))
    x, y, w, h = sweep.edge_box
    crop_width = max(1, round(w * TILE_HEIGHT / h))
    zoom = TILE_HEIGHT / h
    row_width = 2 * tile_width + 2 * crop_width + 5 * GAP
    row_height = LABEL_HEIGHT + TILE_HEIGHT + GAP
    sheet = np.empty((HEADER_HEIGHT + len(sweep.trials) * row_height, row_width, 3), np.float32)
    sheet[:] = BACKGROUND
    square = max(4, height // 24)
    for index, trial in enumerate(sweep.trials):
        top = HEADER_HEIGHT + index * row_height + LABEL_HEIGHT
        over = composite(trial.foreground, trial.alphas[-1], square)
        alpha = np.repeat(trial.alphas[-1][..., None], 3, axis=-1)
        tiles = [_outlined(_fit(over, TILE_HEIGHT, tile_width), sweep.edge_box, scale),
                 _outlined(_fit(alpha, TILE_HEIGHT, tile_width), sweep.edge_box, scale),
                 _enlarge(over[y:y + h, x:x + w], TILE_HEIGHT, crop_width),
                 _enlarge(alpha[y:y + h, x:x + w], TILE_HEIGHT, crop_width)]
        left = GAP
        for tile in tiles:
            sheet[top:top + TILE_HEIGHT, left:left + tile.shape[1]] = tile
            left += tile.shape[1] + GAP
    drawn = _draw_text(sheet, sweep, tile_width, crop_width, zoom, row_height)
    return np.clip(sheet, 0.0, 1.0), drawn


def write_sheet(sweep: RatioSweep, path: str, *, overwrite: bool = False) -> str:
    """Write the sheet as an 8-bit sRGB PNG at ``path`` (atomically), never over a file rvm-bridge
    did not write unless ``overwrite``; returns the path. Raises PlateError."""
    check_sheet_path(path, overwrite=overwrite)
    pixels, drawn = render_sheet(sweep)
    if not drawn:
        warnings.warn("no font for OpenImageIO's render_text: the contact sheet has no labels (they are in its "
                      "ImageDescription and the printed table)", stacklevel=2)
    labels = sheet_labels(sweep)
    metadata: dict[str, Any] = {**ours_metadata(path, "sheet"), "ImageDescription": "\n".join(
        [_title(sweep)] + labels + [f"suggested {sweep.suggested:g}: {sweep.reason}"]),
        "rvm:ratios": ",".join(f"{trial.ratio:g}" for trial in sweep.trials),
        "rvm:suggested_ratio": f"{sweep.suggested:g}", "rvm:labels_drawn": "yes" if drawn else "no"}  # PNG keeps text
    write_plate(path, pixels, ["R", "G", "B"], metadata=metadata, pixel_type="uint8")
    return path


def check_sheet_path(path: str, *, overwrite: bool = False) -> None:
    """Raise PlateError when the sheet cannot be written at ``path`` (not a .png, no such folder, a
    file there that rvm-bridge did not write): checked before the sweep, so a slip in the path is
    said at once, not after every ratio has run."""
    if not path.lower().endswith(".png"):
        raise PlateError(f"the contact sheet {path} must be a .png file; name it e.g. ratios.png")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise PlateError(f"the folder of the contact sheet {path} does not exist; create it or choose another path")
    check_may_replace(path, "sheet", overwrite=overwrite)


def _title(sweep: RatioSweep) -> str:
    width, height = sweep.frame_size
    first, last = sweep.frames[0], sweep.frames[-1]
    return (f"{os.path.basename(sweep.source)}  {width}x{height}  frames {first}-{last} judged after "
            f"{len(sweep.preroll_frames)} pre-roll frames; shown: {last}")


def _fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(image, (height, width), order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


def _enlarge(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Whole-pixel enlargement (nearest neighbour), so the matte's own pixels show."""
    ys = (np.arange(height) * image.shape[0] // height).clip(0, image.shape[0] - 1)
    xs = (np.arange(width) * image.shape[1] // width).clip(0, image.shape[1] - 1)
    return image[ys][:, xs]


def _outlined(tile: np.ndarray, box: tuple[int, int, int, int], scale: float) -> np.ndarray:
    x, y, w, h = (round(v * scale) for v in box)
    x1, y1 = min(x + w, tile.shape[1]) - 1, min(y + h, tile.shape[0]) - 1
    tile[y:y + 2, x:x1 + 1] = OUTLINE
    tile[y1 - 1:y1 + 1, x:x1 + 1] = OUTLINE
    tile[y:y1 + 1, x:x + 2] = OUTLINE
    tile[y:y1 + 1, x1 - 1:x1 + 1] = OUTLINE
    return tile


def _draw_text(sheet: np.ndarray, sweep: RatioSweep, tile_width: int, crop_width: int, zoom: float,
               row_height: int) -> bool:
    import OpenImageIO as oiio

    buf = oiio.ImageBuf(np.ascontiguousarray(sheet))
    font = _usable_font(oiio)
    if font is None:
        return False
    heads = [("composite over checker", GAP), ("alpha", 2 * GAP + tile_width),
             (f"hair / edge crop x{zoom:.3g}", 3 * GAP + 2 * tile_width),
             (f"alpha crop x{zoom:.3g}", 4 * GAP + 2 * tile_width + crop_width)]
    texts: list[tuple[int, int, str, int, tuple[float, float, float]]] = [(GAP, 22, _title(sweep), 17, TEXT)]
    texts += [(left, HEADER_HEIGHT - 8, head, 15, TEXT) for head, left in heads]
    for index, (trial, label) in enumerate(zip(sweep.trials, sheet_labels(sweep))):
        colour = HIGHLIGHT if trial.ratio == sweep.suggested else TEXT
        texts.append((GAP, HEADER_HEIGHT + index * row_height + LABEL_HEIGHT - 8, label, 18, colour))
    for left, baseline, text, size, colour in texts:
        oiio.ImageBufAlgo.render_text(buf, left, baseline, text, size, font, colour)
    sheet[:] = np.asarray(buf.get_pixels(oiio.FLOAT), np.float32).reshape(sheet.shape)
    return True


_FONT: list[Optional[str]] = []


def _usable_font(oiio: Any) -> Optional[str]:
    """The first font ``render_text`` draws with here (cached), or None."""
    if not _FONT:
        probe = oiio.ImageBuf(oiio.ImageSpec(64, 32, 3, oiio.FLOAT))
        found = None
        for font in FONTS:
            if oiio.ImageBufAlgo.render_text(probe, 2, 24, "Ag", 20, font, (1, 1, 1)):
                found = font
                break
            oiio.geterror()
        _FONT.append(found)
    return _FONT[0]

