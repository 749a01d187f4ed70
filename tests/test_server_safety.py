"""No output lands on a source, and paths travel both ways: what a careless or hostile client
asks the bridge to write is refused, and every artist gets paths back in their own spelling."""

from __future__ import annotations

import os
import shutil
from types import SimpleNamespace

import pytest

from bridge_server.client import BridgeClient, errors
from bridge_server.client.pathmap import PathMap
from bridge_server.client.protocol import encode, request_header

from .test_server_support import FIRST, RawPeer, frame_path, pixels, start_bridge, write_shot

CLIENT_PREFIX = "/studio/shows"  # how artists' machines spell the show; the server sees it elsewhere


@pytest.fixture(scope="module")
def show(tmp_path_factory):
    base = tmp_path_factory.mktemp("safety")
    real = base / "fileserver" / "shows"
    real.mkdir(parents=True)
    link = base / "mnt-shows"  # the automounter's symlink: the root as the server is told it
    os.symlink(str(real), str(link))
    pattern = write_shot(str(link / "plates"), count=4)
    server = start_bridge(str(link), "--path-map", f"{CLIENT_PREFIX}={link}", log=str(base / "bridge.log"))
    yield SimpleNamespace(base=base, real=real, root=str(link), pattern=pattern, address=server.address)
    assert server.stop() == 0, server.log_tail()


@pytest.fixture
def client(show):
    with BridgeClient(show.address, timeout=60, path_map=PathMap()) as connection:
        yield connection


def artist(show, path):
    """A server path as an artist's machine spells it."""
    return CLIENT_PREFIX + path[len(show.root):]


def test_replies_spell_paths_the_way_the_root_was_given_so_each_artist_gets_their_own_back(show, client):
    clip = client.open_clip(source=artist(show, show.pattern), first_frame=FIRST,
                            outputs={"alpha": f"{CLIENT_PREFIX}/out/alpha.####.exr"})
    result = clip.frame(FIRST)
    assert result.plates == {"alpha": f"{CLIENT_PREFIX}/out/alpha.{FIRST}.exr"}  # not /fileserver/shows/...
    assert os.path.isfile(show.real / "out" / f"alpha.{FIRST}.exr")
    hello = client.hello()
    assert hello["roots"] == [show.root] and hello["os"] == os.name


def test_the_render_command_maps_paths_with_its_own_rules(show, capsys):
    from bridge_server.cli import main

    assert main(["render", artist(show, show.pattern), "--frames", f"{FIRST}-{FIRST + 1}", "--alpha",
                 f"{CLIENT_PREFIX}/cmd/alpha.####.exr", "--server", show.address, "--no-progress",
                 "--path-map", f"{CLIENT_PREFIX}={show.root}"]) == 0
    assert "wrote 2 frames" in capsys.readouterr().out
    assert os.path.isfile(show.real / "cmd" / f"alpha.{FIRST + 1}.exr")


def test_the_render_command_maps_a_windows_path_given_on_a_linux_machine(show, capsys):
    # A farm script written on Windows runs on a Linux client: the command used to make the path
    # "absolute" first (/home/me/P:\shows\...), so no rule could map it, and the error named a
    # path the user never typed.
    from bridge_server.cli import main

    source = "P:\\shows" + show.pattern[len(show.root):].replace("/", "\\")
    alpha = "P:\\shows\\win\\alpha.####.exr"
    common = ["--frames", f"{FIRST}-{FIRST + 1}", "--alpha", alpha, "--server", show.address, "--no-progress"]
    assert main(["render", source, *common, "--path-map", f"P:\\shows={show.root}"]) == 0
    assert "wrote 2 frames" in capsys.readouterr().out
    assert os.path.isfile(show.real / "win" / f"alpha.{FIRST + 1}.exr")
    assert main(["render", source, *common]) == 1
    assert f"no path-mapping rule for {source}" in capsys.readouterr().err


def test_a_windows_path_no_rule_maps_is_refused_naming_the_rule_to_set(show, client):
    with pytest.raises(errors.PathNotMapped, match="RVM_BRIDGE_PATH_MAP"):
        client.open_clip(source="P:\\shows\\plates\\plate.####.exr", outputs={"alpha": "P:\\out\\a.####.exr"})
    peer = RawPeer(show.address)  # a client that does not map at all gets the same from the server
    peer.send(encode(request_header("open_clip", "unmapped", clip="unmapped",
                                    settings={"outputs": {"alpha": "P:\\shows\\out\\a.####.exr"}})))
    reply = peer.reply(30)[0]
    peer.close()
    assert reply["error"]["code"] == "no_path_mapping" and "P:\\shows" in reply["error"]["message"]


def test_outputs_naming_the_source_sequence_are_refused_when_the_clip_opens(show, client):
    with pytest.raises(errors.PlateError, match="source"):
        client.open_clip(source=show.pattern, first_frame=FIRST,
                         outputs={"alpha": show.pattern.replace("####", "%04d")})


def test_a_stream_clip_whose_outputs_name_existing_source_plates_never_overwrites_them(show, client):
    before = {frame: pixels(frame_path(show.pattern, frame)) for frame in (FIRST, FIRST + 1)}
    stamp = os.stat(frame_path(show.pattern, FIRST)).st_mtime_ns
    clip = client.open_clip(first_frame=FIRST, outputs={"alpha": show.pattern})  # no source named: a stream clip
    with pytest.raises(errors.PlateError, match="not"):
        clip.frame(FIRST, path=frame_path(show.pattern, FIRST))
    assert os.stat(frame_path(show.pattern, FIRST)).st_mtime_ns == stamp
    assert all((pixels(frame_path(show.pattern, f)) == before[f]).all() for f in before)


def test_alpha_and_foreground_given_one_path_are_refused(show, client):
    same = f"{show.root}/same/plate.####.exr"
    with pytest.raises(errors.PlateError, match="same file"):
        client.open_clip(first_frame=FIRST, outputs={"alpha": same, "foreground": same.replace("####", "%04d")})


def test_a_stream_clip_output_without_a_frame_token_is_refused(show, client):
    with pytest.raises(errors.PlateError, match="frame token"):
        client.open_clip(first_frame=FIRST, outputs={"alpha": f"{show.root}/untokened/alpha.exr"})


def test_a_frame_token_in_a_folder_name_is_said_to_belong_in_the_file_name(show, client):
    with pytest.raises(errors.BadParameter, match="file name"):
        client.open_clip(first_frame=FIRST, outputs={"alpha": f"{show.root}/sh010_####/alpha.exr"})


def test_an_output_folder_swapped_for_a_symlink_after_the_clip_opened_does_not_lead_out(show, client):
    outside = show.base / "outside"
    outside.mkdir()
    folder = os.path.join(show.root, "swapped")
    clip = client.open_clip(source=show.pattern, first_frame=FIRST, outputs={"alpha": f"{folder}/alpha.####.exr"})
    shutil.rmtree(folder)
    os.symlink(str(outside), folder)
    with pytest.raises(errors.PathOutsideRoots):
        clip.frame(FIRST)
    assert os.listdir(outside) == []


def test_a_folder_given_as_a_plate_is_called_a_folder(show, client):
    clip = client.open_clip(first_frame=FIRST, outputs={"alpha": f"{show.root}/folder/alpha.####.exr"})
    with pytest.raises(errors.PlateError, match="is a folder, not a file"):
        clip.frame(FIRST, path=os.path.join(show.root, "plates"))


def test_a_plate_another_clip_wrote_over_is_made_again_not_served_from_the_cache(show, client):
    # Two artists point clips with other settings at one output folder. The first clip's record
    # of frame 1001 used to be served as "cache, exact" while the file held the second's matte.
    outputs = {"alpha": f"{show.root}/shared/alpha.####.exr"}
    plate = f"{show.root}/shared/alpha.{FIRST}.exr"
    first = client.open_clip(source=show.pattern, first_frame=FIRST, outputs=outputs)
    assert first.frame(FIRST).how == "sequence"
    mine = pixels(plate)
    other = client.open_clip(source=show.pattern, first_frame=FIRST, outputs=outputs, downsample_ratio=0.5)
    other.frame(FIRST)
    assert not (pixels(plate) == mine).all()
    again = first.frame(FIRST)
    assert again.how != "cache" and again.exact
    assert (pixels(plate) == mine).all()
    assert first.frame(FIRST).how == "cache"  # its own plate, untouched, is served as before


def test_an_output_name_too_long_or_a_folder_too_deep_is_a_plate_error_not_a_bug(show, client):
    # A script that builds output names from shot metadata makes a 300-character file name, or a
    # folder per word: the bridge used to answer "internal" (the name too long for its temporary
    # file; os.makedirs recursing once per folder) instead of naming the output to fix.
    bugs_before = client.status()["internal_errors"]
    clip = client.open_clip(first_frame=FIRST, outputs={"alpha": f"{show.root}/long/{'x' * 300}.####.exr"})
    with pytest.raises(errors.PlateError, match="Cannot write plate"):
        clip.frame(FIRST, path=frame_path(show.pattern, FIRST))
    with pytest.raises(errors.PlateError, match="folders deep"):
        client.open_clip(first_frame=FIRST, outputs={"alpha": f"{show.root}/deep/{'d/' * 1500}a.####.exr"})
    assert not os.path.exists(f"{show.root}/deep/d")
    assert client.status()["internal_errors"] == bugs_before
