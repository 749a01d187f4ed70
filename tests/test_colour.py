"""Colour: a scene-linear plate into the model's sRGB and its foreground back, highlights kept."""

from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import pytest

from rvm_engine.colour import (
    DISPLAY_INVERSE_CAP,
    SCENE_LINEAR_REC709,
    SRGB_ENCODED,
    PlateColour,
    default_colour_space,
    display_views,
)
from rvm_engine.errors import ColourError, FrameInputError

RNG = np.random.default_rng(11)
ACES_SDR = "display:sRGB - Display/ACES 2.0 - SDR 100 nits (Rec.709)"


def srgb_encode(linear):
    """The sRGB curve written out (IEC 61966-2-1), independent of OCIO."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def srgb_decode(encoded):
    x = np.asarray(encoded, np.float64)
    return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4))


def oiio_convert(rgb, src, dst):
    out = oiio.ImageBufAlgo.colorconvert(
        oiio.ImageBuf(np.ascontiguousarray(rgb, np.float32)), src, dst, unpremult=False, colorconfig="ocio://default"
    )
    return out.get_pixels(oiio.FLOAT)


def test_linear_plate_reaches_the_model_through_the_srgb_curve():
    plate = RNG.random((8, 8, 3), dtype=np.float32) * 0.9 + 0.01
    model, bad = PlateColour(SCENE_LINEAR_REC709).to_model(plate)
    assert bad == 0 and model.dtype == np.float32 and model.shape == plate.shape
    np.testing.assert_allclose(model, srgb_encode(plate), atol=2e-4)


def test_highlights_clip_to_white_in_the_model_input():
    plate = np.array([[[1.0, 4.0, 50.0], [-0.5, 0.0, 0.18]]], np.float32)
    model, _ = PlateColour(SCENE_LINEAR_REC709).to_model(plate)
    np.testing.assert_allclose(model[0, 0], [1.0, 1.0, 1.0], atol=1e-6)
    assert model[0, 1, 0] == 0.0 and model.min() >= 0.0 and model.max() <= 1.0
    assert model[0, 1, 2] == pytest.approx(srgb_encode(0.18), abs=2e-4)


def test_an_srgb_png_plate_goes_to_the_model_untouched():
    plate = RNG.random((6, 6, 3), dtype=np.float32)
    colour = PlateColour(SRGB_ENCODED)
    model, _ = colour.to_model(plate)
    assert colour.identity
    np.testing.assert_array_equal(model, plate)
    fgr = np.clip(model + 0.1, 0, 1)
    np.testing.assert_allclose(colour.foreground_to_plate(fgr, model, plate), plate + (fgr - model), atol=1e-7)


def test_acescg_plate_round_trips_through_the_model_space():
    rec709 = RNG.random((8, 8, 3), dtype=np.float32) * 0.8 + 0.05  # inside sRGB's gamut and range
    acescg = oiio_convert(rec709, SCENE_LINEAR_REC709, "ACEScg")
    colour = PlateColour("ACEScg")
    model, _ = colour.to_model(acescg)
    np.testing.assert_allclose(model, srgb_encode(rec709), atol=1e-3)
    # The model halves the foreground: back in ACEScg that is the linear of the halved sRGB.
    fgr = model * 0.5
    back = colour.foreground_to_plate(fgr, model, acescg)
    expected = oiio_convert(srgb_decode(fgr).astype(np.float32), SCENE_LINEAR_REC709, "ACEScg")
    np.testing.assert_allclose(back, expected, atol=2e-3)
    # What the model leaves alone comes back exactly.
    np.testing.assert_array_equal(colour.foreground_to_plate(model, model, acescg), acescg)


def test_highlights_above_one_survive_where_the_model_leaves_colour_unchanged():
    plate = np.array([[[12.0, 4.0, 0.5], [3.0, 3.0, 3.0], [0.2, 0.3, 0.4]]], np.float32)
    colour = PlateColour(SCENE_LINEAR_REC709)
    model, _ = colour.to_model(plate)
    fgr = model.copy()
    fgr[0, 1] = 0.999  # a slight darkening of the clipped white pixel
    fgr[0, 2, 0] = 0.1  # a spill correction on one channel
    fg = colour.foreground_to_plate(fgr, model, plate)
    np.testing.assert_array_equal(fg[0, 0], plate[0, 0])  # untouched: 12.0 stays 12.0
    np.testing.assert_array_equal(fg[0, 2, 1:], plate[0, 2, 1:])
    assert 2.99 < fg[0, 1, 0] < 3.0  # still a highlight, nudged by the model's change
    assert fg[0, 2, 0] == pytest.approx(0.2 + srgb_decode(0.1) - srgb_decode(model[0, 2, 0]), abs=1e-4)


def test_nan_and_inf_are_counted_made_safe_and_never_reach_the_network():
    plate = np.full((4, 4, 3), 0.18, np.float32)
    plate[0, 0, 0] = np.nan
    plate[1, 1] = [np.inf, np.nan, 0.5]  # two bad channels, one pixel
    plate[2, 2, 2] = -np.inf
    colour = PlateColour(SCENE_LINEAR_REC709)
    model, bad = colour.to_model(plate)
    assert bad == 3
    assert np.isfinite(model).all()
    assert model[0, 0, 0] == 0.0 and model[1, 1, 0] == 1.0 and model[2, 2, 2] == 0.0
    fg = colour.foreground_to_plate(model * 0.9, model, plate)
    assert np.isfinite(fg).all()


def test_unknown_colour_space_suggests_close_names():
    with pytest.raises(ColourError) as err:
        PlateColour("ACES cg")
    text = str(err.value)
    assert "'ACES cg'" in text and "'ACEScg'" in text and "ocio://default" in text


def test_aliases_and_roles_name_colour_spaces_too():
    assert PlateColour("lin_rec709").colour_space == SCENE_LINEAR_REC709
    assert PlateColour("acescg").colour_space == "ACEScg"
    assert PlateColour("scene_linear").colour_space == "ACEScg"


def test_display_view_rolls_highlights_off_where_the_srgb_curve_clips():
    plate = np.array([[[0.18] * 3, [1.0] * 3, [4.0] * 3, [16.0] * 3]], np.float32)
    plain, _ = PlateColour(SCENE_LINEAR_REC709).to_model(plate)
    graded, _ = PlateColour(SCENE_LINEAR_REC709, to_model="display").to_model(plate)
    assert plain[0, 2, 0] == plain[0, 3, 0] == pytest.approx(1.0, abs=1e-5)
    grey = graded[0, :, 0]
    assert np.all(np.diff(grey) > 0.005) and grey[-1] <= 1.0  # 4.0 and 16.0 stay apart


def test_display_option_strings_are_parsed_against_the_config():
    assert PlateColour("ACEScg", to_model="display").to_model_name == ACES_SDR
    assert PlateColour("ACEScg", to_model=ACES_SDR).view == "ACES 2.0 - SDR 100 nits (Rec.709)"
    assert PlateColour("ACEScg", to_model="display:Un-tone-mapped").display == "sRGB - Display"
    assert ACES_SDR.partition(":")[2] in display_views()
    with pytest.raises(ColourError, match="views: .*Un-tone-mapped"):
        PlateColour("ACEScg", to_model="display:sRGB - Display/Filmic")
    with pytest.raises(ColourError, match="'srgb', 'display'"):
        PlateColour("ACEScg", to_model="aces")


def test_display_view_foreground_keeps_untouched_pixels_and_tames_the_steep_top():
    plate = np.array([[[0.18, 0.18, 0.18], [40.0, 40.0, 40.0], [0.5, 0.2, 0.1]]], np.float32)
    colour = PlateColour(SCENE_LINEAR_REC709, to_model=ACES_SDR)
    model, _ = colour.to_model(plate)
    assert model[0, 1, 0] > DISPLAY_INVERSE_CAP  # the bright pixel sits in the rolled-off top
    fgr = model.copy()
    fgr[0, 1] -= 0.002  # tiny change near white: its inverse would be tens of units
    fgr[0, 2] *= 0.8  # a real darkening in the mid-tones
    fg = colour.foreground_to_plate(fgr, model, plate)
    np.testing.assert_array_equal(fg[0, 0], plate[0, 0])
    np.testing.assert_array_equal(fg[0, 1], plate[0, 1])
    assert np.all(fg[0, 2] < plate[0, 2]) and np.all(fg[0, 2] > 0)
    assert np.isfinite(fg).all()


def test_alpha_bounds_the_work_and_the_uncovered_plate_is_kept():
    plate = RNG.random((6, 8, 3), dtype=np.float32) * 2
    colour = PlateColour(SCENE_LINEAR_REC709)
    model, _ = colour.to_model(plate)
    fgr = model * 0.5
    alpha = np.zeros((6, 8), np.float32)
    alpha[2:4, 3:5] = 0.7
    fg = colour.foreground_to_plate(fgr, model, plate, alpha=alpha)
    full = colour.foreground_to_plate(fgr, model, plate)
    np.testing.assert_array_equal(fg[2:4, 3:5], full[2:4, 3:5])
    outside = np.ones((6, 8), bool)
    outside[2:4, 3:5] = False
    np.testing.assert_array_equal(fg[outside], plate[outside])
    np.testing.assert_array_equal(colour.foreground_to_plate(fgr, model, plate, alpha=alpha * 0), plate)


def test_mismatched_shapes_are_frame_input_errors():
    colour = PlateColour(SCENE_LINEAR_REC709)
    with pytest.raises(FrameInputError, match=r"\[height, width, 3\]"):
        colour.to_model(np.zeros((4, 4), np.float32))
    with pytest.raises(FrameInputError, match="same size"):
        colour.foreground_to_plate(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


@pytest.mark.parametrize(
    ("path", "pixel_type", "expected"),
    [
        ("shot.1001.exr", None, SCENE_LINEAR_REC709),
        ("shot.1001.png", None, SRGB_ENCODED),
        ("shot.1001.jpg", "uint8", SRGB_ENCODED),
        ("scan.1001.dpx", "uint16", SRGB_ENCODED),
        ("render.tif", "float", SCENE_LINEAR_REC709),
        ("edit.mov", None, SRGB_ENCODED),
    ],
)
def test_default_colour_space_follows_the_file_format(path, pixel_type, expected):
    assert default_colour_space(path, pixel_type) == expected


def test_the_users_ocio_config_is_used_when_set(tmp_path, monkeypatch):
    config = tmp_path / "show.ocio"
    config.write_text(
        "ocio_profile_version: 2\n"
        "roles:\n  default: raw\n  scene_linear: linear\n"
        "displays:\n  sRGB:\n    - !<View> {name: Raw, colorspace: raw}\n"
        "colorspaces:\n"
        "  - !<ColorSpace>\n    name: raw\n    isdata: true\n"
        "  - !<ColorSpace>\n    name: linear\n"
        "  - !<ColorSpace>\n    name: sRGB - Texture\n"
        "    to_scene_reference: !<ExponentWithLinearTransform> {gamma: 2.4, offset: 0.055}\n"
    )
    monkeypatch.setenv("OCIO", str(config))
    colour = PlateColour("linear")
    assert colour.config == str(config) and colour.model_space == "sRGB - Texture"
    model, _ = colour.to_model(np.full((2, 2, 3), 0.214, np.float32))
    np.testing.assert_allclose(model, srgb_encode(np.float32(0.214)), atol=1e-3)
    with pytest.raises(ColourError, match="'linear'"):
        PlateColour("Linear Rec.709 (sRGB)")  # a built-in name the show config lacks


def test_a_broken_ocio_variable_is_reported_as_such(tmp_path, monkeypatch):
    monkeypatch.setenv("OCIO", str(tmp_path / "missing.ocio"))
    with pytest.raises(ColourError, match=r"missing\.ocio \(from \$OCIO\).*unset \$OCIO"):
        PlateColour("ACEScg")
