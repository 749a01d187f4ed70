"""Colour in torch: OCIO's transforms baked into a matrix and LUTs, checked against OCIO itself,
used on a GPU, and a render through them that writes what the OCIO render writes."""

from __future__ import annotations

import logging

import numpy as np
import OpenImageIO as oiio
import pytest
import torch

from rvm_engine.clip import ClipMatter, ClipSettings, prepare_plate, torch_colour
from rvm_engine.colour import SAFE_MAX, SCENE_LINEAR_REC709, SRGB_ENCODED, PlateColour
from rvm_engine.colour_torch import TOLERANCE, bake, probe_set
from rvm_engine.errors import ColourError
from rvm_engine.plates import read_plate
from rvm_engine.render import render_sequence
from rvm_engine.sample import write_sample_plates

RNG = np.random.default_rng(5)
ACES_SDR = "display:sRGB - Display/ACES 2.0 - SDR 100 nits (Rec.709)"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def model_chw(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def hwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).cpu().numpy()


def bright_plate(height: int = 48, width: int = 64) -> np.ndarray:
    """Scene-linear values around grey, with highlights from 1 to 65504 and some negatives."""
    plate = RNG.normal(0.18, 0.2, (height, width, 3)).astype(np.float32)
    plate[:8] = np.exp(RNG.uniform(0.0, np.log(SAFE_MAX), (8, width, 3)))
    plate[-4:, :8] = -np.exp(RNG.uniform(-8, 4, (4, 8, 3)))
    return plate


@pytest.mark.parametrize("space", [SCENE_LINEAR_REC709, "ACEScg", "ACES2065-1", "Linear Rec.2020"])
def test_a_scene_linear_plate_bakes_to_a_matrix_and_curves_within_1e4_of_ocio_highlights_included(space):
    colour = PlateColour(space)
    baked = bake(colour)
    assert baked is not None and not baked.identity
    plates, models = probe_set(seed=99)  # another draw than the one that accepted it
    assert plates.max() == SAFE_MAX and (plates > 1.0).mean() > 0.1 and (plates < 0).any()
    ocio_in, _ = colour.to_model(plates[:, None, :])
    torch_in, _ = baked.to_model(torch.from_numpy(plates[:, None, :]))
    assert np.abs(hwc(torch_in) - ocio_in).max() <= TOLERANCE
    ocio_out = colour.convert(models[:, None, :], inverse=True)[:, 0]
    torch_out = baked.from_model(torch.from_numpy(models.T.copy())).T.numpy()
    assert np.abs(torch_out - ocio_out).max() <= TOLERANCE


def test_highlights_above_one_clip_to_white_through_torch_as_through_ocio():
    plate = np.array([[[1.0, 4.0, 50.0], [SAFE_MAX, 1.5, 0.18], [-0.5, 0.0, 2.0]]], np.float32)
    for space in (SCENE_LINEAR_REC709, "ACEScg"):
        colour = PlateColour(space)
        model, _ = bake(colour).to_model(torch.from_numpy(plate))
        np.testing.assert_allclose(hwc(model), colour.to_model(plate)[0], atol=TOLERANCE)
        assert model.min() >= 0.0 and model.max() <= 1.0


def test_the_foreground_comes_back_as_ocio_brings_it_with_the_plate_kept_where_the_model_left_it():
    colour = PlateColour("ACEScg")
    baked = bake(colour)
    plate = bright_plate()
    plate[20, 20] = (np.nan, np.inf, -np.inf)
    plate[32, 10:20] = (12.0, 3.0, 1.5)  # a highlight the model will leave alone
    model, bad = colour.to_model(plate)
    torch_model, torch_bad = baked.to_model(torch.from_numpy(plate))
    assert bad == torch_bad == 1
    fgr = np.clip(model + RNG.normal(0, 0.05, model.shape).astype(np.float32), 0, 1)
    fgr[30:] = model[30:]  # the model left the lower rows alone
    alpha = np.zeros(plate.shape[:2], np.float32)
    alpha[10:40, 5:50] = 0.7
    expected = colour.foreground_to_plate(fgr, model, plate, alpha=alpha)
    got = baked.foreground_to_plate(model_chw(fgr), model_chw(model), torch.from_numpy(plate),
                                    alpha=torch.from_numpy(alpha)).numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)
    safe = np.nan_to_num(plate, nan=0.0, posinf=SAFE_MAX, neginf=0.0)
    # Exactly the plate where the model left it alone (highlights above 1 included) and outside the matte.
    assert np.array_equal(got[30:40, 5:50], safe[30:40, 5:50])
    assert np.array_equal(got[:10], safe[:10]) and np.array_equal(got[:, 50:], safe[:, 50:])
    nothing = baked.foreground_to_plate(model_chw(fgr), model_chw(model), torch.from_numpy(plate),
                                        alpha=torch.zeros(alpha.shape))
    assert np.array_equal(nothing.numpy(), safe)


def test_an_srgb_plate_goes_through_torch_exactly_as_through_numpy():
    colour = PlateColour(SRGB_ENCODED)
    baked = bake(colour)
    assert colour.identity and baked.identity
    plate = RNG.random((16, 24, 3), dtype=np.float32) * 1.2 - 0.1
    model, _ = colour.to_model(plate)
    torch_model, _ = baked.to_model(torch.from_numpy(plate))
    assert np.array_equal(hwc(torch_model), model)
    fgr = np.clip(model + 0.1, 0, 1)
    alpha = np.ones(plate.shape[:2], np.float32)
    expected = colour.foreground_to_plate(fgr, model, plate, alpha=alpha)
    got = baked.foreground_to_plate(model_chw(fgr), model_chw(model), torch.from_numpy(plate),
                                    alpha=torch.from_numpy(alpha))
    assert np.array_equal(got.numpy(), expected)
    # Out of the model's space into the plate's is nothing for an sRGB plate (values read in 0..1).
    back = baked.from_model(model_chw(np.clip(model, 0, 1) * 1.5 - 0.25))
    assert np.array_equal(hwc(back), np.clip(np.clip(model, 0, 1) * 1.5 - 0.25, 0, 1))


def test_a_display_view_and_a_log_plate_stay_on_ocio_and_the_log_says_so_once(caplog):
    cases = [PlateColour(SCENE_LINEAR_REC709, to_model=ACES_SDR), PlateColour("ACEScct")]
    with caplog.at_level(logging.WARNING, logger="rvm_engine.colour"):
        for colour in cases:
            assert bake(colour) is None
            assert bake(colour) is None  # asked again: decided once
    lines = [r.getMessage() for r in caplog.records if "stays on the CPU through OCIO" in r.getMessage()]
    assert len(lines) == 2 and "ACES 2.0" in lines[0] and "ACEScct" in lines[1]
    settings = ClipSettings(colour_on="torch", to_model=ACES_SDR)
    assert torch_colour(settings, cases[0]) is None  # torch asked for, OCIO used


def test_an_untonemapped_display_view_is_a_matrix_and_curve_and_bakes_with_its_cap():
    colour = PlateColour(SCENE_LINEAR_REC709, to_model="display:sRGB - Display/Un-tone-mapped")
    baked = bake(colour)
    assert baked is not None and baked.display_cap == pytest.approx(0.95)
    plate = np.abs(bright_plate(16, 16))
    model, _ = colour.to_model(plate)
    fgr = np.clip(model * 0.9 + 0.08, 0, 1)
    expected = colour.foreground_to_plate(fgr, model, plate)
    got = baked.foreground_to_plate(model_chw(fgr), model_chw(model), torch.from_numpy(plate))
    np.testing.assert_allclose(got.numpy(), expected, atol=TOLERANCE, rtol=0)


def test_colour_runs_in_torch_on_cuda_by_default_and_on_ocio_on_the_cpu():
    colour = PlateColour("ACEScg")
    assert torch_colour(ClipSettings(), colour) is None
    assert torch_colour(ClipSettings(colour_on="torch"), colour) is not None
    assert torch_colour(ClipSettings(device="cuda", colour_on="ocio"), colour) is None
    with pytest.raises(ColourError, match="colour_on 'gpu'"):
        ClipSettings(alpha="a.####.exr", colour_on="gpu").check()


def test_the_bridge_and_the_in_process_render_prepare_a_plate_the_same_way(rvm_model, tmp_path):
    pattern = write_sample_plates(tmp_path, 1, 64, 48)
    plate = read_plate(pattern.replace("####", "1001"))
    for on in ("auto", "torch"):
        settings = ClipSettings(alpha=str(tmp_path / "a.####.exr"), colour_on=on, backend="torch")
        in_process = ClipMatter(settings, rvm_model).prepare(plate)
        through_prepare = prepare_plate(settings, plate)  # what the bridge's Engine.prepare calls
        assert type(in_process.model_rgb) is type(through_prepare.model_rgb)
        assert (on == "torch") == isinstance(in_process.model_rgb, torch.Tensor)
        if on == "auto":
            assert np.array_equal(in_process.model_rgb, through_prepare.model_rgb)
        else:
            assert torch.equal(in_process.model_rgb, through_prepare.model_rgb)


@pytest.mark.parametrize("space, backend", [(SCENE_LINEAR_REC709, "torch"), ("ACEScg", "torch"),
                                            ("ACEScg", "onnxruntime")])
def test_a_render_of_real_plates_with_torch_colour_writes_the_ocio_render_within_1e4(rvm_model, tmp_path, space,
                                                                                   backend):
    if backend != "torch":
        pytest.importorskip(backend)
    pattern = write_sample_plates(tmp_path / "plates", 4, 192, 160, step=6)
    plates = {}
    for on in ("ocio", "torch"):
        settings = ClipSettings(alpha=str(tmp_path / on / "a.####.exr"), foreground=str(tmp_path / on / "fg.####.exr"),
                                colour_space=space, colour_on=on, backend=backend, pixel_type="float",
                                downsample_ratio=0.5)
        report = render_sequence(pattern, None, settings, model=rvm_model, progress=False)
        assert len(report.written) == 4
        plates[on] = [np.asarray(oiio.ImageBuf(str(tmp_path / on / f"{kind}.{f:04d}.exr")).get_pixels(oiio.FLOAT))
                      for f in range(1001, 1005) for kind in ("a", "fg")]
    for ocio, torched in zip(plates["ocio"], plates["torch"]):
        assert np.abs(ocio - torched).max() <= TOLERANCE
    assert max(p.max() for p in plates["ocio"][1::2]) > 0.5  # real foreground, not an empty matte


@needs_cuda
def test_on_cuda_the_baked_transform_gives_the_cpus_values_and_a_render_matches_ocio(tmp_path):
    from rvm_engine.weights import load_model

    colour = PlateColour("ACEScg")
    on_cpu, on_gpu = bake(colour), bake(colour).to("cuda")
    plate = torch.from_numpy(bright_plate())
    model_cpu, _ = on_cpu.to_model(plate)
    model_gpu, _ = on_gpu.to_model(plate.cuda())
    assert (model_gpu.cpu() - model_cpu).abs().max() <= 1e-6
    fgr = (model_cpu * 0.9).clamp(0, 1)
    back_cpu = on_cpu.foreground_to_plate(fgr, model_cpu, plate)
    back_gpu = on_gpu.foreground_to_plate(fgr.cuda(), model_cpu.cuda(), plate.cuda())
    assert (back_gpu.cpu() - back_cpu).abs().max() <= 1e-5
    pattern = write_sample_plates(tmp_path / "plates", 3, 192, 160, step=6)
    out = {}
    for on in ("ocio", "auto"):
        settings = ClipSettings(alpha=str(tmp_path / on / "a.####.exr"), foreground=str(tmp_path / on / "fg.####.exr"),
                                colour_space="ACEScg", colour_on=on, device="cuda", pixel_type="float",
                                downsample_ratio=0.5)
        render_sequence(pattern, None, settings, model=load_model(device="cuda"), progress=False)
        out[on] = [read_plate(tmp_path / on / f"fg.{f:04d}.exr").pixels for f in range(1001, 1004)]
    assert max(np.abs(a - b).max() for a, b in zip(out["ocio"], out["auto"])) <= TOLERANCE


def test_a_float_plate_at_the_top_of_float32_mattes_as_through_ocio_whatever_sign_the_device_gives_a_nan():
    # ACES2065-1 at 3.4e38: the matrix's inf - inf is NaN, which OCIO's clamp makes 0. x86 gives
    # that NaN its sign bit and CUDA (or an ARM CPU) does not: the curve must read both as OCIO does.
    colour = PlateColour("ACES2065-1")
    baked = bake(colour)
    top = float(np.finfo(np.float32).max)
    plate = np.full((1, 1, 3), top, np.float32)
    ocio_in, _ = colour.to_model(plate)
    torch_in, _ = baked.to_model(torch.from_numpy(plate))
    assert np.abs(hwc(torch_in) - ocio_in).max() <= TOLERANCE and ocio_in[0, 0, 0] == 0.0
    for nan in (float("nan"), -float("nan")):
        assert float(baked._through_curve(torch.full((3, 1), nan)).clamp(0.0, 1.0).max()) == 0.0


def test_the_torch_road_reads_half_plates_as_half_and_writes_the_same_plates(rvm_model, tmp_path, monkeypatch):
    # Half plates cross to the device as half and become float32 there: the plates written must
    # be the ones a float32 read gives, bit for bit (a half is exactly a float32).
    import rvm_engine.render as render_module
    from rvm_engine import movie_frames

    pattern = write_sample_plates(tmp_path / "plates", 3, 96, 80, step=6)
    asked = []
    real = movie_frames.read_plate

    def spy(path, *, layer=None, half=False):
        plate = real(path, layer=layer, half=half)
        asked.append(plate.pixels.dtype)
        return plate

    monkeypatch.setattr(movie_frames, "read_plate", spy)
    written = {}
    for road, half in (("half", True), ("float", False)):
        monkeypatch.setattr(render_module, "reads_half", lambda settings, half=half: half)
        settings = ClipSettings(alpha=str(tmp_path / road / "a.####.exr"), foreground=str(tmp_path / road / "f.####.exr"),
                                colour_space="ACEScg", colour_on="torch", backend="torch", downsample_ratio=0.5)
        render_sequence(pattern, None, settings, model=rvm_model, progress=False)
        written[road] = [np.asarray(oiio.ImageBuf(str(tmp_path / road / f"{kind}.{f:04d}.exr")).get_pixels(oiio.FLOAT))
                         for f in range(1001, 1004) for kind in ("a", "f")]
    assert asked == [np.float16] * 3 + [np.float32] * 3
    for half_plate, float_plate in zip(written["half"], written["float"]):
        assert np.array_equal(half_plate, float_plate)
    # Which clips read half: the torch road (asked for, or auto on CUDA), not OCIO's.
    from rvm_engine.clip import reads_half

    assert reads_half(ClipSettings(colour_on="torch")) and reads_half(ClipSettings(colour_on="auto", device="cuda"))
    assert not reads_half(ClipSettings()) and not reads_half(ClipSettings(colour_on="ocio", device="cuda"))


def test_a_half_plate_whose_transform_falls_back_to_ocio_is_converted_to_float32(rvm_model, tmp_path):
    pattern = write_sample_plates(tmp_path, 1, 64, 48)
    plate = read_plate(pattern.replace("####", "1001"), half=True)
    assert plate.pixels.dtype == np.float16
    settings = ClipSettings(colour_on="torch", to_model=ACES_SDR)  # the ACES 2.0 view does not bake: OCIO
    prepared = prepare_plate(settings, plate)
    assert isinstance(prepared.model_rgb, np.ndarray) and prepared.plate.pixels.dtype == np.float32
    expected = prepare_plate(ClipSettings(colour_on="ocio", to_model=ACES_SDR), read_plate(pattern.replace("####", "1001")))
    assert np.array_equal(prepared.model_rgb, expected.model_rgb)
