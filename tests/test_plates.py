"""Plates on disk: what a compositor hands over, and what comes back, through OpenImageIO."""

from __future__ import annotations

import os

import numpy as np
import OpenImageIO as oiio
import pytest

from rvm_engine import plate_writing
from rvm_engine.errors import PlateError
from rvm_engine.plate_writing import EXR_COMPRESSIONS, check_compression, write_plate
from rvm_engine.plates import read_plate

RNG = np.random.default_rng(7)


def _exr(
    path,
    pixels,
    channels,
    *,
    data_window=None,
    display_window=None,
    pixel_type="half",
    compression="zip",
    attrs=None,
):
    """Write an EXR with OpenImageIO directly (independent of write_plate)."""
    h, w, c = pixels.shape
    spec = oiio.ImageSpec(w, h, c, pixel_type)
    spec.channelnames = tuple(channels)
    if data_window:
        spec.x, spec.y = data_window[0], data_window[1]
    dw = display_window or (spec.x, spec.y, w, h)
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = dw
    spec.attribute("compression", compression)
    for name, value in (attrs or {}).items():
        if isinstance(value, tuple) and len(value) == 2 and name != "FramesPerSecond":
            spec.attribute(name, oiio.TypeTimeCode, value)
        elif name == "FramesPerSecond":
            spec.attribute(name, oiio.TypeRational, value)
        elif name == "worldToCamera":
            spec.attribute(name, oiio.TypeMatrix, value)
        else:
            spec.attribute(name, value)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(np.ascontiguousarray(pixels, np.float32))
    out.close()
    return str(path)


def _open(path):
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None, oiio.geterror()
    spec = inp.spec()
    pixels = inp.read_image(oiio.FLOAT)
    inp.close()
    return spec, pixels


def _half(x):
    return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)


# ---------------------------------------------------------------- channel selection


def test_plain_rgb_is_read_and_alpha_and_depth_are_ignored(tmp_path):
    px = RNG.random((12, 16, 5), dtype=np.float32) * 3
    path = _exr(tmp_path / "plate.1001.exr", px, ["R", "G", "B", "A", "Z"])
    plate = read_plate(path)
    assert plate.channels == ["R", "G", "B"]
    assert plate.pixels.shape == (12, 16, 3) and plate.pixels.dtype == np.float32
    np.testing.assert_array_equal(plate.pixels, _half(px[..., :3]))
    assert plate.layer is None and plate.pixel_type == "half" and plate.format_name == "openexr"
    assert set(plate.file_channels) == {"R", "G", "B", "A", "Z"}


def test_beauty_layer_is_read_by_name_next_to_plain_rgb(tmp_path):
    plain, beauty = np.full((4, 4, 3), 0.25, np.float32), RNG.random((4, 4, 3), dtype=np.float32)
    path = _exr(
        tmp_path / "multi.exr",
        np.concatenate([plain, beauty], axis=2),
        ["R", "G", "B", "beauty.R", "beauty.G", "beauty.B"],
    )
    np.testing.assert_array_equal(read_plate(path).pixels, plain)
    picked = read_plate(path, layer="beauty")
    assert picked.channels == ["beauty.R", "beauty.G", "beauty.B"] and picked.layer == "beauty"
    np.testing.assert_array_equal(picked.pixels, _half(beauty))


def test_rgba_layer_is_chosen_when_there_is_no_plain_rgb(tmp_path):
    px = RNG.random((4, 4, 6), dtype=np.float32)
    names = ["diffuse.R", "diffuse.G", "diffuse.B", "rgba.R", "rgba.G", "rgba.B"]
    plate = read_plate(_exr(tmp_path / "cg.exr", px, names))
    assert plate.layer == "rgba"
    np.testing.assert_array_equal(plate.pixels, _half(px[..., 3:]))


def test_nuke_red_green_blue_channel_names_are_understood(tmp_path):
    px = RNG.random((4, 4, 3), dtype=np.float32)
    plate = read_plate(_exr(tmp_path / "nk.exr", px, ["beauty.red", "beauty.green", "beauty.blue"]))
    assert plate.layer == "beauty"
    np.testing.assert_array_equal(plate.pixels, _half(px))


def test_several_candidate_layers_without_a_favourite_ask_the_artist_to_choose(tmp_path):
    px = RNG.random((4, 4, 6), dtype=np.float32)
    path = _exr(tmp_path / "aovs.exr", px, ["diffuse.R", "diffuse.G", "diffuse.B", "spec.R", "spec.G", "spec.B"])
    with pytest.raises(PlateError, match="aovs.exr") as err:
        read_plate(path)
    assert "'diffuse'" in str(err.value) and "'spec'" in str(err.value) and "layer=" in str(err.value)
    np.testing.assert_array_equal(read_plate(path, layer="spec").pixels, _half(px[..., 3:]))


def test_asking_for_a_missing_layer_lists_the_layers_found(tmp_path):
    path = _exr(tmp_path / "p.exr", np.zeros((2, 2, 3), np.float32), ["R", "G", "B"])
    with pytest.raises(PlateError, match="no layer 'beauty'") as err:
        read_plate(path, layer="beauty")
    assert "plain R,G,B" in str(err.value) and "p.exr" in str(err.value)


def test_multipart_exr_part_is_chosen_by_its_name(tmp_path):
    path = str(tmp_path / "parts.exr")
    s1 = oiio.ImageSpec(4, 4, 3, "half")
    s1.attribute("oiio:subimagename", "rgba")
    s2 = oiio.ImageSpec(4, 4, 3, "half")
    s2.attribute("oiio:subimagename", "beauty")
    out = oiio.ImageOutput.create(path)
    assert out.open(path, [s1, s2])
    out.write_image(np.full((4, 4, 3), 0.5, np.float32))
    out.open(path, s2, "AppendSubimage")
    out.write_image(np.full((4, 4, 3), 2.0, np.float32))
    out.close()
    assert read_plate(path).pixels.max() == 0.5
    assert read_plate(path, layer="beauty").pixels.min() == 2.0
    assert read_plate(path, layer="rgba").pixels.max() == 0.5


def test_one_channel_plate_is_refused_with_what_to_do(tmp_path):
    path = _exr(tmp_path / "matte.exr", np.ones((4, 4, 1), np.float32), ["Y"])
    with pytest.raises(PlateError) as err:
        read_plate(path)
    text = str(err.value)
    assert "matte.exr" in text and "Y" in text and "R, G and B" in text


def test_plate_without_rgb_lists_its_channels(tmp_path):
    path = _exr(tmp_path / "depth.exr", np.ones((4, 4, 2), np.float32), ["A", "Z"])
    with pytest.raises(PlateError, match=r"channels found: A, Z"):
        read_plate(path)


# ---------------------------------------------------------------- windows


def test_data_window_smaller_than_display_window_is_returned_over_display_window(tmp_path):
    px = RNG.random((10, 20, 3), dtype=np.float32) + 0.5
    path = _exr(tmp_path / "dw.exr", px, ["R", "G", "B"], data_window=(30, 5), display_window=(0, 0, 64, 32))
    plate = read_plate(path)
    assert plate.display_window == (0, 0, 64, 32) and plate.data_window == (30, 5, 20, 10)
    assert plate.pixels.shape == (32, 64, 3)
    np.testing.assert_array_equal(plate.pixels[5:15, 30:50], _half(px))
    outside = plate.pixels.copy()
    outside[5:15, 30:50] = 0
    assert not outside.any()


def test_offset_display_window_and_overscan_are_cropped_to_what_the_artist_sees(tmp_path):
    px = RNG.random((30, 40, 3), dtype=np.float32) + 0.5
    # data window (90, 40)-(130, 70) overhangs the display window (100, 50, 32x16)
    path = _exr(tmp_path / "os.exr", px, ["R", "G", "B"], data_window=(90, 40), display_window=(100, 50, 32, 16))
    plate = read_plate(path)
    assert plate.display_window == (100, 50, 32, 16) and plate.pixels.shape == (16, 32, 3)
    np.testing.assert_array_equal(plate.pixels[:16, :30], _half(px[10:26, 10:40]))
    assert not plate.pixels[:, 30:].any()  # right of the data window


# ---------------------------------------------------------------- other formats


@pytest.mark.parametrize(
    ("ext", "stored", "scale"),
    [("png", "uint8", 255), ("png", "uint16", 65535), ("tif", "uint16", 65535), ("dpx", "uint16", 65535)],
)
def test_integer_plates_are_read_as_floats_in_0_1(tmp_path, ext, stored, scale):
    codes = RNG.integers(0, scale + 1, size=(6, 8, 3)).astype(np.uint8 if scale == 255 else np.uint16)
    path = str(tmp_path / f"frame.{ext}")
    out = oiio.ImageOutput.create(path)
    out.open(path, oiio.ImageSpec(8, 6, 3, stored))
    out.write_image(codes)
    out.close()
    plate = read_plate(path)
    assert plate.pixel_type == stored
    np.testing.assert_allclose(plate.pixels, codes / scale, atol=1e-6)


# ---------------------------------------------------------------- writing EXR


def test_metadata_of_the_source_is_kept_and_the_render_settings_are_added(tmp_path):
    px = RNG.random((8, 8, 3), dtype=np.float32)
    attrs = {
        "smpte:TimeCode": (0x01020304, 0),
        "FramesPerSecond": (24000, 1001),
        "cameraLens": "cooke 50mm",
        "Copyright": "show ltd",
        "ImageDescription": "plate A",
        "PixelAspectRatio": 2.0,
        "worldToCamera": tuple(float(i) for i in range(16)),
    }
    source = read_plate(
        _exr(tmp_path / "src.exr", px, ["R", "G", "B"], compression="piz", attrs=attrs, display_window=(0, 0, 8, 8))
    )
    extra = {"rvm:model": "mobilenetv3", "rvm:downsample_ratio": 0.25, "rvm:frame": 1001, "rvm:version": "0.1.0"}
    target = tmp_path / "fg.1001.exr"
    write_plate(target, source.pixels, ["R", "G", "B"], like=source, metadata=extra)
    spec, _ = _open(target)
    assert spec.getattribute("smpte:TimeCode") == (0x01020304, 0)
    assert spec.getattribute("FramesPerSecond") == (24000, 1001)
    assert spec.getattribute("cameraLens") == "cooke 50mm" and spec.getattribute("Copyright") == "show ltd"
    assert spec.getattribute("worldToCamera") == attrs["worldToCamera"]
    assert spec.get_float_attribute("PixelAspectRatio") == 2.0
    assert spec.getattribute("rvm:model") == "mobilenetv3" and spec.getattribute("rvm:frame") == 1001
    assert spec.getattribute("rvm:downsample_ratio") == pytest.approx(0.25)
    assert spec.get_string_attribute("compression") == "zip"  # ours, not the source's piz


def test_output_keeps_the_source_display_window_as_display_and_data_window(tmp_path):
    px = RNG.random((10, 20, 3), dtype=np.float32)
    source = read_plate(
        _exr(tmp_path / "dw.exr", px, ["R", "G", "B"], data_window=(30, 5), display_window=(-8, -4, 64, 32))
    )
    write_plate(tmp_path / "out.exr", source.pixels, ["R", "G", "B"], like=source)
    spec, pixels = _open(tmp_path / "out.exr")
    assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == (-8, -4, 64, 32)
    assert (spec.x, spec.y, spec.width, spec.height) == (-8, -4, 64, 32)
    np.testing.assert_array_equal(pixels, source.pixels)


def test_half_and_float_plates_are_written_as_asked(tmp_path):
    px = np.array([[[0.1, 1.0 / 3.0, 123456.0]]], np.float32)
    write_plate(tmp_path / "f.exr", px, ["R", "G", "B"], pixel_type="float")
    write_plate(tmp_path / "h.exr", px, ["R", "G", "B"], pixel_type="half")
    spec_f, pix_f = _open(tmp_path / "f.exr")
    spec_h, pix_h = _open(tmp_path / "h.exr")
    assert str(spec_f.format) == "float" and str(spec_h.format) == "half"
    np.testing.assert_array_equal(pix_f, px)
    assert pix_h[0, 0, 0] == _half(0.1) and pix_h[0, 0, 2] == 65504.0  # clamped, not Inf


@pytest.mark.parametrize(
    "compression", ["none", "rle", "zips", "zip", "piz", "pxr24", "b44", "dwaa", "dwab:45", "htj2k"]
)
def test_compressions_round_trip(tmp_path, compression):
    ramp = np.linspace(0.0, 4.0, 16 * 16, dtype=np.float32).reshape(16, 16)  # smooth, like a plate
    px = np.stack([ramp, ramp * 0.5, ramp[::-1], np.ones_like(ramp)], axis=2)
    path = tmp_path / "c.exr"
    write_plate(path, px, ["R", "G", "B", "A"], compression=compression)
    spec, pixels = _open(path)
    expected = check_compression(compression).split(":")[0]
    assert spec.get_string_attribute("compression") == expected
    lossless = compression in ("none", "rle", "zips", "zip", "piz", "htj2k")
    if lossless:
        np.testing.assert_array_equal(pixels, _half(px))
    else:  # lossy codecs: close, within about a tenth
        np.testing.assert_allclose(pixels, _half(px), rtol=0.12, atol=0.01)
    assert spec.alpha_channel == 3


def test_unknown_compression_lists_the_choices():
    with pytest.raises(PlateError, match="Unknown EXR compression 'lzw'") as err:
        check_compression("lzw")
    assert all(name in str(err.value) for name in EXR_COMPRESSIONS)
    with pytest.raises(PlateError, match="level"):
        check_compression("dwaa:high")


# ---------------------------------------------------------------- writing safely


def test_a_write_failing_half_way_leaves_no_plate_and_no_temp_file(tmp_path, monkeypatch):
    px = RNG.random((16, 8, 3), dtype=np.float32)
    seen_while_writing = []

    def fail_half_way(self, data):
        self.write_scanlines(0, 8, 0, np.ascontiguousarray(data[:8]))
        seen_while_writing.extend(os.listdir(tmp_path))
        raise RuntimeError("network share went away")

    monkeypatch.setattr(oiio.ImageOutput, "write_image", fail_half_way)
    with pytest.raises(RuntimeError, match="share went away"):
        write_plate(tmp_path / "fg.1001.exr", px, ["R", "G", "B"])
    # It was writing a hidden temporary file, never the plate itself; both are gone now.
    assert len(seen_while_writing) == 1 and seen_while_writing[0].startswith(".fg.1001.exr.")
    assert os.listdir(tmp_path) == []


def test_a_failed_rewrite_keeps_the_previous_plate_intact(tmp_path, monkeypatch):
    target = tmp_path / "fg.1001.exr"
    old = np.full((4, 4, 3), 0.5, np.float32)
    write_plate(target, old, ["R", "G", "B"])

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plate_writing.os, "replace", refuse)
    with pytest.raises(PlateError, match="fg.1001.exr.*No space left"):
        write_plate(target, np.zeros((4, 4, 3), np.float32), ["R", "G", "B"])
    assert os.listdir(tmp_path) == ["fg.1001.exr"]
    np.testing.assert_array_equal(_open(target)[1], old)


def test_missing_output_folder_is_named_with_the_fix(tmp_path):
    missing = tmp_path / "renders" / "v002"
    with pytest.raises(PlateError, match="does not exist") as err:
        write_plate(missing / "a.exr", np.zeros((2, 2, 3), np.float32), ["R", "G", "B"])
    assert str(missing) in str(err.value) and "Create it" in str(err.value)


def test_output_folder_that_is_a_file_is_refused(tmp_path):
    blocker = tmp_path / "renders"
    blocker.write_text("not a folder")
    with pytest.raises(PlateError, match="renders"):
        write_plate(blocker / "a.exr", np.zeros((2, 2, 3), np.float32), ["R", "G", "B"])


def test_pixels_that_do_not_fit_the_source_plate_are_refused(tmp_path):
    source = read_plate(_exr(tmp_path / "s.exr", np.zeros((4, 6, 3), np.float32), ["R", "G", "B"]))
    with pytest.raises(PlateError, match="3x2.*6x4"):
        write_plate(tmp_path / "o.exr", np.zeros((2, 3, 3), np.float32), ["R", "G", "B"], like=source)
    with pytest.raises(PlateError, match="channel names"):
        write_plate(tmp_path / "o.exr", np.zeros((4, 6, 3), np.float32), ["R", "G"])
    assert not (tmp_path / "o.exr").exists()


# ---------------------------------------------------------------- corrupt files


def test_truncated_exr_is_a_plate_error_naming_the_file(tmp_path):
    good = tmp_path / "good.exr"
    write_plate(good, RNG.random((64, 64, 3), dtype=np.float32), ["R", "G", "B"], compression="none")
    data = good.read_bytes()
    for cut, name in ((len(data) * 2 // 3, "cut_pixels.exr"), (200, "cut_header.exr")):
        bad = tmp_path / name
        bad.write_bytes(data[:cut])
        with pytest.raises(PlateError, match=name) as err:
            read_plate(bad)
        assert "re-render or re-copy" in str(err.value)


def test_garbage_and_missing_files_are_plate_errors(tmp_path):
    (tmp_path / "junk.exr").write_bytes(b"not an image at all" * 4)
    with pytest.raises(PlateError, match="junk.exr"):
        read_plate(tmp_path / "junk.exr")
    with pytest.raises(PlateError, match="does not exist"):
        read_plate(tmp_path / "nope.exr")


# ---------------------------------------------------------------- previews


def test_png_preview_is_quantised_to_nearest_codes_and_clamped(tmp_path):
    px = np.array([[[0.0, 0.5, 1.0], [1.5, -0.2, np.nan], [0.2, 0.71, 0.999]]], np.float32)
    write_plate(tmp_path / "p8.png", px, ["R", "G", "B"])
    write_plate(tmp_path / "p16.png", px, ["R", "G", "B"], pixel_type="uint16")
    spec8, _ = _open(tmp_path / "p8.png")
    inp = oiio.ImageInput.open(str(tmp_path / "p8.png"))
    codes8 = inp.read_image(oiio.UINT8)
    inp.close()
    assert str(spec8.format) == "uint8"
    np.testing.assert_array_equal(codes8.reshape(-1), [0, 128, 255, 255, 0, 0, 51, 181, 255])
    inp = oiio.ImageInput.open(str(tmp_path / "p16.png"))
    codes16 = inp.read_image(oiio.UINT16)
    inp.close()
    assert codes16.reshape(-1)[1] == 32768 and codes16.reshape(-1)[8] == round(0.999 * 65535)


def test_jpeg_preview_is_8_bit_and_refuses_alpha(tmp_path):
    px = RNG.random((8, 8, 3), dtype=np.float32)
    write_plate(tmp_path / "p.jpg", px, ["R", "G", "B"], pixel_type="float")
    assert read_plate(tmp_path / "p.jpg").pixel_type == "uint8"
    with pytest.raises(PlateError, match="alpha"):
        write_plate(tmp_path / "a.jpg", np.zeros((8, 8, 4), np.float32), ["R", "G", "B", "A"])


def test_unknown_extension_is_refused(tmp_path):
    with pytest.raises(PlateError, match="no writer"):
        write_plate(tmp_path / "a.xyz", np.zeros((2, 2, 3), np.float32), ["R", "G", "B"])


# ---------------------------------------------------------------- plates are ours


def _one_matte(model, out_settings):
    """A 64x64 frame matted with ``out_settings`` (a ClipSettings); returns (matter, result)."""
    from rvm_engine.clip import ClipMatter
    from rvm_engine.plates import Plate

    rgb = np.clip(RNG.random((64, 64, 3), dtype=np.float32), 0, 1)
    matter = ClipMatter(out_settings, model)
    return matter, matter.matte(Plate(rgb, ["R", "G", "B"], (0, 0, 64, 64)), 1001)


def test_plates_say_they_are_ours_in_every_format_that_can_and_a_fresh_process_reads_it(rvm_model, tmp_path):
    import subprocess
    import sys

    from rvm_engine.clip import ClipSettings
    from rvm_engine.plate_ownership import plate_is_ours

    kinds = ("exr", "png", "tif", "jpg", "dpx", "bmp")
    for ext in kinds:
        matter, result = _one_matte(rvm_model, ClipSettings(alpha=str(tmp_path / f"a.####.{ext}")))
        matter.write(result)
        assert plate_is_ours(tmp_path / f"a.1001.{ext}", "alpha")  # this process wrote it: always ours
    assert _open(tmp_path / "a.1001.exr")[0].getattribute("rvm:output") == "alpha"
    check = ("import sys; from rvm_engine.plate_ownership import plate_is_ours as ours; "
             "print(' '.join(f'{ours(p, \"alpha\")}/{ours(p, \"foreground\")}' for p in sys.argv[1:]))")
    paths = [str(tmp_path / f"a.1001.{ext}") for ext in kinds]
    said = subprocess.run([sys.executable, "-c", check, *paths], capture_output=True, text=True, check=True).stdout.split()
    # Another process reads it from the header: rvm:* in EXR and PNG, Software in TIFF, JPEG and DPX;
    # BMP keeps no text at all, so only the process that wrote it knows.
    assert dict(zip(kinds, said)) == {"exr": "True/False", "png": "True/False", "tif": "True/False",
                                      "jpg": "True/False", "dpx": "True/False", "bmp": "False/False"}


def test_a_file_that_is_not_ours_is_never_replaced_unless_overwrite_is_asked(rvm_model, tmp_path):
    from rvm_engine.clip import ClipSettings

    source = tmp_path / "plate.1001.exr"  # e.g. an output pattern typed over the plates' own folder and name
    write_plate(source, np.full((64, 64, 3), 0.25, np.float32), ["R", "G", "B"])
    before = source.read_bytes()
    matter, result = _one_matte(rvm_model, ClipSettings(alpha=str(tmp_path / "plate.####.exr")))
    with pytest.raises(PlateError) as err:
        matter.write(result)
    assert str(source) in str(err.value) and "delete it or choose another output pattern" in str(err.value)
    assert source.read_bytes() == before
    matter.settings.overwrite = True
    matter.write(result)
    assert _open(source)[0].getattribute("rvm:output") == "alpha"


def test_our_plate_of_another_output_is_not_replaced_either(rvm_model, tmp_path):
    from rvm_engine.clip import ClipSettings

    matter, result = _one_matte(rvm_model, ClipSettings(alpha=str(tmp_path / "matte.####.exr")))
    matter.write(result)
    matter, result = _one_matte(rvm_model, ClipSettings(foreground=str(tmp_path / "matte.####.exr")))
    with pytest.raises(PlateError, match="our alpha plate"):
        matter.write(result)
    assert _open(tmp_path / "matte.1001.exr")[0].channelnames == ("A",)


def test_a_bmp_from_another_run_is_refused_but_one_this_process_wrote_is_replaced(tmp_path):
    import subprocess
    import sys

    from rvm_engine.plate_ownership import check_may_replace, ours_metadata

    path = str(tmp_path / "a.1001.bmp")
    write = ("import sys, numpy as np; from rvm_engine.plate_ownership import ours_metadata; "
             "from rvm_engine.plate_writing import write_plate; "
             "write_plate(sys.argv[1], np.zeros((4, 4, 1), np.float32), ['A'], metadata=ours_metadata(sys.argv[1], 'alpha'))")
    subprocess.run([sys.executable, "-c", write, path], check=True)
    with pytest.raises(PlateError, match="not a plate rvm-bridge wrote"):
        check_may_replace(path, "alpha")
    check_may_replace(path, "alpha", overwrite=True)
    write_plate(path, np.ones((4, 4, 1), np.float32), ["A"], metadata=ours_metadata(path, "alpha"))
    check_may_replace(path, "alpha")


@pytest.mark.parametrize(
    ("alpha", "other"),
    [("a.####.exr", "a.####.exr"), ("a.####.exr", "./sub/../a.####.exr"), ("a.####.exr", "a.%04d.exr"),
     ("a.####.exr", "a.$F4.exr")],
)
def test_two_outputs_naming_one_file_are_refused_when_the_clip_is_set_up(tmp_path, alpha, other, monkeypatch):
    from rvm_engine.clip import ClipSettings

    monkeypatch.chdir(tmp_path)
    for name in ("foreground", "rgba"):
        settings = ClipSettings(alpha=str(tmp_path / alpha), **{name: other})
        with pytest.raises(PlateError, match=f"alpha and {name} outputs would write to the same file"):
            settings.check()


def test_two_paddings_that_meet_only_on_high_frames_are_refused_for_a_range_that_reaches_them(tmp_path):
    from rvm_engine.clip import ClipSettings

    settings = ClipSettings(alpha=str(tmp_path / "a.#.exr"), foreground=str(tmp_path / "a.%05d.exr"))
    settings.check()  # a.1001.exr and a.01001.exr: two files
    settings.check(range(1001, 1101))
    with pytest.raises(PlateError, match="same file"):
        settings.check(range(9990, 10010))  # a.10000.exr in both


def test_half_plates_can_be_read_as_half_and_are_the_same_numbers(tmp_path):
    # The torch colour road reads half plates as half (the device converts them): every half is
    # exactly a float32, so the pixels must be the very values the float32 read gives.
    values = np.concatenate([RNG.uniform(-2, 70000, (6, 5, 3)), np.full((1, 5, 3), np.inf)], axis=0)
    values[0, 0] = [np.nan, -np.inf, 65504]
    half = _exr(tmp_path / "half.exr", values, ["R", "G", "B"])
    as_half, as_float = read_plate(half, half=True), read_plate(half)
    assert as_half.pixels.dtype == np.float16 and as_float.pixels.dtype == np.float32
    assert np.array_equal(as_half.pixels.astype(np.float32), as_float.pixels, equal_nan=True)
    assert as_half.pixel_type == "half" and as_half.channels == as_float.channels

    # Channels stored otherwise are read as float32 whatever is asked.
    full = _exr(tmp_path / "float.exr", values[1:], ["R", "G", "B"], pixel_type="float")
    assert read_plate(full, half=True).pixels.dtype == np.float32
    png = str(tmp_path / "eight.png")
    out = oiio.ImageOutput.create(png)
    assert out.open(png, oiio.ImageSpec(5, 4, 3, "uint8"))
    assert out.write_image(np.full((4, 5, 3), 128, np.uint8))
    out.close()
    assert read_plate(png, half=True).pixels.dtype == np.float32
    # Over a larger display window (zeros around) and in R, G, B order from a B, G, R file, half too.
    window = _exr(tmp_path / "window.exr", values[1:], ["R", "G", "B"], data_window=(2, 1), display_window=(0, 0, 9, 8))
    windowed = read_plate(window, half=True).pixels
    assert windowed.dtype == np.float16 and windowed.shape == (8, 9, 3)
    assert np.array_equal(windowed.astype(np.float32), read_plate(window).pixels)
    mixed = _exr(tmp_path / "order.exr", values[1:], ["B", "G", "R"])
    assert np.array_equal(read_plate(mixed, half=True).pixels.astype(np.float32), read_plate(mixed).pixels)
