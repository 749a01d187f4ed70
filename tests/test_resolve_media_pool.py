"""Utility > RVM Matte, run as Resolve runs it, on stand-in Resolve objects, against a real bridge:
plates for Media Pool clips, imported into a bin named for the clip and attached as its matte."""

from __future__ import annotations

import os
import shutil

import numpy as np

from .resolve_support import COUNT, LAST, run_script, scope_for, write_movie
from .standins.resolve import Artist, Bmd, Comp, Fusion, Resolve, UIManager
from .test_server_support import FIRST, pixels, reference_render, shot_frames


def sequence_path(show) -> str:
    """How Resolve spells an image sequence's File Path."""
    return os.path.join(show["root"], "sh010", f"plate.[{FIRST}-{LAST}].exr")


def studio(version=(20, 2, 1), artist=None):
    resolve = Resolve("DaVinci Resolve Studio", version)
    fusion = Fusion(Comp(), UIManager(artist or Artist()), version)
    resolve.fusion = fusion
    return resolve, fusion, Bmd(resolve)


def test_a_selected_clip_gets_both_sequences_in_its_bin_and_its_alpha_as_clip_matte(bridge_env, capsys):
    show = bridge_env
    resolve, fusion, bmd = studio()
    clip = resolve.add_clip("plate", sequence_path(show))

    assert run_script(show["utility_script"], **scope_for(fusion, None, bmd, resolve)) == 0, capsys.readouterr().out

    bins = {folder.GetName(): folder for folder in resolve.pool.root.GetSubFolderList()}
    assert list(bins) == ["RVM plate"]
    imported = {item.GetName(): item.GetClipProperty("File Path") for item in bins["RVM plate"].GetClipList()}
    folder = os.path.join(show["root"], "sh010", "rvm")
    assert imported == {f"plate_alpha.[{FIRST}-{LAST}].exr": os.path.join(folder, f"plate_alpha.[{FIRST}-{LAST}].exr"),
                        f"plate_fg.[{FIRST}-{LAST}].exr": os.path.join(folder, f"plate_fg.[{FIRST}-{LAST}].exr")}
    assert resolve.pool.GetCurrentFolder() is resolve.pool.root  # the artist's folder is given back
    mattes = resolve.pool.GetClipMatteList(clip)
    assert mattes == [os.path.join(folder, f"plate_alpha.{frame}.exr") for frame in range(FIRST, LAST + 1)]
    for frame in (FIRST, LAST):
        expected = show["reference"]["alpha"].replace("####", f"{frame:04d}")
        assert np.array_equal(pixels(mattes[frame - FIRST]), pixels(expected))

    # Again: the plates are made again in place; nothing is imported or attached twice.
    assert run_script(show["utility_script"], **scope_for(fusion, None, bmd, resolve)) == 0
    assert resolve.pool.imports == 2 and len(bins["RVM plate"].GetClipList()) == 2
    assert resolve.pool.GetClipMatteList(clip) == mattes
    assert len(resolve.pool.root.GetSubFolderList()) == 1


def test_the_timeline_clip_under_the_playhead_is_matted_for_its_used_range_with_handles(bridge_env, capsys):
    show = bridge_env
    resolve, fusion, bmd = studio(version=(18, 6, 6))  # before GetSourceStartFrame: GetLeftOffset
    clip = resolve.add_clip("plate", sequence_path(show), selected=False)
    resolve.put_on_timeline(clip, source_start=3, duration=2)
    folder = os.path.join(show["root"], "handles")
    fusion.ui.artist.answers = {"Folder": folder}

    assert run_script(show["utility_script"], **scope_for(fusion, None, bmd, resolve)) == 0, capsys.readouterr().out

    # Frames 1004-1005 are used; 12-frame handles reach both ends of what is on disk.
    made = sorted(name for name in os.listdir(folder) if name.startswith("plate_alpha."))
    assert made == [f"plate_alpha.{frame}.exr" for frame in range(FIRST, FIRST + COUNT)]
    assert len(resolve.pool.GetClipMatteList(clip)) == COUNT


def test_a_movie_under_the_bridges_roots_is_decoded_by_the_bridge_and_matted(bridge_env, capsys):
    show = bridge_env
    resolve, fusion, bmd = studio()
    clip = resolve.add_clip("interview.mp4", show["movie"], selected=False)
    resolve.put_on_timeline(clip, source_start=2, duration=2)  # handles reach both ends of its 6 frames

    assert run_script(show["utility_script"], **scope_for(fusion, None, bmd, resolve)) == 0, capsys.readouterr().out

    folder = os.path.join(show["root"], "sh020", "rvm")
    reference = reference_render(show["movie"], list(range(6)), os.path.join(show["root"], "reference_movie_pool"))
    for frame in range(6):
        made = os.path.join(folder, f"interview_alpha.{frame:04d}.exr")
        assert np.array_equal(pixels(made), pixels(reference["alpha"].replace("####", f"{frame:04d}"))), frame
    bins = {folder.GetName(): folder for folder in resolve.pool.root.GetSubFolderList()}
    assert sorted(item.GetName() for item in bins["RVM interview"].GetClipList()) == [
        "interview_alpha.[0000-0005].exr", "interview_fg.[0000-0005].exr"]
    assert len(resolve.pool.GetClipMatteList(clip)) == 6


def test_a_movie_the_bridge_cannot_decode_is_said_so(bridge_env, capsys):
    broken = os.path.join(bridge_env["root"], "sh030", "broken.mov")
    os.makedirs(os.path.dirname(broken), exist_ok=True)
    with open(broken, "wb") as handle:
        handle.write(b"not a movie at all" * 100)
    resolve, fusion, bmd = studio()
    resolve.add_clip("broken.mov", broken)
    assert run_script(bridge_env["utility_script"], **scope_for(fusion, None, bmd, resolve)) == 1
    out = capsys.readouterr().out
    assert "the bridge cannot read or write a plate: cannot read the movie" in out and broken in out
    assert resolve.pool.root.GetSubFolderList() == []


def test_nothing_selected_and_nothing_under_the_playhead_is_said_plainly(bridge_env, capsys):
    resolve, fusion, bmd = studio()
    assert run_script(bridge_env["utility_script"], **scope_for(fusion, None, bmd, resolve)) == 1
    assert "select clips in the Media Pool, or put the playhead over a clip" in capsys.readouterr().out


def test_an_offline_clip_is_not_a_file_on_disk(bridge_env, capsys):
    resolve, fusion, bmd = studio()
    resolve.add_clip("lost", os.path.join(bridge_env["root"], "gone", "lost.[1001-1010].exr"))
    assert run_script(bridge_env["utility_script"], **scope_for(fusion, None, bmd, resolve)) == 1
    assert "is not on disk; is the media offline?" in capsys.readouterr().out


def test_the_free_edition_from_19_1_has_no_dialog_and_says_what_it_used(bridge_env, capsys):
    show = bridge_env
    resolve = Resolve("DaVinci Resolve", (20, 0, 0))
    fusion = Fusion(Comp(), None, (20, 0, 0))
    resolve.add_clip("plate", sequence_path(show))
    assert run_script(show["utility_script"], **scope_for(fusion, None, Bmd(resolve), resolve)) == 0
    out = capsys.readouterr().out
    assert "this edition has no dialog; using server" in out and "alpha attached as its clip matte" in out


def test_a_camera_movie_named_with_a_hash_or_at_sign_is_matted_as_a_movie(bridge_env, capsys):
    # Editors get "take#2.mov" and "A001@wide.mp4" from set: a movie's name has no frame token.
    show = bridge_env
    folder = os.path.join(show["root"], "sh040")
    os.makedirs(folder, exist_ok=True)
    resolve, fusion, bmd = studio()
    clips = []
    for name in ("take#2.mov", "A001@wide.mp4"):
        shutil.copy(show["movie"], os.path.join(folder, name))
        clips.append(resolve.add_clip(name, os.path.join(folder, name)))

    assert run_script(show["utility_script"], **scope_for(fusion, None, bmd, resolve)) == 0, capsys.readouterr().out

    made = sorted(name for name in os.listdir(os.path.join(folder, "rvm")) if "_alpha." in name)
    assert made == [f"{label}_alpha.{frame:04d}.exr" for label in ("A001_wide", "take_2") for frame in range(6)]
    assert [len(resolve.pool.GetClipMatteList(clip)) for clip in clips] == [6, 6]


def test_a_movie_and_its_proxy_side_by_side_do_not_overwrite_each_others_mattes(bridge_env, capsys):
    # take.mov and take.mp4 (a different cut, or a proxy) in one folder would both write
    # rvm/take_alpha.####.exr: the first clip's matte would silently show the second's frames.
    show = bridge_env
    folder = os.path.join(show["root"], "sh050")
    os.makedirs(folder, exist_ok=True)
    shutil.copy(show["movie"], os.path.join(folder, "take.mov"))
    write_movie(os.path.join(folder, "take.mp4"), shot_frames(4)[::-1].copy())
    resolve, fusion, bmd = studio()
    resolve.add_clip("take.mov", os.path.join(folder, "take.mov"))
    resolve.add_clip("take.mp4", os.path.join(folder, "take.mp4"))

    assert run_script(show["utility_script"], **scope_for(fusion, None, bmd, resolve)) == 1

    out = capsys.readouterr().out
    assert "take.mp4 and take.mov would write the same plates" in out and "each with its own plates folder" in out
    assert not os.path.exists(os.path.join(folder, "rvm")) and resolve.pool.root.GetSubFolderList() == []


def test_the_frames_typed_for_a_movie_clip_are_the_frames_matted(bridge_env, capsys):
    # An editor wants two seconds of a long interview, types them in the dialog, and must not
    # get the whole movie matted (the typed range was silently ignored for movies).
    show = bridge_env
    folder = os.path.join(show["root"], "sh060")
    os.makedirs(folder, exist_ok=True)
    shutil.copy(show["movie"], os.path.join(folder, "long_interview.mp4"))
    resolve, fusion, bmd = studio(artist=Artist({"Frames": "1-2"}))
    clip = resolve.add_clip("long_interview.mp4", os.path.join(folder, "long_interview.mp4"))

    assert run_script(show["utility_script"], **scope_for(fusion, None, bmd, resolve)) == 0, capsys.readouterr().out

    assert sorted(name for name in os.listdir(os.path.join(folder, "rvm")) if "_alpha." in name) == [
        "long_interview_alpha.0001.exr", "long_interview_alpha.0002.exr"]
    assert len(resolve.pool.GetClipMatteList(clip)) == 2

    resolve, fusion, bmd = studio(artist=Artist({"Frames": "4-9"}))
    resolve.add_clip("long_interview.mp4", os.path.join(folder, "long_interview.mp4"))
    assert run_script(show["utility_script"], **scope_for(fusion, None, bmd, resolve)) == 1
    assert "frames 4-9 are outside the clip's 0-5" in capsys.readouterr().out


def test_a_timeline_clip_using_frames_its_media_does_not_hold_is_said_plainly(bridge_env, capsys):
    # Timecode-numbered source frames, or media relinked to a shorter file: the used frames are
    # not in the file. One plain sentence, not a backwards range and the bridge's missing frames.
    show = bridge_env
    resolve, fusion, bmd = studio()
    clip = resolve.add_clip("interview.mp4", show["movie"], selected=False)
    resolve.put_on_timeline(clip, source_start=86400, duration=10)

    assert run_script(show["utility_script"], **scope_for(fusion, None, bmd, resolve)) == 1

    out = capsys.readouterr().out
    assert f"the timeline uses frames 86400-86409 of {show['movie']}, which holds frames 0-5" in out
    assert "render it to EXR first" not in out and resolve.pool.root.GetSubFolderList() == []


def test_plates_the_bridge_cannot_write_beside_the_media_are_not_blamed_on_the_codec(bridge_env, capsys):
    # Camera media on a volume where rvm/ cannot be made (here a file named rvm is in the way):
    # the editor is told to choose a plates folder, not only to render the clip to EXR.
    show = bridge_env
    folder = os.path.join(show["root"], "sh080")
    os.makedirs(folder, exist_ok=True)
    for frame in range(FIRST, FIRST + 2):
        shutil.copy(os.path.join(show["root"], "sh010", f"plate.{frame}.exr"), os.path.join(folder, f"card.{frame}.exr"))
    with open(os.path.join(folder, "rvm"), "w") as handle:
        handle.write("a file where the plates folder would go")
    resolve, fusion, bmd = studio()
    resolve.add_clip("card", os.path.join(folder, f"card.[{FIRST}-{FIRST + 1}].exr"))

    assert run_script(show["utility_script"], **scope_for(fusion, None, bmd, resolve)) == 1

    out = capsys.readouterr().out
    assert "Cannot create output folder" in out and "choose a plates folder the bridge can write to" in out
    assert ".." not in out.replace(folder, "")
