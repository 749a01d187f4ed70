"""Comp > RVM Matte, run as Resolve runs it, on stand-in Fusion objects, against a real bridge.

The stand-ins (tests/standins/resolve) keep the comp's tools, inputs and undo history; the
bridge is a real server process (``bridge_env``, shared with the other Resolve tests); plates are
compared with the in-process batch render.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time

import numpy as np
import pytest

from .resolve_support import COUNT, LAST, movie_frames, run_script, scope_for
from .standins.resolve import Artist, Bmd, Comp, Fusion, Resolve, UIManager
from .standins.resolve.fusion import frame_file, read_rgb
from .test_server_support import FIRST, has_a_person, pixels, reference_render, write_shot


def first_plate(show) -> str:
    return os.path.join(show["root"], "sh010", f"plate.{FIRST}.exr")


def studio(artist: Artist, comp: Comp, version=(20, 2, 1)):
    resolve = Resolve("DaVinci Resolve Studio", version)
    return Fusion(comp, UIManager(artist), version), Bmd(resolve), resolve


def same(path_a: str, path_b: str) -> bool:
    return bool(np.array_equal(pixels(path_a), pixels(path_b)))


def test_a_loader_gets_alpha_and_foreground_loaders_whose_plates_equal_the_batch_render(bridge_env, capsys):
    show = bridge_env
    comp = Comp(render_start=0, render_end=COUNT - 1)
    comp.add_loader(first_plate(show), global_in=10)
    artist = Artist({"Variant": "mobilenetv3", "Ratio": "auto"})
    fusion, bmd, resolve = studio(artist, comp)

    assert run_script(show["comp_script"], **scope_for(fusion, comp, bmd, resolve)) == 0, capsys.readouterr().out

    assert artist.seen == ["RVMMatte", "RVMProgress"]
    alpha, foreground = comp.FindTool("RVM_Loader1_Alpha"), comp.FindTool("RVM_Loader1_Foreground")
    matte = comp.FindTool("RVM_Loader1_Matte")
    for loader, role in ((alpha, "alpha"), (foreground, "foreground")):
        attrs = loader.GetAttrs()
        assert attrs["TOOLIT_Clip_InitialFrame"] == {1.0: float(FIRST)}
        assert loader.GetInput("GlobalIn") == 10.0 and loader.GetInput("GlobalOut") == 10.0 + COUNT - 1
        for offset in range(COUNT):
            made = frame_file(attrs["TOOLST_Clip_Name"][1.0], FIRST + offset)
            expected = show["reference"][role].replace("####", f"{FIRST + offset:04d}")
            assert same(made, expected), (role, FIRST + offset)
    assert has_a_person(pixels(alpha.GetAttrs()["TOOLST_Clip_Name"][1.0]))
    assert matte.connections == {"Background": foreground, "Foreground": alpha}
    assert matte.inputs == {"MatteCombine": 4, "CombineOp": 0, "PostMultiplyImage": 1}
    # One undo step holding every change, the comp unlocked again.
    assert len(comp.undo_groups) == 1 and comp.loose_edits == [] and comp.locks == 0
    assert any("add Loader" in edit for edit in comp.undo_groups[0])
    assert "wired RVM_Loader1_Alpha" in capsys.readouterr().out


def test_running_it_again_on_the_same_loader_updates_the_same_tools(bridge_env, capsys):
    show = bridge_env
    comp = Comp(render_start=0, render_end=COUNT - 1)
    comp.add_loader(first_plate(show))
    folder = os.path.join(show["root"], "again")
    fusion, bmd, resolve = studio(Artist({"Frames": f"{FIRST}-{FIRST + 3}", "Folder": folder}), comp)
    assert run_script(show["comp_script"], **scope_for(fusion, comp, bmd, resolve)) == 0
    tools_after_first = sorted(comp.tools)
    first_alpha = comp.FindTool("RVM_Loader1_Alpha")
    assert first_alpha.GetInput("GlobalOut") - first_alpha.GetInput("GlobalIn") == 3

    fusion, bmd, resolve = studio(Artist({"Frames": f"{FIRST + 2}-{LAST}", "Ratio": "0.5", "Folder": folder}), comp)
    assert run_script(show["comp_script"], **scope_for(fusion, comp, bmd, resolve)) == 0, capsys.readouterr().out

    assert sorted(comp.tools) == tools_after_first  # nothing added
    assert comp.FindTool("RVM_Loader1_Alpha") is first_alpha
    assert first_alpha.GetInput("GlobalIn") == 2.0 and first_alpha.GetInput("GlobalOut") == float(COUNT - 1)
    assert first_alpha.inputs["Clip"].endswith(f"plate_alpha.{FIRST + 2}.exr")
    assert len(comp.undo_groups) == 2


def test_cancel_in_the_progress_window_leaves_complete_plates_and_the_comp_unchanged(bridge_env, tmp_path, capsys):
    show = bridge_env
    comp = Comp(render_start=0, render_end=COUNT - 1)
    comp.add_loader(first_plate(show))
    folder = os.path.join(show["root"], "cancelled")
    artist = Artist({"Folder": folder}, cancel_after=1)
    fusion, bmd, resolve = studio(artist, comp)

    assert run_script(show["comp_script"], **scope_for(fusion, comp, bmd, resolve)) == 2

    assert "cancelled after" in capsys.readouterr().out
    assert not [name for name in comp.tools if name.startswith("RVM_")]
    assert comp.undo_groups == [] and comp.locks == 0
    made = sorted(name for name in os.listdir(folder) if re.match(r"^plate_alpha\.\d{4}\.exr$", name))
    assert 1 <= len(made) < COUNT, made
    for name in made:  # every plate there is whole: the batch render's, frame for frame
        frame = int(name.split(".")[1])
        assert same(os.path.join(folder, name), show["reference"]["alpha"].replace("####", f"{frame:04d}"))


def test_a_mediain_on_a_movie_is_rendered_to_exrs_by_a_saver_then_matted(bridge_env, capsys):
    show = bridge_env
    frames = movie_frames(show["movie"])
    comp = Comp(render_start=0, render_end=len(frames) - 1)
    media_in = comp.AddTool("MediaIn")
    media_in.media = lambda frame: frames[frame]
    media_in.selected = True
    comp.active = media_in
    comp.loose_edits.clear()
    fusion, bmd, resolve = studio(Artist(), comp)
    clip = resolve.add_clip("interview.mp4", show["movie"], selected=False)
    resolve.put_on_timeline(clip, source_start=0, duration=len(frames))

    assert run_script(show["comp_script"], **scope_for(fusion, comp, bmd, resolve)) == 0, capsys.readouterr().out

    assert [render["Start"] for render in comp.renders] == [0] and comp.renders[0]["End"] == len(frames) - 1
    assert not [tool for tool in comp.tools.values() if tool.reg_id == "Saver"]  # the Saver was temporary
    saved = os.path.join(show["root"], "sh020", "rvm", "source", "interview_src.%04d.exr")
    assert np.allclose(read_rgb(saved % 3), frames[3], atol=2e-3)  # the Saver wrote what the MediaIn shows
    reference = reference_render(saved.replace("%04d", "####"), list(range(len(frames))),
                                 os.path.join(show["root"], "reference_movie"))
    alpha = comp.FindTool("RVM_MediaIn1_Alpha")
    assert alpha.GetInput("GlobalIn") == 0.0
    for frame in range(len(frames)):
        made = os.path.join(show["root"], "sh020", "rvm", f"interview_alpha.{frame:04d}.exr")
        assert same(made, reference["alpha"].replace("####", f"{frame:04d}"))
    assert len(comp.undo_groups) == 1 and any("delete Saver1" in e for e in comp.undo_groups[0])


def test_the_free_edition_without_uimanager_asks_with_fusions_own_prompt(bridge_env, capsys):
    show = bridge_env
    answers = {}

    def ask_user(title, controls):
        answers["fields"] = [control[1.0] for _, control in sorted(controls.items())]
        return {"Server": show["server"].address, "Model": 0.0, "Downsample ratio": "0.5", "Colour space": "",
                "Frames": f"{FIRST}-{FIRST + 1}", "Plates folder": os.path.join(show["root"], "asked")}

    comp = Comp(render_start=0, render_end=COUNT - 1, ask_user=ask_user)
    comp.add_loader(first_plate(show))
    resolve = Resolve("DaVinci Resolve", (19, 1, 4))
    fusion = Fusion(comp, ui=None, version=(19, 1, 4))

    assert run_script(show["comp_script"], **scope_for(fusion, comp, Bmd(resolve), resolve)) == 0

    out = capsys.readouterr().out
    assert answers["fields"] == ["Server", "Model", "Downsample ratio", "Colour space", "Frames", "Plates folder"]
    assert "to cancel, create a file named STOP" in out and f"frame {FIRST + 1} (2/2)" in out
    assert sorted(os.listdir(os.path.join(show["root"], "asked"))) == [
        f"plate_alpha.{FIRST}.exr", f"plate_alpha.{FIRST + 1}.exr", f"plate_fg.{FIRST}.exr", f"plate_fg.{FIRST + 1}.exr"]
    assert comp.FindTool("RVM_Loader1_Matte") is not None


def test_with_no_dialog_at_all_it_uses_the_defaults_and_says_which(bridge_env, capsys):
    show = bridge_env
    comp = Comp(render_start=0, render_end=COUNT - 1)
    comp.add_loader(first_plate(show))
    fusion = Fusion(comp, ui=None, version=(19, 1, 4))
    resolve = Resolve("DaVinci Resolve", (19, 1, 4))
    assert run_script(show["comp_script"], **scope_for(fusion, comp, Bmd(resolve), resolve)) == 0
    out = capsys.readouterr().out
    assert "RVM Matte on DaVinci Resolve 19.1.4: Python scripts from Workspace > Scripts: yes" in out
    assert "settings dialog: no UIManager" in out
    assert "this edition has no dialog; using server " + show["server"].address in out
    assert f"frames {FIRST}-{LAST}" in out


@pytest.mark.parametrize("case", ["nothing selected", "no server", "outside the roots", "not a file", "too old"])
def test_each_stop_is_said_in_the_artists_words(bridge_env, tmp_path, monkeypatch, capsys, case):
    show = bridge_env
    comp = Comp(render_start=0, render_end=COUNT - 1)
    version = (20, 2, 1)
    if case == "nothing selected":
        expected = "select a Loader or a MediaIn in the Flow first"
    elif case == "no server":
        comp.add_loader(first_plate(show))
        monkeypatch.setenv("RVM_BRIDGE_ADDRESS", "tcp://127.0.0.1:9")
        expected = "no RVM bridge answered at tcp://127.0.0.1:9. Start one in a terminal with `rvm-bridge serve"
    elif case == "outside the roots":
        comp.add_loader(write_shot(str(tmp_path / "elsewhere"), count=2).replace("####", f"{FIRST}"))
        expected = f"may only read and write under {show['root']}"
    elif case == "not a file":
        media_in = comp.AddTool("MediaIn")
        media_in.selected = True
        expected = "is not a file on disk (a generator, title, compound or Fusion clip)"
    else:
        comp.add_loader(first_plate(show))
        version = (17, 4, 6)
        expected = "too old for RVM Matte (needs 18.0 or newer)"
    fusion, bmd, resolve = studio(Artist(), comp, version)
    if case == "not a file":
        resolve.put_on_timeline(resolve.add_clip("Title", "", selected=False), 0, 24)

    assert run_script(show["comp_script"], **scope_for(fusion, comp, bmd, resolve)) == 1

    assert expected in capsys.readouterr().out
    assert not [name for name in comp.tools if name.startswith("RVM_")] and comp.locks == 0


def test_without_uimanager_a_stop_file_in_the_plates_folder_cancels(bridge_env, capsys):
    show = bridge_env
    folder = os.path.join(show["root"], "stopped")
    os.makedirs(folder)
    comp = Comp(render_start=0, render_end=COUNT - 1)
    comp.add_loader(first_plate(show))
    fusion = Fusion(comp, ui=None, version=(19, 1, 4))
    resolve = Resolve("DaVinci Resolve", (19, 1, 4))
    answers = {"Plates folder": folder}

    def artist_stops_after_the_first_plate():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not os.path.exists(os.path.join(folder, f"plate_alpha.{FIRST}.exr")):
            time.sleep(0.005)
        open(os.path.join(folder, "STOP"), "w").close()

    comp.ask_user = lambda title, controls: dict(answers, Server=show["server"].address)
    watcher = threading.Thread(target=artist_stops_after_the_first_plate)
    watcher.start()
    try:
        status = run_script(show["comp_script"], **scope_for(fusion, comp, Bmd(resolve), resolve))
    finally:
        watcher.join()
    out = capsys.readouterr().out
    assert status == 2, out
    assert f"create a file named STOP in {folder}" in out and "cancelled after" in out
    made = [name for name in os.listdir(folder) if re.match(r"^plate_alpha\.\d{4}\.exr$", name)]
    assert 1 <= len(made) < COUNT and not os.path.exists(os.path.join(folder, "STOP"))
    assert not [name for name in comp.tools if name.startswith("RVM_")]


def test_a_loader_played_in_reverse_is_matted_as_the_comp_shows_it(bridge_env, capsys):
    # The artist reversed the plate in the Loader: reading its files 1001 upwards would give a
    # matte running the other way from the picture. What the comp shows goes through a Saver.
    show = bridge_env
    comp = Comp(render_start=0, render_end=COUNT - 1)
    loader = comp.add_loader(first_plate(show), global_in=10)
    loader.SetInput("GlobalOut", 10 + COUNT - 1)
    loader.SetInput("Reverse", 1)
    comp.loose_edits.clear()
    folder = os.path.join(show["root"], "reversed")
    fusion, bmd, resolve = studio(Artist({"Folder": folder}), comp)

    assert run_script(show["comp_script"], **scope_for(fusion, comp, bmd, resolve)) == 0, capsys.readouterr().out

    assert [(render["Start"], render["End"]) for render in comp.renders] == [(10, 10 + COUNT - 1)]
    saved = os.path.join(folder, "source", "plate_src.%04d.exr")
    assert np.array_equal(read_rgb(saved % 10), read_rgb(frame_file(first_plate(show), LAST)))
    alpha = comp.FindTool("RVM_Loader1_Alpha")
    assert alpha.GetInput("GlobalIn") == 10.0 and alpha.GetInput("GlobalOut") == 10.0 + COUNT - 1
    assert alpha.inputs["Clip"] == os.path.join(folder, "plate_alpha.0010.exr")
    assert has_a_person(pixels(alpha.inputs["Clip"])) and len(comp.undo_groups) == 1


def test_a_loader_whose_clip_uses_the_comp_path_map_is_matted_from_the_mapped_files(bridge_env, capsys):
    # Fusion artists keep clips relative to the comp ("Comp:plate.1001.exr", Composition:MapPath);
    # the script must read the files that path map names, not a file called "Comp:plate...".
    show = bridge_env
    comp = Comp(render_start=0, render_end=COUNT - 1, file_name=os.path.join(show["root"], "sh010", "sh010.comp"))
    comp.add_loader(f"Comp:plate.{FIRST}.exr")
    folder = os.path.join(show["root"], "mapped")
    fusion, bmd, resolve = studio(Artist({"Frames": f"{FIRST}-{FIRST + 1}", "Folder": folder}), comp)

    assert run_script(show["comp_script"], **scope_for(fusion, comp, bmd, resolve)) == 0, capsys.readouterr().out

    assert comp.renders == []  # read by the bridge from the sequence itself
    alpha = comp.FindTool("RVM_Loader1_Alpha")
    assert alpha.inputs["Clip"] == os.path.join(folder, f"plate_alpha.{FIRST}.exr")
    assert same(alpha.inputs["Clip"], show["reference"]["alpha"].replace("####", f"{FIRST:04d}"))


def test_a_plates_folder_that_cannot_be_made_is_said_and_the_comp_is_left_as_it_was(bridge_env, tmp_path, capsys):
    # A still goes through a Saver into the plates folder; the artist typed a folder that cannot
    # be made (here: under a file). The console gets one sentence, not a traceback.
    show = bridge_env
    still = os.path.join(show["root"], "sh070", "portrait.exr")
    os.makedirs(os.path.dirname(still), exist_ok=True)
    shutil.copy(first_plate(show), still)
    in_the_way = tmp_path / "notes.txt"
    in_the_way.write_text("a file, not a folder")
    comp = Comp(render_start=0, render_end=0)
    comp.add_loader(still)
    fusion, bmd, resolve = studio(Artist({"Folder": str(in_the_way / "plates")}), comp)

    assert run_script(show["comp_script"], **scope_for(fusion, comp, bmd, resolve)) == 1

    out = capsys.readouterr().out
    assert f"cannot make the folder {in_the_way / 'plates' / 'source'}" in out and "Traceback" not in out
    assert not [name for name in comp.tools if name.startswith("RVM_") or name.startswith("Saver")]
    assert comp.locks == 0 and comp.open_undo is None


# -- Comp > RVM Try Ratios -----------------------------------------------------------------------------------------
def sheet_ratios(path: str) -> str:
    import OpenImageIO as oiio

    image = oiio.ImageInput.open(path)
    assert image is not None, path
    ratios = image.spec().getattribute("rvm:ratios")
    image.close()
    return ratios


def test_try_ratios_loads_the_contact_sheet_in_one_loader_and_prints_the_suggestion(bridge_env, capsys):
    show = bridge_env
    comp = Comp(render_start=0, render_end=COUNT - 1)
    comp.add_loader(first_plate(show))
    fusion, bmd, resolve = studio(Artist(), comp)

    assert run_script(show["ratios_script"], **scope_for(fusion, comp, bmd, resolve)) == 0, capsys.readouterr().out

    out = capsys.readouterr().out
    sheet = os.path.join(show["root"], "sh010", "rvm", "plate_ratios.png")
    loader = comp.FindTool("RVM_Loader1_Ratios")
    assert loader is not None and loader.inputs["Clip"] == sheet and os.path.isfile(sheet)
    assert sheet_ratios(sheet) == "0.125,0.25,0.4,0.6"
    assert f"frames {FIRST}-{FIRST + 7} of " in out and "RVM Try Ratios: suggested downsample ratio " in out
    assert all(f"{ratio:g}" in out for ratio in (0.125, 0.25, 0.4, 0.6))
    assert len(comp.undo_groups) == 1 and comp.loose_edits == [] and comp.locks == 0
    tools = sorted(comp.tools)

    # Again: the same Loader is updated, nothing added; one more undo step.
    fusion, bmd, resolve = studio(Artist(), comp)
    assert run_script(show["ratios_script"], **scope_for(fusion, comp, bmd, resolve)) == 0
    assert sorted(comp.tools) == tools and comp.FindTool("RVM_Loader1_Ratios") is loader
    assert len(comp.undo_groups) == 2


def test_try_ratios_with_no_bridge_says_how_to_start_one(bridge_env, monkeypatch, capsys):
    show = bridge_env
    comp = Comp(render_start=0, render_end=COUNT - 1)
    comp.add_loader(first_plate(show))
    monkeypatch.setenv("RVM_BRIDGE_ADDRESS", "tcp://127.0.0.1:9")
    fusion, bmd, resolve = studio(Artist(), comp)

    assert run_script(show["ratios_script"], **scope_for(fusion, comp, bmd, resolve)) == 1
    assert "no RVM bridge answered at tcp://127.0.0.1:9. Start one in a terminal with `rvm-bridge serve" in \
        capsys.readouterr().out
    assert not [name for name in comp.tools if name.startswith("RVM_")] and comp.locks == 0


def test_try_ratios_while_the_bridge_tries_another_clip_says_so_in_the_artists_words(bridge_env):
    """Another artist's Try Ratios holds the bridge (one at a time): once the client stops asking
    again, the script says the bridge is trying ratios for another clip and to run it again, not
    that the bridge "could not make the matte"; the comp is not touched."""
    import types

    from bridge_server import client
    from host_plugins.resolve import comp_matte
    from host_plugins.resolve.messages import UserError

    class BusyClient(client.BridgeClient):
        def try_ratios(self, *args, **kwargs):
            raise client.ServerBusy("another try_ratios is running; the bridge runs one at a time: ask again when "
                                    "it is done (still busy after 300 s)")

    unit = types.ModuleType("busy_client")
    unit.__dict__.update(vars(client))
    unit.BridgeClient = BusyClient
    show = bridge_env
    comp = Comp(render_start=0, render_end=COUNT - 1)
    comp.add_loader(first_plate(show))
    fusion, bmd, resolve = studio(Artist(), comp)
    with pytest.raises(UserError) as stopped:
        comp_matte.try_ratios(fusion, comp, resolve=resolve, client=unit, say=lambda text: None)
    said = str(stopped.value)
    assert said.startswith("RVM Try Ratios: the bridge at ") and "is still trying ratios for another clip" in said
    assert said.endswith("Run RVM Try Ratios again when it is done.") and "could not make the matte" not in said
    assert not [name for name in comp.tools if name.startswith("RVM_")] and comp.locks == 0
