"""Frame sequences: the patterns and ranges compositors type, checked before any frame is matted."""

from __future__ import annotations

import os

import pytest

from rvm_engine.errors import PlateError
from rvm_engine.sequences import FrameSequence, output_sequence, parse_sequence


def _shot(folder, frames, name="shot.{:04d}.exr"):
    for frame in frames:
        (folder / name.format(frame)).write_bytes(b"frame")  # existence is all a sequence checks
    return folder


@pytest.mark.parametrize("token", ["####", "%04d", "$F4", "@@@@", "#"])
def test_every_common_frame_token_finds_the_same_plates(tmp_path, token):
    _shot(tmp_path, range(1001, 1006))
    seq = parse_sequence(str(tmp_path / f"shot.{token}.exr"))
    assert seq.frames == [1001, 1002, 1003, 1004, 1005]
    assert seq.padding == 4 and not seq.single_file
    assert seq.path(1003) == str(tmp_path / "shot.1003.exr")


def test_a_run_of_hashes_is_one_digit_each_but_a_lone_hash_is_four_digits(tmp_path):
    _shot(tmp_path, [7, 8], name="shot.{:02d}.exr")
    assert parse_sequence(str(tmp_path / "shot.##.exr")).path(7) == str(tmp_path / "shot.07.exr")
    assert parse_sequence(str(tmp_path / "shot.##.exr")).frames == [7, 8]
    lone = output_sequence(str(tmp_path / "out.#.exr"), [7])
    assert lone.padding == 4 and lone.path(7) == str(tmp_path / "out.0007.exr")
    assert output_sequence(str(tmp_path / "out.@.exr"), [7]).path(7) == str(tmp_path / "out.7.exr")
    assert output_sequence(str(tmp_path / "out.%d.exr"), [1001]).path(1001) == str(tmp_path / "out.1001.exr")


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        ("1001-1006", [1001, 1002, 1003, 1004, 1005, 1006]),
        ("1001-1006x2", [1001, 1003, 1005]),
        ("1001,1005,1002-1003", [1001, 1005, 1002, 1003]),
        ([1004, 1006], [1004, 1006]),
    ],
)
def test_frame_ranges_include_both_ends_and_keep_the_order_asked(tmp_path, frames, expected):
    _shot(tmp_path, range(1001, 1007))
    assert parse_sequence(str(tmp_path / "shot.####.exr"), frames).frames == expected


def test_a_missing_frame_in_the_range_stops_the_render_before_it_starts(tmp_path):
    _shot(tmp_path, [1001, 1002, 1003, 1006])
    with pytest.raises(PlateError) as err:
        parse_sequence(str(tmp_path / "shot.####.exr"), "1001-1006")
    text = str(err.value)
    assert "2 frame(s): 1004-1005" in text and str(tmp_path / "shot.1004.exr") in text


def test_frames_found_on_disk_report_their_holes(tmp_path):
    _shot(tmp_path, [1001, 1002, 1005])
    (tmp_path / ".shot.1003.exr.1a2b3c4d.tmp.exr").write_bytes(b"half-written")  # another writer's temp
    (tmp_path / "shot.7.exr").write_bytes(b"unpadded, another sequence")
    seq = parse_sequence(str(tmp_path / "shot.####.exr"))
    assert seq.frames == [1001, 1002, 1005] and seq.gaps == [1003, 1004]
    assert (seq.first, seq.last, len(seq)) == (1001, 1005, 3)


def test_a_range_written_in_the_pattern_is_used(tmp_path):
    _shot(tmp_path, range(1001, 1011))
    assert parse_sequence(str(tmp_path / "shot.1003-1005#.exr")).frames == [1003, 1004, 1005]


def test_nothing_on_disk_names_the_folder_and_padding(tmp_path):
    _shot(tmp_path, [1, 2], name="shot.{}.exr")
    with pytest.raises(PlateError, match=r"No frames of .*shot\.####\.exr.*4-digit") as err:
        parse_sequence(str(tmp_path / "shot.####.exr"))
    assert str(tmp_path) in str(err.value)


def test_a_token_in_the_middle_of_the_name_is_explained(tmp_path):
    with pytest.raises(PlateError, match="just before the extension"):
        parse_sequence(str(tmp_path / "shot_####_v002.exr"))


def test_an_unreadable_range_shows_how_to_write_one(tmp_path):
    _shot(tmp_path, [1001])
    with pytest.raises(PlateError, match="1001-1100x2"):
        parse_sequence(str(tmp_path / "shot.####.exr"), "1001 to 1010")
    with pytest.raises(PlateError, match="sub-frames"):
        parse_sequence(str(tmp_path / "shot.####.exr"), "1001.5")


def test_a_plain_file_is_a_one_frame_clip(tmp_path):
    (tmp_path / "still.exr").write_bytes(b"x")
    _shot(tmp_path, [1001])
    still = parse_sequence(str(tmp_path / "still.exr"))
    assert still.single_file and still.frames == [1] and still.path(1) == str(tmp_path / "still.exr")
    numbered = parse_sequence(str(tmp_path / "shot.1001.exr"))
    assert numbered.frames == [1001] and numbered.path(1001) == str(tmp_path / "shot.1001.exr")
    with pytest.raises(PlateError, match="single file"):
        parse_sequence(str(tmp_path / "shot.1001.exr"), "1001-1010")
    with pytest.raises(PlateError, match="does not exist"):
        parse_sequence(str(tmp_path / "other.exr"))


def test_output_pattern_gets_the_same_frame_numbers_with_its_own_padding(tmp_path):
    src = parse_sequence(str(_shot(tmp_path, range(1001, 1004)) / "shot.####.exr"))
    out = src.output(str(tmp_path / "matte" / "alpha.%05d.exr"), create_folder=True)
    assert isinstance(out, FrameSequence) and out.frames == src.frames
    assert [out.path(f) for f in out] == [str(tmp_path / "matte" / f"alpha.{f:05d}.exr") for f in src]
    assert os.path.isdir(tmp_path / "matte")


def test_output_without_a_frame_token_is_refused_for_many_frames(tmp_path):
    with pytest.raises(PlateError, match="no frame token.*3 frames"):
        output_sequence(str(tmp_path / "alpha.exr"), [1, 2, 3])
    single = output_sequence(str(tmp_path / "alpha.exr"), [1001])
    assert single.path(1001) == str(tmp_path / "alpha.exr")


def test_output_over_the_source_plates_is_refused(tmp_path):
    src = parse_sequence(str(_shot(tmp_path, [1001, 1002]) / "shot.####.exr"))
    with pytest.raises(PlateError, match="source plate of frame 1001"):
        src.output(str(tmp_path / "shot.%04d.exr"))


def test_output_folder_must_exist_unless_asked_to_create_it(tmp_path):
    with pytest.raises(PlateError, match="does not exist") as err:
        output_sequence(str(tmp_path / "v002" / "fg.####.exr"), [1001])
    assert str(tmp_path / "v002") in str(err.value)


def test_a_folder_given_as_a_plate_is_called_a_folder(tmp_path):
    (tmp_path / "plates").mkdir()
    with pytest.raises(PlateError, match="is a folder, not a file") as err:
        parse_sequence(str(tmp_path / "plates"))
    assert str(tmp_path / "plates") in str(err.value)


@pytest.mark.parametrize("pattern", ["sh010_####/plate.exr", "####/plate.####.exr", "sh010_%04d/plate.%04d.exr"])
def test_a_frame_token_in_a_folder_name_says_tokens_belong_in_the_file_name(tmp_path, pattern):
    text = str(tmp_path / "shots" / pattern)
    with pytest.raises(PlateError, match="belong in the file name"):
        parse_sequence(text)
    with pytest.raises(PlateError, match="belong in the file name"):
        output_sequence(text, [1001], create_folder=True)
    assert not (tmp_path / "shots").exists()  # no folder made with a token in its name


def test_a_folder_really_named_with_a_hash_is_only_a_folder(tmp_path):
    (tmp_path / "take#2").mkdir()
    _shot(tmp_path / "take#2", [1001, 1002])
    assert parse_sequence(str(tmp_path / "take#2" / "shot.####.exr")).frames == [1001, 1002]
