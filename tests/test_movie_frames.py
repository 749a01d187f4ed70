"""A movie as a clip's source: frames 0..count-1, read by number in any nearby order, the same
pictures ``convert_video`` reads."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rvm_engine.errors import PlateError
from rvm_engine.movie_frames import read_movie_frame, read_source_frame
from rvm_engine.sequences import parse_sequence

from .resolve_support import movie_frames, write_movie
from .test_server_support import shot_frames


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    return write_movie(str(tmp_path_factory.mktemp("movie") / "talk.mov"), shot_frames(7))


def test_a_movie_is_a_clip_of_frames_from_zero(movie):
    assert parse_sequence(movie, None).frames == list(range(7))
    assert parse_sequence(movie, "2-4").frames == [2, 3, 4]
    with pytest.raises(PlateError, match="has frames 0-6; frames 7, 8 are not in it"):
        parse_sequence(movie, "5-8")


def test_frames_read_out_of_order_by_several_readers_are_the_movies_own_pictures(movie):
    decoded = movie_frames(movie)
    order = [1, 0, 3, 2, 4, 6, 5, 0, 6]
    with ThreadPoolExecutor(3) as pool:
        plates = list(pool.map(lambda frame: read_movie_frame(movie, frame), order))
    for frame, plate in zip(order, plates):
        assert np.array_equal(plate.pixels, decoded[frame]), frame
        assert plate.path == movie and plate.pixel_type == "uint8" and plate.display_window == (0, 0, 128, 128)
    assert np.array_equal(read_source_frame(movie, 3).pixels, decoded[3])
    with pytest.raises(PlateError, match="has no frame 9: it ends at frame 6"):
        read_movie_frame(movie, 9)


def test_a_file_that_is_no_movie_is_a_plate_error(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\\x00" * 64)
    with pytest.raises(PlateError, match="cannot read the movie"):
        parse_sequence(str(fake), None)
    assert not os.path.exists(tmp_path / "fake_alpha.0000.exr")


def test_a_matroska_movie_read_frame_by_frame_is_counted_once_not_once_per_frame(tmp_path, monkeypatch):
    # An editor's .mkv (or camera .mts) has no frame count in its header: counting its pictures
    # means demuxing the whole file, and the bridge checks the frame is in the movie for every
    # frame it reads. A 1 GB camera file must not be read whole once per frame.
    import av

    movie = write_movie(str(tmp_path / "interview.mkv"), shot_frames(6))
    opened = []
    real_open = av.open
    monkeypatch.setattr(av, "open", lambda *args, **kwargs: opened.append(args[0]) or real_open(*args, **kwargs))

    for frame in range(6):
        assert parse_sequence(movie, [frame]).frames == [frame]

    assert len(opened) == 1, opened
    # A movie rendered again in place (new size or time) is counted again.
    write_movie(movie, shot_frames(4))
    with pytest.raises(PlateError, match="has frames 0-3; frames 5 are not in it"):
        parse_sequence(movie, [5])


def test_a_sound_only_file_is_a_plate_error_when_a_frame_is_asked_for(tmp_path):
    import av

    sound = str(tmp_path / "voice.mp4")
    with av.open(sound, "w") as container:
        stream = container.add_stream("aac", rate=48000)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
        samples.sample_rate = 48000
        for packet in list(stream.encode(samples)) + list(stream.encode(None)):
            container.mux(packet)

    with pytest.raises(PlateError, match="has no video stream"):
        read_movie_frame(sound, 0)


def test_a_movie_over_the_servers_size_cap_is_refused_before_a_picture_is_decoded(tmp_path, monkeypatch):
    # Plates over the cap are refused from their header; a movie is too: one decoded picture of a
    # huge movie (and the few the decoder keeps) would take gigabytes before any check.
    from bridge_server.engine_adapter import Engine, TooLarge
    from rvm_engine import movie_frames

    def no_decoding(*args, **kwargs):
        raise AssertionError("a picture was decoded")

    movie = write_movie(str(tmp_path / "wide.mov"), shot_frames(3))
    monkeypatch.setattr(movie_frames, "_Decoder", no_decoding)
    with pytest.raises(TooLarge, match="128x128, over this server's limit of 64 px"):
        Engine().read(movie, {}, max_side=64, max_pixels=64 * 64, frame=2)


def test_a_frame_far_past_the_end_is_refused_without_decoding_the_movie(tmp_path, monkeypatch):
    # A careless (or hostile) client asking a movie for frame 10**9 must not make the bridge decode
    # the whole movie first, holding every other movie read behind it.
    from rvm_engine import movie_frames

    movie = write_movie(str(tmp_path / "long.mov"), shot_frames(4))

    def no_decoding(*args, **kwargs):
        raise AssertionError("the movie was decoded")

    monkeypatch.setattr(movie_frames, "_Decoder", no_decoding)
    with pytest.raises(PlateError, match="has no frame 1000000000: it ends at frame 3"):
        read_movie_frame(movie, 10**9)
