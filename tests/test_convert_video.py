"""convert_video, the seed's one-call matting, on real files with the real MobileNetV3.

Small clips (96x64, 6-8 frames) of the astronaut portrait: an NTSC-rate H.264 video with an AAC
sine, a PNG sequence numbered from 12, a scene-linear EXR sequence numbered from 1001.
"""

from __future__ import annotations

import os
import time
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from av.audio.stream import AudioStream

from rvm_engine.convert_video import GREEN, convert_video
from rvm_engine.errors import FrameInputError, PlateError
from rvm_engine.plate_writing import write_plate

NTSC = Fraction(24000, 1001)
WIDTH, HEIGHT, FRAMES = 96, 64, 8


# ---------------------------------------------------------------- clips on disk


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    """Eight sRGB frames [T,H,W,3] in 0..1: the whole portrait shrunk to 96 px, panning down 3 px a frame."""
    from skimage.data import astronaut
    from skimage.transform import resize

    small = resize(astronaut(), (WIDTH, WIDTH), order=1, anti_aliasing=True).astype(np.float32)
    return np.stack([small[3 * i : 3 * i + HEIGHT] for i in range(FRAMES)])


def _write_video(path: Path, frames: np.ndarray, rate: Fraction, audio_codec: str) -> None:
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate, options={"crf": "12"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = cast(AudioStream, out.add_stream(audio_codec, rate=48000))
        for i, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(np.rint(frame * 255).astype(np.uint8), format="rgb24")
            picture.pts = i
            out.mux(video.encode(picture))
        out.mux(video.encode())
        samples = round(48000 * len(frames) / rate)
        sine = (0.25 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
        sound = av.AudioFrame.from_ndarray(sine[None], format="flt", layout="mono")
        sound.sample_rate, sound.pts = 48000, 0
        out.mux(audio.encode(sound))
        out.mux(audio.encode())


@pytest.fixture(scope="module")
def ntsc_video(tmp_path_factory: pytest.TempPathFactory, portrait: np.ndarray) -> Path:
    path = tmp_path_factory.mktemp("ntsc") / "interview.mp4"
    _write_video(path, portrait, NTSC, "aac")
    return path


@pytest.fixture(scope="module")
def png_clip(tmp_path_factory: pytest.TempPathFactory, portrait: np.ndarray) -> Path:
    folder = tmp_path_factory.mktemp("png") / "plates"
    folder.mkdir()
    for i, frame in enumerate(portrait):
        write_plate(folder / f"frame_{12 + i:04d}.png", frame, ["R", "G", "B"], pixel_type="uint8")
    return folder


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


#: A specular glint on the astronaut's suit, 4x4 px at 6.0 scene-linear. It rides with the subject
#: (up 3 px a frame as the camera pans down); the real matte holds alpha 1.0 all over it in every
#: frame (measured), where a glint fixed in frame would be read as background by the network.
GLINT, GLINT_TOP, GLINT_LEFT, GLINT_SIZE = 6.0, 48, 44, 4


def _glint(i: int) -> tuple[slice, slice]:
    """Rows and columns of the glint in frame ``i`` (0-based) of the EXR clip."""
    top = GLINT_TOP - 3 * i
    return slice(top, top + GLINT_SIZE), slice(GLINT_LEFT, GLINT_LEFT + GLINT_SIZE)


@pytest.fixture(scope="module")
def exr_clip(tmp_path_factory: pytest.TempPathFactory, portrait: np.ndarray) -> Path:
    """Six scene-linear float frames shot.1001-1006.exr with a highlight at 6.0 on the suit (``_glint``)."""
    folder = tmp_path_factory.mktemp("exr")
    for i, frame in enumerate(portrait[:6]):
        linear = _srgb_to_linear(frame)
        linear[_glint(i)] = GLINT
        write_plate(folder / f"shot.{1001 + i}.exr", linear, ["R", "G", "B"], pixel_type="float")
    return folder


# ---------------------------------------------------------------- reading results back


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as box:
        return np.stack([f.to_ndarray(format="rgb24") for f in box.decode(video=0)]).astype(np.float32) / 255


def _read(path: Path) -> tuple[np.ndarray, tuple[str, ...], str, str]:
    """(float pixels [H,W,C], channel names, stored type, compression) of one image."""
    raw = oiio.ImageSpec()
    raw.attribute("oiio:UnassociatedAlpha", 1)  # PNG values as stored, not premultiplied on reading
    inp = oiio.ImageInput.open(str(path), raw)
    assert inp is not None, oiio.geterror()
    spec = inp.spec()
    pixels = inp.read_image(oiio.FLOAT)
    inp.close()
    assert pixels is not None, f"cannot read {path}"
    return (
        pixels.reshape(spec.height, spec.width, spec.nchannels),
        tuple(spec.channelnames),
        str(spec.format),
        spec.get_string_attribute("compression"),
    )


def _blocks(frames: np.ndarray) -> np.ndarray:
    t, h, w, c = frames.shape
    return frames.reshape(t, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _sequence(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


class _Recording(torch.nn.Module):
    """Passes calls to the real network and remembers how it was called.

    With ``stop_after`` the next call raises KeyboardInterrupt, once every path in ``stop_once_on_disk``
    exists (the plates are written behind, so waiting for them makes what is on disk deterministic).
    """

    def __init__(
        self, inner: torch.nn.Module, stop_after: int | None = None, stop_once_on_disk: tuple[Path, ...] = ()
    ) -> None:
        super().__init__()
        self.inner = inner
        self.stop_after = stop_after
        self.stop_once_on_disk = stop_once_on_disk
        self.calls: list[dict] = []

    def forward(self, src, *rest):  # type: ignore[no-untyped-def]
        if self.stop_after is not None and len(self.calls) >= self.stop_after:
            deadline = time.monotonic() + 60  # generous on a loaded machine; the test fails on what is missing
            while not all(p.exists() for p in self.stop_once_on_disk) and time.monotonic() < deadline:
                time.sleep(0.01)
            raise KeyboardInterrupt  # the artist pressed Ctrl-C
        out = self.inner(src, *rest)
        self.calls.append({"src": src, "rec": rest[:4], "ratio": rest[4], "grad": torch.is_grad_enabled(), "out": out})
        return out


# ---------------------------------------------------------------- video in, video out


@pytest.fixture(scope="module")
def ntsc_outputs(tmp_path_factory: pytest.TempPathFactory, rvm_model, ntsc_video: Path):
    out = tmp_path_factory.mktemp("ntsc_out")
    summary = convert_video(
        rvm_model,
        str(ntsc_video),
        output_composition=str(out / "com.mp4"),
        output_alpha=str(out / "pha.mp4"),
        output_foreground=str(out / "fgr.mp4"),
        output_video_mbps=8,
        seq_chunk=4,
        progress=False,
    )
    return out, summary


def test_ntsc_video_comes_out_at_exactly_24000_over_1001_with_every_frame(ntsc_outputs):
    out, summary = ntsc_outputs
    assert summary.frames == FRAMES and summary.frame_rate == NTSC
    for name in ("com.mp4", "pha.mp4", "fgr.mp4"):
        with av.open(str(out / name)) as box:
            stream = box.streams.video[0]
            assert stream.average_rate == NTSC, name  # the official writer would say 24
            assert (stream.codec_context.width, stream.codec_context.height) == (WIDTH, HEIGHT)
            assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
            assert len(list(box.decode(video=0))) == FRAMES
    assert sorted(os.listdir(out)) == ["com.mp4", "fgr.mp4", "pha.mp4"]  # no temporary files left


def test_the_composition_carries_the_interview_audio_packet_for_packet(ntsc_outputs, ntsc_video: Path):
    out, summary = ntsc_outputs
    assert summary.audio == "copy"
    with av.open(str(ntsc_video)) as src, av.open(str(out / "com.mp4")) as com:
        original = [bytes(p) for p in src.demux(audio=0) if p.size]
        carried = [bytes(p) for p in com.demux(audio=0) if p.size]
        assert com.streams.audio[0].codec_context.name == "aac"
        assert com.streams.audio[0].sample_rate == 48000
    assert carried == original
    for matte in ("pha.mp4", "fgr.mp4"):
        with av.open(str(out / matte)) as box:
            assert not box.streams.audio  # mattes stay silent


def test_video_composition_is_the_foreground_over_the_official_green(ntsc_outputs):
    out, _ = ntsc_outputs
    com, fgr = _decode(out / "com.mp4"), _decode(out / "fgr.mp4")
    pha = _decode(out / "pha.mp4")[..., :1]
    assert (pha > 0.9).mean() > 0.2 and (pha < 0.1).mean() > 0.2  # a real matte of the astronaut
    # 4:2:0 video shares colour over 2x2 pixels, so compare 2x2 means (off by ~0.3 with a wrong composite).
    error = np.abs(_blocks(fgr * pha + GREEN * (1 - pha)) - _blocks(com))
    assert error.mean() < 0.006 and error.max() < 0.06
    background = pha[..., 0] < 0.02
    assert np.abs(com[background] - np.array([120, 255, 155]) / 255).mean() < 0.01


def test_the_network_is_called_like_the_official_loop(rvm_model, ntsc_video: Path, tmp_path: Path):
    recording = _Recording(rvm_model)
    convert_video(
        recording, ntsc_video, downsample_ratio=0.5, output_alpha=str(tmp_path / "pha.mp4"), seq_chunk=3, progress=False
    )
    assert [c["src"].shape for c in recording.calls] == [(1, t, 3, HEIGHT, WIDTH) for t in (3, 3, 2)]
    assert all(c["src"].dtype == torch.float32 and 0 <= c["src"].min() and c["src"].max() <= 1 for c in recording.calls)
    assert recording.calls[0]["rec"] == (None,) * 4
    for before, after in zip(recording.calls, recording.calls[1:]):
        assert all(r is o for r, o in zip(after["rec"], before["out"][2:]))  # states cycled as returned
    assert {c["ratio"] for c in recording.calls} == {0.5}
    assert not any(c["grad"] for c in recording.calls)


# ---------------------------------------------------------------- image sequences


def test_png_sequence_output_keeps_the_plates_frame_numbers(rvm_model, png_clip: Path, tmp_path: Path):
    summary = convert_video(
        rvm_model,
        png_clip,
        output_type="png_sequence",
        output_composition=str(tmp_path / "com"),
        output_alpha=str(tmp_path / "pha"),
        output_foreground=str(tmp_path / "fgr"),
        progress=False,
    )
    expected = [f"{n:04d}.png" for n in range(12, 12 + FRAMES)]
    assert summary.frames == FRAMES
    for name in ("com", "pha", "fgr"):
        assert _sequence(tmp_path / name) == expected
    rgba, channels, stored, _ = _read(tmp_path / "com" / "0015.png")
    alpha, _, _, _ = _read(tmp_path / "pha" / "0015.png")
    fgr, _, _, _ = _read(tmp_path / "fgr" / "0015.png")
    assert channels == ("R", "G", "B", "A") and stored == "uint8" and alpha.shape == (HEIGHT, WIDTH, 1)
    # Straight RGBA, as the official writer: colour is the foreground wherever alpha is above 0.
    assert np.array_equal(rgba[..., 3:], alpha)
    seen = alpha[..., 0] > 0
    assert np.abs(rgba[seen][:, :3] - fgr[seen]).max() <= 1 / 255 + 1e-6
    # Where the network's alpha is exactly 0 the colour is 0 (alpha below half a code is also stored as 0).
    assert (rgba[~seen][:, :3] == 0).all(axis=1).mean() > 0.9


def test_premultiplied_png_composition_is_foreground_times_alpha(rvm_model, png_clip: Path, tmp_path: Path):
    convert_video(
        rvm_model,
        png_clip,
        output_type="png_sequence",
        output_composition=str(tmp_path / "com"),
        output_foreground=str(tmp_path / "fgr"),
        output_premultiplied=True,
        progress=False,
    )
    rgba, _, _, _ = _read(tmp_path / "com" / "0012.png")
    fgr, _, _, _ = _read(tmp_path / "fgr" / "0012.png")
    alpha = rgba[..., 3:]
    assert np.abs(rgba[..., :3] - fgr * alpha).max() <= 2 / 255
    edge = (alpha[..., 0] > 0.2) & (alpha[..., 0] < 0.8)
    assert edge.any() and np.abs(rgba[edge][:, :3] - fgr[edge]).mean() > 0.02  # truly not straight


def test_video_input_numbers_png_frames_from_zero_like_the_official_script(rvm_model, ntsc_video: Path, tmp_path: Path):
    convert_video(rvm_model, ntsc_video, output_type="png_sequence", output_alpha=str(tmp_path / "pha"), progress=False)
    assert _sequence(tmp_path / "pha") == [f"{n:04d}.png" for n in range(FRAMES)]


def test_frames_in_chunks_and_on_worker_threads_matte_like_one_at_a_time(rvm_model, png_clip: Path, tmp_path: Path):
    for name, chunk, workers in (("single", 1, 0), ("chunked", 4, 0), ("threaded", 1, 2)):
        convert_video(
            rvm_model,
            png_clip,
            output_type="png_sequence",
            output_alpha=str(tmp_path / name),
            seq_chunk=chunk,
            num_workers=workers,
            progress=False,
        )
    expected = [f"{n:04d}.png" for n in range(12, 12 + FRAMES)]
    for name in ("single", "chunked", "threaded"):
        assert _sequence(tmp_path / name) == expected, name
    single = np.stack([_read(tmp_path / "single" / n)[0] for n in expected])
    for other in ("chunked", "threaded"):
        frames = np.stack([_read(tmp_path / other / n)[0] for n in expected])
        assert np.abs(frames - single).max() <= 1 / 255 + 1e-6, other


def test_input_resize_sets_the_size_of_every_output(rvm_model, png_clip: Path, tmp_path: Path):
    summary = convert_video(
        rvm_model,
        png_clip,
        input_resize=(64, 48),
        output_type="png_sequence",
        output_alpha=str(tmp_path / "pha"),
        progress=False,
    )
    assert _read(tmp_path / "pha" / "0019.png")[0].shape == (48, 64, 1)
    assert summary.downsample_ratio == 1.0  # automatic: min(512 / 64, 1)


def test_an_image_sequence_becomes_a_30fps_video_unless_given_an_ntsc_rate(rvm_model, png_clip: Path, tmp_path: Path):
    official = convert_video(rvm_model, png_clip, output_alpha=str(tmp_path / "a.mp4"), progress=False)
    ntsc = convert_video(
        rvm_model, png_clip, output_alpha=str(tmp_path / "b.mp4"), output_frame_rate=23.976, progress=False
    )
    assert official.frame_rate == 30 and ntsc.frame_rate == NTSC
    with av.open(str(tmp_path / "a.mp4")) as a, av.open(str(tmp_path / "b.mp4")) as b:
        assert a.streams.video[0].average_rate == 30 and b.streams.video[0].average_rate == NTSC
        assert a.streams.video[0].frames == b.streams.video[0].frames == FRAMES


# ---------------------------------------------------------------- EXR


def test_linear_exr_plates_come_back_as_half_zip_exrs_in_linear(rvm_model, exr_clip: Path, tmp_path: Path):
    source = str(exr_clip / "shot.####.exr")
    summary = convert_video(
        rvm_model,
        source,
        output_type="exr_sequence",
        output_composition=str(tmp_path / "com"),
        output_alpha=str(tmp_path / "pha.####.exr"),
        output_foreground=str(tmp_path / "fgr"),
        progress=False,
    )
    convert_video(  # the network's own sRGB foreground, for reference
        rvm_model, source, output_type="png_sequence", output_foreground=str(tmp_path / "srgb"), progress=False
    )
    assert summary.frames == 6 and summary.unsafe_pixels == 0
    assert _sequence(tmp_path / "com") == [f"{n}.exr" for n in range(1001, 1007)]
    assert os.path.isfile(tmp_path / "pha.1006.exr")
    rgba, channels, stored, compression = _read(tmp_path / "com" / "1003.exr")
    alpha, alpha_channels, _, _ = _read(tmp_path / "pha.1003.exr")
    fgr, _, _, _ = _read(tmp_path / "fgr" / "1003.exr")
    assert (channels, stored, compression) == (("R", "G", "B", "A"), "half", "zip") and alpha_channels == ("A",)
    # Premultiplied by default in EXR; the foreground went back to scene-linear.
    assert np.abs(rgba[..., :3] - fgr * alpha).max() < 2e-3
    plate = _read(exr_clip / "shot.1003.exr")[0]
    model_fgr = _read(tmp_path / "srgb" / "1003.png")[0]
    expected = plate + _srgb_to_linear(model_fgr) - _srgb_to_linear(np.clip(_linear_to_srgb(plate), 0, 1))
    person = alpha[..., 0] > 0.5
    assert np.abs(fgr[person] - expected[person]).max() < 0.02


def test_a_highlight_on_the_subject_survives_into_the_exr_foreground_in_every_frame(
    rvm_model, exr_clip: Path, tmp_path: Path
):
    convert_video(
        rvm_model,
        str(exr_clip / "shot.####.exr"),
        output_type="exr_sequence",
        output_alpha=str(tmp_path / "pha"),
        output_foreground=str(tmp_path / "fgr"),
        progress=False,
    )
    names = [f"{n}.exr" for n in range(1001, 1007)]
    assert _sequence(tmp_path / "pha") == names and _sequence(tmp_path / "fgr") == names
    for i, name in enumerate(names):
        glint = _glint(i)
        assert (_read(exr_clip / f"shot.{name}")[0][glint] == GLINT).all()  # the plate holds it
        alpha = _read(tmp_path / "pha" / name)[0][glint]
        fgr = _read(tmp_path / "fgr" / name)[0][glint]
        assert (alpha > 0.9).all(), f"{name}: the glint is not on the matted subject"
        # The network sees clipped white there and barely touches it (lin(fgr) - lin(1.0) is at most
        # ~0.03 here), so the foreground keeps the plate's value, far above the display range; the
        # channels it left alone (about two in three) keep exactly 6.0.
        assert (fgr > 1.0).all(), f"{name}: the highlight was clipped"
        assert np.abs(fgr - GLINT).max() < 0.1 and (fgr == GLINT).mean() > 0.5, name


def _linear_to_srgb(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0, None)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055).astype(np.float32)


def test_nan_pixels_in_an_exr_plate_are_counted_and_never_reach_the_mattes(rvm_model, tmp_path: Path, portrait):
    plates = tmp_path / "plates"
    plates.mkdir()
    for i in range(2):
        linear = _srgb_to_linear(portrait[i])
        linear[10, 10:13] = np.nan
        write_plate(plates / f"shot.{i + 1:04d}.exr", linear, ["R", "G", "B"], pixel_type="float")
    summary = convert_video(
        rvm_model, plates, output_type="exr_sequence", output_composition=str(tmp_path / "com"), progress=False
    )
    assert summary.unsafe_pixels == 2 * 3
    assert summary.frames == 2 and _sequence(tmp_path / "com") == ["0001.exr", "0002.exr"]
    for name in ("0001.exr", "0002.exr"):
        rgba = _read(tmp_path / "com" / name)[0]
        assert rgba.shape == (HEIGHT, WIDTH, 4) and np.isfinite(rgba).all(), name


# ---------------------------------------------------------------- audio the container cannot take


def test_audio_a_container_refuses_is_reencoded_into_the_composition(rvm_model, portrait, tmp_path: Path):
    source = tmp_path / "take.mkv"
    _write_video(source, portrait[:6], Fraction(24), "libopus")  # AVI cannot hold Opus
    summary = convert_video(rvm_model, source, output_composition=str(tmp_path / "com.avi"), progress=False)
    assert summary.audio == "encode" and summary.frames == 6
    with av.open(str(tmp_path / "com.avi")) as box:
        assert len(list(box.decode(video=0))) == 6
    with av.open(str(tmp_path / "com.avi")) as box:
        assert box.streams.audio and box.streams.audio[0].codec_context.name != "opus"
        decoded = sum(f.samples for f in box.decode(audio=0))
    assert decoded >= 0.9 * 48000 * 6 / 24


# ---------------------------------------------------------------- cancelling


def test_interrupting_a_video_render_keeps_the_previous_file_and_leaves_no_partial_one(
    rvm_model, ntsc_video: Path, tmp_path: Path
):
    (tmp_path / "com.mp4").write_bytes(b"yesterday's render")
    with pytest.raises(KeyboardInterrupt):
        convert_video(
            _Recording(rvm_model, stop_after=3),
            ntsc_video,
            output_composition=str(tmp_path / "com.mp4"),
            output_alpha=str(tmp_path / "pha.mp4"),
            progress=False,
        )
    assert sorted(os.listdir(tmp_path)) == ["com.mp4"]
    assert (tmp_path / "com.mp4").read_bytes() == b"yesterday's render"


def test_interrupting_a_png_render_leaves_only_whole_frames(rvm_model, ntsc_video: Path, tmp_path: Path):
    com = tmp_path / "com"
    # Ctrl-C as the third chunk reaches the network, once the first chunk's plates are on disk:
    # the second chunk may still be being written, the third is never matted.
    with pytest.raises(KeyboardInterrupt):
        convert_video(
            _Recording(rvm_model, stop_after=2, stop_once_on_disk=(com / "0000.png", com / "0001.png")),
            ntsc_video,
            output_type="png_sequence",
            output_composition=str(com),
            seq_chunk=2,
            progress=False,
        )
    names = sorted(os.listdir(com))
    # The first chunk, and the second if its write was under way; no partial or temporary file.
    assert names in (["0000.png", "0001.png"], ["0000.png", "0001.png", "0002.png", "0003.png"]), names
    for name in names:
        assert _read(com / name)[0].shape == (HEIGHT, WIDTH, 4), name


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("arguments", "error", "names"),
    [
        ({"output_type": "gif", "output_alpha": "pha"}, PlateError, "output_type"),
        ({}, PlateError, "no output"),
        ({"output_alpha": "pha.mp4", "downsample_ratio": 0}, FrameInputError, "downsample_ratio"),
        ({"output_alpha": "pha.mp4", "downsample_ratio": 1.5}, FrameInputError, "downsample_ratio"),
        ({"output_alpha": "pha.mp4", "seq_chunk": 0}, FrameInputError, "seq_chunk"),
        ({"output_alpha": "pha.mp4", "num_workers": -1}, FrameInputError, "num_workers"),
        ({"output_alpha": "pha.mp4", "input_resize": (0, 64)}, FrameInputError, "input_resize"),
        ({"output_alpha": "pha.mp4", "input_resize": (95, 64)}, FrameInputError, "even width"),
        ({"output_alpha": "pha.mp4", "output_video_mbps": 0}, PlateError, "output_video_mbps"),
        ({"output_alpha": "pha.mp4", "output_premultiplied": "linear"}, PlateError, "output_premultiplied"),
        ({"output_alpha": "pha.mp4", "output_frame_rate": -24}, PlateError, "output_frame_rate"),
        ({"output_type": "png_sequence", "output_alpha": "pha.mp4"}, PlateError, "looks like a video"),
        ({"output_alpha": "pha"}, PlateError, "video file name"),
        ({"output_alpha": "same.mp4", "output_foreground": "same.mp4"}, PlateError, "share one path"),
        ({"output_type": "exr_sequence", "output_alpha": "pha.png"}, PlateError, "does not end in .exr"),
    ],
)
def test_bad_arguments_are_refused_with_a_message_naming_them(
    rvm_model, ntsc_video: Path, tmp_path: Path, arguments: dict, error: type, names: str
):
    for key in ("output_alpha", "output_foreground"):
        if key in arguments:
            arguments = {**arguments, key: str(tmp_path / arguments[key])}
    with pytest.raises(error, match=names):
        convert_video(rvm_model, ntsc_video, progress=False, **arguments)
    assert not [n for n in os.listdir(tmp_path) if n.endswith((".mp4", ".png", ".exr"))]


def test_writing_over_the_plates_being_matted_is_refused(rvm_model, exr_clip: Path):
    pattern = str(exr_clip / "shot.####.exr")
    before = sorted(os.listdir(exr_clip))
    with pytest.raises(PlateError, match="a frame of the input"):
        convert_video(rvm_model, pattern, output_type="exr_sequence", output_foreground=pattern, progress=False)
    assert sorted(os.listdir(exr_clip)) == before


def test_a_missing_input_is_named_in_the_error(rvm_model, tmp_path: Path):
    with pytest.raises(FrameInputError, match="missing.mov"):
        convert_video(rvm_model, tmp_path / "missing.mov", output_alpha=str(tmp_path / "pha.mp4"), progress=False)
    with pytest.raises(PlateError, match="shot"):
        convert_video(rvm_model, tmp_path / "shot.####.exr", output_alpha=str(tmp_path / "pha.mp4"), progress=False)


def test_image_outputs_into_the_input_folder_are_refused_before_any_work(rvm_model, png_clip: Path):
    with pytest.raises(PlateError, match="input folder"):
        convert_video(rvm_model, str(png_clip), output_type="png_sequence", output_alpha=str(png_clip), progress=False)
    assert not [p for p in os.listdir(png_clip) if not p.startswith("frame_")]


def test_a_container_that_cannot_hold_h264_is_a_clear_error(rvm_model, png_clip: Path, tmp_path: Path):
    with pytest.raises(PlateError, match="cannot hold"):
        convert_video(rvm_model, str(png_clip), output_composition=str(tmp_path / "c.webm"), progress=False)
    assert os.listdir(tmp_path) == []
