"""OCIO straight on the array (PyOpenColorIO) gives the numbers OpenImageIO's road gives, bit for bit."""

from __future__ import annotations

import multiprocessing
import os
import time

import numpy as np
import OpenImageIO as oiio
import pytest

from rvm_engine import ocio_direct
from rvm_engine.colour import SCENE_LINEAR_REC709, PlateColour, colour_space_names, display_views
from rvm_engine.errors import ColourError, FrameInputError

RNG = np.random.default_rng(5)


def plate_values(rows: int = 24, width: int = 40) -> np.ndarray:
    """Shadows, mid-tones, highlights far above 1.0, negatives, and the edges 0 and 1 exactly."""
    parts = [RNG.random((rows, width, 3), dtype=np.float32) * scale for scale in (0.01, 1.0, 8.0, 500.0)]
    parts.append(-RNG.random((4, width, 3), dtype=np.float32))
    parts.append(np.zeros((2, width, 3), np.float32))
    parts.append(np.ones((2, width, 3), np.float32))
    return np.concatenate(parts)


def both_roads(colour: PlateColour, rgb: np.ndarray, inverse: bool) -> tuple[np.ndarray, np.ndarray]:
    return colour._convert_oiio(rgb, inverse=inverse), colour.convert(rgb, inverse=inverse)


def show_config(path, gamma: float = 2.4, *, search_path: str = "", lut: str = "curve.spi1d"):
    """A small show config: "linear", "graded" (the LUT file ``lut``, found beside the config or on
    ``search_path``) and the model's "sRGB - Texture" as a plain power of ``gamma``."""
    path.write_text(
        "ocio_profile_version: 2\n" + (f"search_path: {search_path}\n" if search_path else "")
        + "roles:\n  default: linear\n  scene_linear: linear\n"
        "displays:\n  sRGB:\n    - !<View> {name: Raw, colorspace: linear}\n"
        "colorspaces:\n"
        "  - !<ColorSpace>\n    name: linear\n"
        "  - !<ColorSpace>\n    name: graded\n"
        f"    from_scene_reference: !<FileTransform> {{src: {lut}, interpolation: linear}}\n"
        "  - !<ColorSpace>\n    name: sRGB - Texture\n"
        f"    to_scene_reference: !<ExponentTransform> {{value: [{gamma}, {gamma}, {gamma}, 1]}}\n"
    )
    return path


def spi1d(path, power: float) -> None:
    """A 17-knot 1D LUT of x ** power."""
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = np.linspace(0.0, 1.0, 17) ** power
    path.write_text("Version 1\nFrom 0.0 1.0\nLength 17\nComponents 1\n{\n" + "".join(f"  {v:.6f}\n" for v in samples) + "}\n")


@pytest.fixture
def direct_road_only(monkeypatch):
    """Fails the test if PlateColour falls back to OpenImageIO's road."""
    assert ocio_direct.why_not() is None, ocio_direct.why_not()

    def no_fallback(*args, **kwargs):
        raise AssertionError("OpenImageIO's road was taken")

    monkeypatch.setattr(PlateColour, "_convert_oiio", no_fallback)


def test_the_direct_road_is_on_exactly_when_pyopencolorio_is_openimageios_ocio_release():
    import PyOpenColorIO

    same = PyOpenColorIO.GetVersion().split(".")[:2] == oiio.get_string_attribute("opencolorio_version").split(".")[:2]
    assert (ocio_direct.why_not() is None) == same
    # This project pins the release OpenImageIO carries, so here the road is on.
    assert same, f"pyproject's opencolorio pin no longer matches OpenImageIO's OCIO {oiio.get_string_attribute('opencolorio_version')}"


def test_every_builtin_colour_space_converts_the_same_both_roads_both_ways():
    values = plate_values()
    spaces = colour_space_names()
    assert len(spaces) > 20
    for space in spaces:
        colour = PlateColour(space)
        for inverse, rgb in ((False, values), (True, np.clip(values, 0.0, 1.0))):
            oiio_road, direct = both_roads(colour, rgb, inverse)
            assert np.array_equal(oiio_road, direct, equal_nan=True), (space, inverse)


@pytest.mark.parametrize("space", [SCENE_LINEAR_REC709, "ACEScg"])
def test_every_display_view_converts_the_same_both_roads_both_ways(space):
    values = plate_values(rows=6, width=16)
    for view in display_views():
        colour = PlateColour(space, to_model=f"display:{view}")
        for inverse, rgb in ((False, values), (True, np.clip(values, 0.0, 0.95))):
            oiio_road, direct = both_roads(colour, rgb, inverse)
            assert np.array_equal(oiio_road, direct, equal_nan=True), (view, inverse)


def test_to_model_and_foreground_to_plate_match_the_openimageio_road(monkeypatch):
    plate = plate_values(rows=40, width=64)
    for space, road in ((SCENE_LINEAR_REC709, "srgb"), ("ACEScg", "srgb"), ("ACEScg", "display")):
        colour = PlateColour(space, to_model=road)
        fgr = np.clip(colour.to_model(plate)[0] + RNG.normal(0, 0.05, plate.shape).astype(np.float32), 0, 1)
        fgr[:10] = colour.to_model(plate)[0][:10]  # rows the model left alone keep the plate exactly
        alpha = np.zeros(plate.shape[:2], np.float32)
        alpha[5:70, 3:50] = 1.0
        results = []
        for setting in ("1", "0"):
            monkeypatch.setenv("RVM_BRIDGE_OCIO_DIRECT", setting)
            model, bad = colour.to_model(plate)
            results.append((model, bad, colour.foreground_to_plate(fgr, model, plate, alpha=alpha)))
        assert ocio_direct.why_not() == "RVM_BRIDGE_OCIO_DIRECT=0 in the environment"
        (model_a, bad_a, out_a), (model_b, bad_b, out_b) = results
        assert bad_a == bad_b == 0 and np.array_equal(model_a, model_b) and np.array_equal(out_a, out_b)
        assert np.array_equal(out_a[:10], plate[:10])


@pytest.mark.parametrize("shape", [(1, 5, 3), (31, 7, 3), (33, 7, 3), (97, 3, 3), (1081, 17, 3)])
@pytest.mark.parametrize("threads", [1, 2, 3, 16])
def test_bands_of_rows_on_threads_give_what_one_pass_gives(shape, threads):
    colour = PlateColour("ACEScg")
    processor = ocio_direct.cpu_processor(colour.config, colour.colour_space, colour.model_space, None, None, False)
    rgb = RNG.random(shape, dtype=np.float32) * 4
    one_pass = rgb.copy()
    ocio_direct._apply(processor, one_pass)
    before = oiio.get_int_attribute("threads")
    oiio.attribute("threads", threads)
    try:
        banded = rgb.copy()
        ocio_direct.apply_in_place(processor, banded)
    finally:
        oiio.attribute("threads", before)
    assert np.array_equal(banded, one_pass)
    assert not np.array_equal(banded, rgb)


def test_the_callers_arrays_are_never_written_and_odd_layouts_are_taken(direct_road_only):
    colour = PlateColour("ACEScg")
    base = plate_values(rows=8, width=12)
    kept = base.copy()
    flipped = base[::-1, ::2]  # negative and doubled strides
    as_double = base.astype(np.float64)
    out_flipped = colour.convert(flipped, inverse=False)
    out_double = colour.convert(as_double, inverse=False)
    assert np.array_equal(base, kept)
    assert out_flipped.flags.c_contiguous and out_flipped.dtype == np.float32
    assert np.array_equal(out_flipped, colour.convert(np.ascontiguousarray(flipped), inverse=False))
    assert np.array_equal(out_double, colour.convert(base, inverse=False))
    model = colour.to_model(base)[0]
    fgr = np.clip(model * 1.1, 0, 1)
    fgr_kept, model_kept = fgr.copy(), model.copy()
    colour.foreground_to_plate(fgr, model, base)
    assert np.array_equal(fgr, fgr_kept) and np.array_equal(model, model_kept) and np.array_equal(base, kept)


@pytest.mark.parametrize("setting", ["1", "0"])
def test_wrong_pixels_for_the_in_place_call_are_refused_by_name(setting, monkeypatch, tmp_path):
    monkeypatch.setenv("RVM_BRIDGE_OCIO_DIRECT", setting)
    colour = PlateColour("ACEScg")
    with pytest.raises(FrameInputError, match="C-contiguous float32"):
        colour.convert_in_place(np.zeros((4, 4, 3), np.float64), inverse=False)
    with pytest.raises(FrameInputError, match="C-contiguous float32"):
        colour.convert_in_place(np.zeros((4, 8, 3), np.float32)[:, ::2], inverse=False)
    locked = np.full((4, 4, 3), 0.25, np.float32)
    locked.flags.writeable = False
    with pytest.raises(FrameInputError, match="read-only"):
        colour.convert_in_place(locked, inverse=False)
    assert np.all(locked == 0.25)
    np.save(tmp_path / "p.npy", np.full((64, 8, 3), 0.25, np.float32))
    mapped = np.load(tmp_path / "p.npy", mmap_mode="r")  # read-only memory: writing would kill the process
    with pytest.raises(FrameInputError, match="read-only"):
        colour.convert_in_place(mapped, inverse=False)
    assert np.array_equal(colour.convert(mapped, inverse=False), colour.convert(np.array(mapped), inverse=False))
    for bad in (np.zeros((4, 4, 4), np.float32), np.zeros((4, 0, 3), np.float32), np.zeros((0, 4, 3), np.float32),
                np.zeros((4, 3), np.float32)):
        with pytest.raises(FrameInputError, match=r"\[height, width, 3\]"):
            colour.convert(bad, inverse=False)


def test_a_show_config_with_a_lut_file_converts_the_same_both_roads(tmp_path, monkeypatch):
    """A relative LUT path is found beside the config on the direct road too."""
    spi1d(tmp_path / "luts" / "curve.spi1d", 0.6)
    config = show_config(tmp_path / "show.ocio", search_path="luts")
    monkeypatch.setenv("OCIO", str(config))
    values = np.clip(plate_values(rows=6, width=10), 0.0, 1.0)
    for space in ("linear", "graded"):
        colour = PlateColour(space)
        assert ocio_direct.why_not() is None
        direct = colour.convert(values, inverse=False)
        monkeypatch.setenv("RVM_BRIDGE_OCIO_DIRECT", "0")
        oiio_road = colour.convert(values, inverse=False)
        monkeypatch.delenv("RVM_BRIDGE_OCIO_DIRECT")
        assert np.array_equal(direct, oiio_road)
    assert not np.array_equal(PlateColour("graded").convert(values, inverse=False),
                              PlateColour("linear").convert(values, inverse=False))


def test_a_lut_the_config_names_but_lacks_is_a_colour_error_naming_it(tmp_path, monkeypatch):
    config = show_config(tmp_path / "broken.ocio", lut="gone.spi1d")
    monkeypatch.setenv("OCIO", str(config))
    colour = PlateColour("graded")
    with pytest.raises(ColourError, match=r"gone\.spi1d"):
        colour.to_model(np.full((2, 2, 3), 0.5, np.float32))


def _convert_in_child(queue) -> None:
    colour = PlateColour("ACEScg")
    queue.put(colour.convert(np.full((200, 8, 3), 0.25, np.float32), inverse=False)[0, 0].tolist())


def test_a_forked_child_makes_its_own_threads():
    """The parent's band threads are not in a forked child; the child must not wait for them."""
    colour = PlateColour("ACEScg")
    before = oiio.get_int_attribute("threads")
    oiio.attribute("threads", 2)
    try:
        expected = colour.convert(np.full((200, 8, 3), 0.25, np.float32), inverse=False)[0, 0].tolist()
    finally:
        oiio.attribute("threads", before)
    assert ocio_direct._pool is not None  # the parent has made its pool
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_convert_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0
    assert queue.get(timeout=5) == expected


def test_an_edited_config_is_read_again_as_on_openimageios_road(tmp_path, monkeypatch):
    """A long-lived bridge must not keep serving yesterday's config."""
    config = tmp_path / "show.ocio"
    pixel = np.full((1, 1, 3), 0.25, np.float32)
    seen = []
    for gamma in (2.0, 4.0):
        show_config(config, gamma)
        os.utime(config, ns=(time.time_ns(), time.time_ns() + int(gamma)))  # a new stamp even within one tick
        direct = PlateColour("linear", config=str(config)).convert(pixel, inverse=False)
        monkeypatch.setenv("RVM_BRIDGE_OCIO_DIRECT", "0")
        assert np.array_equal(direct, PlateColour("linear", config=str(config)).convert(pixel, inverse=False))
        monkeypatch.delenv("RVM_BRIDGE_OCIO_DIRECT")
        seen.append(float(direct[0, 0, 0]))
    np.testing.assert_allclose(seen, [0.25 ** (1 / 2.0), 0.25 ** (1 / 4.0)], rtol=1e-4)


def test_context_variables_follow_the_environment_of_the_moment(tmp_path, monkeypatch):
    """A show config whose LUTs live under shots/$SHOT: changing SHOT changes the LUT, on both roads."""
    config = tmp_path / "show.ocio"
    show_config(config, search_path="shots/$SHOT")
    spi1d(tmp_path / "shots" / "sh010" / "curve.spi1d", 0.5)
    spi1d(tmp_path / "shots" / "sh020" / "curve.spi1d", 2.0)
    pixel = np.full((1, 1, 3), 0.25, np.float32)
    results = {}
    for shot in ("sh010", "sh020", "sh010"):
        monkeypatch.setenv("SHOT", shot)
        colour = PlateColour("graded", config=str(config))
        direct = colour.convert(pixel, inverse=False)
        monkeypatch.setenv("RVM_BRIDGE_OCIO_DIRECT", "0")
        assert np.array_equal(direct, colour.convert(pixel, inverse=False)), shot
        monkeypatch.delenv("RVM_BRIDGE_OCIO_DIRECT")
        results.setdefault(shot, []).append(direct)
    assert not np.array_equal(results["sh010"][0], results["sh020"][0])
    assert np.array_equal(results["sh010"][0], results["sh010"][1])


@pytest.mark.parametrize("setting", ["0", "off", "No", "FALSE", " false "])
def test_the_switch_takes_the_usual_words_for_off(setting, monkeypatch):
    monkeypatch.setenv("RVM_BRIDGE_OCIO_DIRECT", setting)
    assert ocio_direct.why_not() == f"RVM_BRIDGE_OCIO_DIRECT={setting.strip()} in the environment"
    assert ocio_direct.cpu_processor("ocio://default", "ACEScg", SCENE_LINEAR_REC709, None, None, False) is None
    assert ocio_direct.describe()["road"] == "openimageio"


def test_a_release_mismatch_says_what_to_install(monkeypatch):
    monkeypatch.setattr(ocio_direct._ocio, "GetVersion", lambda: "2.4.9")
    theirs = oiio.get_string_attribute("opencolorio_version")
    release = ".".join(theirs.split(".")[:2])
    why = ocio_direct.why_not()
    assert why == (f"PyOpenColorIO 2.4.9 is not the OCIO {theirs} built into OpenImageIO; "
                   f"pip install 'opencolorio=={release}.*' for OpenImageIO's OCIO {theirs}")
    colour = PlateColour("ACEScg")
    monkeypatch.setattr(ocio_direct, "apply_in_place", lambda *a: pytest.fail("the direct road was taken"))
    assert colour.convert(np.full((2, 2, 3), 0.5, np.float32), inverse=False).shape == (2, 2, 3)


def test_bands_are_done_on_the_callers_thread_when_no_thread_can_start(monkeypatch):
    """At interpreter shutdown the pool refuses work; the conversion still completes."""
    colour = PlateColour("ACEScg")
    rgb = RNG.random((256, 16, 3), dtype=np.float32)
    expected = colour.convert(rgb, inverse=False)

    class ShutDown:
        def submit(self, *args, **kwargs):
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    monkeypatch.setattr(ocio_direct, "_thread_pool", lambda: ShutDown())
    before = oiio.get_int_attribute("threads")
    oiio.attribute("threads", 4)
    try:
        assert np.array_equal(colour.convert(rgb, inverse=False), expected)
    finally:
        oiio.attribute("threads", before)


def test_a_binary_lut_is_a_colour_error_saying_a_file_could_not_be_read(tmp_path, monkeypatch):
    (tmp_path / "junk.cube").write_bytes(bytes(range(256)) * 8)
    config = show_config(tmp_path / "junk.ocio", lut="junk.cube")
    with pytest.raises(ColourError, match=r"junk\.cube|could not be read"):
        PlateColour("graded", config=str(config)).convert(np.full((2, 2, 3), 0.5, np.float32), inverse=False)


def test_a_colour_space_added_to_the_config_is_known_without_a_restart(tmp_path):
    config = tmp_path / "show.ocio"
    show_config(config, 2.0)
    with pytest.raises(ColourError, match="'extra'"):
        PlateColour("extra", config=str(config))
    text = config.read_text() + "  - !<ColorSpace>\n    name: extra\n"
    config.write_text(text)
    os.utime(config, ns=(time.time_ns(), time.time_ns() + 7))
    assert PlateColour("extra", config=str(config)).colour_space == "extra"


def test_an_ocioz_archive_config_converts_the_same_both_roads(tmp_path, monkeypatch):
    """The archive's LUTs are read through the config's own context, which the direct road keeps."""
    import PyOpenColorIO

    show = tmp_path / "show"
    show.mkdir()
    show_config(show / "config.ocio", 2.2, search_path="luts")
    spi1d(show / "luts" / "curve.spi1d", 0.7)
    archive = tmp_path / "show.ocioz"
    PyOpenColorIO.Config.CreateFromFile(str(show / "config.ocio")).archive(str(archive))
    values = np.clip(plate_values(rows=4, width=8), 0.0, 1.0)
    colour = PlateColour("graded", config=str(archive))
    direct = colour.convert(values, inverse=False)
    monkeypatch.setenv("RVM_BRIDGE_OCIO_DIRECT", "0")
    assert np.array_equal(direct, colour.convert(values, inverse=False))


@pytest.mark.parametrize("setting", ["1", "0"])
def test_a_binary_lut_names_itself_on_both_roads(setting, tmp_path, monkeypatch):
    monkeypatch.setenv("RVM_BRIDGE_OCIO_DIRECT", setting)
    (tmp_path / "junk.spi3d").write_bytes(b"\xff\xfe\x00\x81" * 300)
    config = show_config(tmp_path / "junk.ocio", lut="junk.spi3d")
    with pytest.raises(ColourError, match=r"junk\.spi3d"):
        PlateColour("graded", config=str(config)).to_model(np.full((2, 2, 3), 0.5, np.float32))


def test_a_binary_config_is_a_colour_error_not_a_traceback(tmp_path):
    config = tmp_path / "binary.ocio"
    config.write_bytes(b"ocio_profile_version: 2\n\xff\xfe\x81\x00" * 20)
    with pytest.raises(ColourError, match=r"binary\.ocio"):
        PlateColour("linear", config=str(config))
    with pytest.raises(ColourError, match="Cannot use the OCIO config"):
        PlateColour("linear", config=str(tmp_path / "nul\0name.ocio"))


def test_a_config_link_pointed_at_another_file_of_the_same_size_and_time_is_followed(tmp_path):
    first, second, link = tmp_path / "a.ocio", tmp_path / "b.ocio", tmp_path / "show.ocio"
    show_config(first, 2.0)
    show_config(second, 4.0)
    stamp = (1_700_000_000_000_000_000, 1_700_000_000_000_000_000)
    os.utime(first, ns=stamp)
    os.utime(second, ns=stamp)
    link.symlink_to(first)
    pixel = np.full((1, 1, 3), 0.25, np.float32)
    before = PlateColour("linear", config=str(link)).convert(pixel, inverse=False)
    link.unlink()
    link.symlink_to(second)
    after = PlateColour("linear", config=str(link)).convert(pixel, inverse=False)
    np.testing.assert_allclose([before[0, 0, 0], after[0, 0, 0]], [0.5, 0.25 ** 0.25], rtol=1e-4)
