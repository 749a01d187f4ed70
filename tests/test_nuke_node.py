"""The RVMMatte node as a compositor meets it, run through the `nuke` stand-in
(tests/standins/nuke) from the plug-in folder the real installer made, against a real bridge
process on loopback, with real EXR files.

No Nuke is run here (there is no licence on CI): the stand-in imitates the parts of Nuke the node
uses, and says where each is documented."""

from __future__ import annotations

import os
import runpy
import socket
import sys
import time

import numpy as np
import pytest

from bridge_server.install.nuke import install_nuke
from bridge_server.install.pathpicker import platform_name

from .test_server_support import FIRST, pixels, shot_frames, start_bridge, to_linear, write_shot

STANDINS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standins")
FRAMES = list(range(FIRST, FIRST + 12))
PLUGIN = {}


@pytest.fixture(scope="module")
def nuke(tmp_path_factory, pyzmq_wheels):
    """The stand-in ``nuke`` module with the installed plug-in's init.py run, as Nuke runs it."""
    plugin = tmp_path_factory.mktemp("nuke") / "plugin"
    install_nuke(str(plugin), [16], [platform_name()], wheel_source=pyzmq_wheels)
    sys.path.insert(0, STANDINS)
    import nuke as standin

    runpy.run_path(str(plugin / "init.py"))
    PLUGIN["folder"] = plugin
    import rvm_matte

    assert rvm_matte.__file__.startswith(str(plugin))  # the installed copy, not the repository's
    yield standin
    sys.path.remove(STANDINS)
    sys.path[:] = [path for path in sys.path if not path.startswith(str(plugin))]
    for name in [n for n in sys.modules if n.split(".")[0] in ("nuke", "rvm_matte", "rvm_bridge_client",
                                                               "rvm_bridge_paths")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def show(tmp_path_factory):
    """A show folder the bridge serves, a 12-frame plate with a person in it, its batch render."""
    from .test_server_support import reference_render

    root = tmp_path_factory.mktemp("show")
    pattern = write_shot(str(root / "plates"), count=len(FRAMES))
    reference = reference_render(pattern, FRAMES, str(root / "reference"), foreground=True, rgba=True)
    server = start_bridge(str(root))
    yield {"root": root, "pattern": pattern, "reference": reference, "address": server.address}
    assert server.stop() == 0, server.log_tail()


def session(nuke, show, version=(16, 0), gui=False):
    """A new Nuke session with a saved script in the show folder."""
    import rvm_matte.callbacks

    nuke.configure(version=version, gui=gui)  # a new Nuke session: its callback registry is empty
    rvm_matte.callbacks._registered.clear()
    rvm_matte.callbacks.register()
    nuke.root()["name"].setValue(str(show["root"] / "comp" / "sh010.nk"))
    return rvm_matte


def rvm_node(nuke, show, upstream):
    import rvm_bridge_client
    import rvm_matte.node
    from rvm_bridge_client import DEFAULT_ADDRESS

    group = rvm_matte.node.create(rvm_bridge_client)
    assert group["server"].value() == DEFAULT_ADDRESS
    group["server"].setValue(show["address"])
    group.setInput(0, upstream)
    return group


def plate_read(nuke, pattern, first=FIRST, last=FIRST + 11):
    return nuke.nodes.Read(file=pattern, first=first, last=last, origfirst=first, origlast=last)


def out_folder(show, group):
    return show["root"] / "comp" / "rvm_matte" / group["rvm_clip_id"].value()


def same(a, b):
    return np.array_equal(pixels(str(a)), pixels(str(b)))


def ref(show, name, frame):
    return show["reference"][name].replace("####", f"{frame:04d}")


def test_a_graded_plate_is_written_by_the_node_and_its_matte_matches_the_batch_render_bit_for_bit(nuke, show):
    rvm_matte = session(nuke, show)
    grade = nuke.nodes.Grade(multiply=1.0)
    grade.setInput(0, plate_read(nuke, show["pattern"]))
    group = rvm_node(nuke, show, grade)
    line = rvm_matte.render.render_matte(group)

    assert "frames 1001-1012: 12 made (12 sequence), 12 exact, no pre-roll, 0 cold; input written" in line
    assert [frame for name, frame in nuke.state.executed if name == "RVMMatte1.rvm_input"] == FRAMES
    out = out_folder(show, group)
    for frame in FRAMES:
        assert same(out / f"rgba.{frame:04d}.exr", ref(show, "rgba", frame)), frame
        assert same(out / f"fg.{frame:04d}.exr", ref(show, "foreground", frame)), frame
    # The node's output is the premultiplied RGBA plate, read back through its internal Read.
    shown = group._image(FIRST + 5)
    expected = pixels(ref(show, "rgba", FIRST + 5))
    assert np.array_equal(np.stack([shown.channels[c] for c in "RGBA"], axis=-1), expected)
    assert group["label"].value().startswith("frames 1001-1012: 12 made")
    # The menus now hold what this bridge describes, not a list of the node's own.
    assert group["colour_space"].values()[0] == "working space" and "ACEScg" in group["colour_space"].values()
    assert group["variant"].values() == ["mobilenetv3", "resnet50"]

    # The output mode follows the knob, also when Nuke 17.1 fires knobChanged for our own setValue.
    nuke.artist_sets(group["output"], "alpha only")
    assert rvm_matte.node.inner(group, "rvm_output")["which"].value() == 1
    nuke.state.programmatic_knob_changed = True
    group["output"].setValue("green-screen check")
    assert rvm_matte.node.inner(group, "rvm_output")["which"].value() == 3


def test_a_plain_exr_read_is_read_by_the_bridge_and_a_re_render_of_frames_5_to_8_pre_rolls_from_the_first(
        nuke, show, capsys):
    rvm_matte = session(nuke, show)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    line = rvm_matte.render.render_matte(group)
    assert line.endswith("plate files read by the bridge") and nuke.state.executed == []
    printed = capsys.readouterr().out  # nuke -t / -x: no GUI, so progress is printed
    assert "RVMMatte: RVMMatte RVMMatte1: frame 1012: sequence (12/12)" in printed
    out = out_folder(show, group)
    assert not (out / "input").exists()  # nothing re-written
    before = {frame: os.stat(out / f"rgba.{frame:04d}.exr").st_mtime_ns for frame in FRAMES}

    nuke.GUI = True  # the artist re-renders part of the range from the panel (Nuke 16: percent progress)
    group["render_frames"].setValue("1005-1008")
    group["render"].execute()
    line = group["info"].value()
    assert (nuke.state.tasks[-1].maximum, nuke.state.tasks[-1].progress) == (100, 100)
    assert line.startswith("frames 1005-1008: 4 made (4 sequence), 4 exact, 4 pre-rolled first, 0 cold"), line
    for frame in FRAMES:
        changed = os.stat(out / f"rgba.{frame:04d}.exr").st_mtime_ns != before[frame]
        assert changed == (FIRST + 4 <= frame <= FIRST + 7), frame
        assert same(out / f"rgba.{frame:04d}.exr", ref(show, "rgba", frame)), frame
    assert rvm_matte.render.is_current(group, FIRST, FIRST + 11)  # the whole range is still current


def test_cancel_half_way_in_the_gui_leaves_only_complete_plates_and_says_re_render(nuke, show):
    session(nuke, show, version=(17, 1), gui=True)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    nuke.state.cancel_after = 5
    group["render"].execute()  # the artist presses Render matte, then Cancel

    task = nuke.state.tasks[0]
    assert (task.maximum, task.flags) == (12, 3)  # Nuke 17.1's ProgressTask(name, maximum, flags)
    settle(out_folder(show, group))  # a frame the bridge was running when the clip closed still lands
    made = sorted(name for name in os.listdir(out_folder(show, group)) if name.startswith("rgba."))
    assert 5 <= len(made) < 12, made
    for name in os.listdir(out_folder(show, group)):
        assert name.endswith(".exr"), name  # no temporary files left
    for index, name in enumerate(made):
        assert name == f"rgba.{FIRST + index:04d}.exr"
        assert same(out_folder(show, group) / name, ref(show, "rgba", FIRST + index))
    assert group["info"].value().startswith("cancelled:") and nuke.state.messages == []
    import rvm_matte.node

    assert rvm_matte.node.inner(group, "rvm_output")["which"].value() == rvm_matte.node.STALE_INPUT


def settle(folder):
    """Wait until the plate folder stops changing: a frame the bridge was running when the clip
    closed still finishes (atomically) after the render returned."""
    deadline, last = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        listing = sorted(os.listdir(folder))
        if listing == last:
            return
        last = listing
        time.sleep(0.5)


def free_address():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def node_with_no_bridge(nuke, show):
    """An RVMMatte node in a GUI session pointed at an address where no bridge answers."""
    session(nuke, show, gui=True)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    address = free_address()
    group["server"].setValue(address)
    group["timeout"].setValue(2)
    return group, address


def test_a_missing_server_is_said_with_the_command_that_starts_one(nuke, show):
    group, address = node_with_no_bridge(nuke, show)
    group["render"].execute()
    said = nuke.state.messages[-1]
    assert said.startswith(f"No bridge answers at {address}. Start one on the machine with the GPU:")
    assert f"rvm-bridge serve --address {address} --root " in said
    # The root to start it with is the plates folder, not this one clip's folder inside it.
    assert f"--root {show['root'] / 'comp' / 'rvm_matte'}\n" in said
    assert "start a local bridge" in said  # the installer recorded this machine's bridge
    assert group["info"].value() == said


def test_a_plates_folder_outside_the_bridges_roots_is_said_with_the_root_list(nuke, show, tmp_path):
    rvm_matte = session(nuke, show)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    group["plates_folder"].setValue(str(tmp_path / "elsewhere"))
    with pytest.raises(rvm_matte.render.MatteError) as caught:
        rvm_matte.render.render_matte(group)
    assert f"may only read and write under: {show['root']}" in str(caught.value)


def test_without_pyzmq_the_node_says_which_install_command_fixes_it(nuke, show, monkeypatch):
    rvm_matte = session(nuke, show)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    monkeypatch.setitem(sys.modules, "zmq", None)  # what `import zmq` meets in a Nuke without it
    with pytest.raises(rvm_matte.render.MatteError) as caught:
        rvm_matte.render.render_matte(group)
    assert "needs pyzmq for this Nuke's Python" in str(caught.value)
    assert "rvm-bridge install nuke " in str(caught.value) and "--nuke 16" in str(caught.value)


def test_a_changed_grade_makes_the_matte_stale_and_a_render_node_re_renders_it_once(nuke, show):
    rvm_matte = session(nuke, show)
    grade = nuke.nodes.Grade(multiply=1.0)
    grade.setInput(0, plate_read(nuke, show["pattern"]))
    group = rvm_node(nuke, show, grade)
    group["use_input_range"].setValue(False)
    group["first"].setValue(FIRST)
    group["last"].setValue(FIRST + 3)
    rvm_matte.render.render_matte(group)
    switch = rvm_matte.node.inner(group, "rvm_output")
    assert switch["which"].value() == 0

    nuke.artist_sets(grade["multiply"], 1.25)
    nuke.update_ui(group)
    assert group["info"].value().startswith("re-render needed") and switch["which"].value() == 4

    # nuke -x renders a Write under the node: the before-render callback renders the matte first.
    comp = show["root"] / "comp" / "out"
    comp.mkdir(parents=True, exist_ok=True)
    write = nuke.nodes.Write(file=str(comp / "comp.####.exr"), channels="rgba")
    write.setInput(0, group)
    nuke.execute(write, FIRST, FIRST + 3)
    inputs_written = [frame for name, frame in nuke.state.executed if name == "RVMMatte1.rvm_input"]
    assert inputs_written == [FIRST, FIRST + 1, FIRST + 2, FIRST + 3] * 2  # first render, then once more
    assert switch["which"].value() == 0 and not group["info"].value().startswith("re-render")
    out = out_folder(show, group)
    for frame in range(FIRST, FIRST + 4):
        assert same(comp / f"comp.{frame:04d}.exr", out / f"rgba.{frame:04d}.exr")
    nuke.execute(write, FIRST, FIRST + 3)  # a second Write render: the matte is current, not redone
    assert len([1 for name, _ in nuke.state.executed if name == "RVMMatte1.rvm_input"]) == 8


def test_the_clip_survives_save_and_reopen_but_a_pasted_copy_is_a_new_clip(nuke, show):
    session(nuke, show)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    clip = group["rvm_clip_id"].value()
    nuke.scriptSave(str(show["root"] / "comp" / "sh010_v2.nk"))
    nuke.scriptOpen(str(show["root"] / "comp" / "sh010_v2.nk"))
    reopened = nuke.toNode("RVMMatte1")
    assert reopened is not group and reopened["rvm_clip_id"].value() == clip
    assert reopened.input(0) is nuke.toNode("Read1")

    reopened["selected"].setValue(True)
    nuke.nodeCopy("%clipboard%")
    pasted = nuke.nodePaste("%clipboard%")
    assert pasted.name() == "RVMMatte2"
    assert pasted["rvm_clip_id"].value() not in ("", clip) and reopened["rvm_clip_id"].value() == clip


def test_overscan_survives_the_round_trip_through_the_nodes_write(nuke, show):
    """Plates whose data window is larger (overscan) or smaller than the display window: Nuke
    writes the bbox, the bridge mattes the display window, and the matte equals the batch render
    of the plates."""
    import OpenImageIO as oiio

    from .test_server_support import reference_render

    folder = show["root"] / "overscan"
    folder.mkdir()
    frames = shot_frames(3, 144)
    windows = {FIRST: (-8, -8, 144, 144), FIRST + 1: (-8, -8, 144, 144), FIRST + 2: (16, 24, 96, 80)}
    for index, (x, y, width, height) in enumerate(windows.values()):
        spec = oiio.ImageSpec(width, height, 3, oiio.HALF)
        spec.x, spec.y = x, y
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, 128, 128
        spec.channelnames = ("R", "G", "B")
        out = oiio.ImageOutput.create(str(folder / f"os.{FIRST + index:04d}.exr"))
        assert out.open(str(folder / f"os.{FIRST + index:04d}.exr"), spec)
        pixels_in = to_linear(frames[index])[y + 8: y + 8 + height, x + 8: x + 8 + width]
        out.write_image(np.ascontiguousarray(pixels_in))
        out.close()
    pattern = str(folder / "os.####.exr")
    expected = reference_render(pattern, [FIRST, FIRST + 1, FIRST + 2], str(folder / "reference"), rgba=True)

    rvm_matte = session(nuke, show)
    grade = nuke.nodes.Grade(multiply=1.0)
    grade.setInput(0, plate_read(nuke, pattern, FIRST, FIRST + 2))
    group = rvm_node(nuke, show, grade)
    rvm_matte.render.render_matte(group)
    out = out_folder(show, group)
    for frame, window in windows.items():
        written = oiio.ImageInput.open(str(out / "input" / f"input.{frame:04d}.exr"))
        spec = written.spec()
        written.close()
        assert (spec.x, spec.y, spec.width, spec.height) == window
        assert (spec.full_width, spec.full_height, spec.format) == (128, 128, oiio.TypeDesc("half"))
    for frame in range(FIRST, FIRST + 3):
        assert same(out / f"rgba.{frame:04d}.exr", expected["rgba"].replace("####", f"{frame:04d}"))


def test_the_input_colour_space_defaults_to_the_scripts_working_space(nuke, show):
    rvm_matte = session(nuke, show)
    from rvm_matte.colour import working_space

    root = nuke.root()
    assert working_space(root, {}).colour_space is None  # Nuke's linear: the bridge's scene-linear Rec.709
    root["colorManagement"].setValue("OCIO")
    root["OCIO_config"].setValue("fn-nuke_cg-config-v1.0.0_aces-v1.3_ocio-v2.1")
    root["workingSpaceLUT"].setValue("ACEScg")
    assert working_space(root, {})[:2] == ("ACEScg", "ocio://cg-config-v1.0.0_aces-v1.3_ocio-v2.1")
    assert working_space(root, {"OCIO": "/studio/config.ocio"})[:2] == ("ACEScg", "/studio/config.ocio")
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    assert rvm_matte.render.clip_settings(group)["colour_space"] == "ACEScg"


def test_a_farm_chunk_renders_its_own_frames_pre_rolled_from_the_shot_start(nuke, show, monkeypatch):
    """Each farm task runs `nuke -x` on the script for its chunk and says which frames in
    RVM_MATTE_FRAMES: the before-render callback renders that chunk once, pre-rolling from the
    node's first frame, so a chunk's plates equal the whole range's."""
    rvm_matte = session(nuke, show)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    comp = show["root"] / "comp" / "chunks"
    comp.mkdir(parents=True, exist_ok=True)
    write = nuke.nodes.Write(file=str(comp / "comp.####.exr"), channels="rgba")
    write.setInput(0, group)
    monkeypatch.setenv("RVM_MATTE_FRAMES", "1009-1012")
    nuke.execute(write, FIRST + 8, FIRST + 11)
    assert group["info"].value().startswith(
        "frames 1009-1012: 4 made (4 sequence), 4 exact, 8 pre-rolled first, 0 cold"), group["info"].value()
    assert group["info"].value().endswith("only frames 1009-1012 of 1001-1012 are rendered")
    out = out_folder(show, group)
    assert sorted(os.listdir(out)) == [f"{name}.{frame:04d}.exr" for name in ("fg", "rgba")
                                       for frame in range(FIRST + 8, FIRST + 12)]
    for frame in range(FIRST + 8, FIRST + 12):
        assert same(out / f"rgba.{frame:04d}.exr", ref(show, "rgba", frame))
        assert same(comp / f"comp.{frame:04d}.exr", ref(show, "rgba", frame))
    before = os.stat(out / "rgba.1009.exr").st_mtime_ns
    nuke.execute(write, FIRST + 8, FIRST + 11)  # the same chunk again: already current, not re-rendered
    assert os.stat(out / "rgba.1009.exr").st_mtime_ns == before
    assert rvm_matte.render.is_current(group, FIRST + 8, FIRST + 11)


def test_a_plate_the_bridge_cannot_read_is_named(nuke, show):
    folder = show["root"] / "broken"
    folder.mkdir()
    for frame in range(FIRST, FIRST + 3):
        source = show["pattern"].replace("####", f"{frame:04d}")
        (folder / f"plate.{frame:04d}.exr").write_bytes(open(source, "rb").read() if frame != FIRST + 1 else b"not an exr")
    rvm_matte = session(nuke, show)
    group = rvm_node(nuke, show, plate_read(nuke, str(folder / "plate.####.exr"), FIRST, FIRST + 2))
    with pytest.raises(rvm_matte.render.MatteError) as caught:
        rvm_matte.render.render_matte(group)
    assert str(caught.value).startswith("The bridge cannot read or write a plate:")
    assert "plate.1002.exr" in str(caught.value)


@pytest.mark.parametrize("code,expected", [
    ("protocol_version", "speak different protocol versions"),
    ("busy", "is busy with other clips"),
    ("too_many_clips", "is busy with other clips"),
    ("no_path_mapping", "Add a path mapping rule"),
])
def test_other_bridge_errors_are_said_in_the_artists_words(nuke, code, expected):
    import rvm_bridge_client
    from rvm_matte.messages import explain

    error = rvm_bridge_client.errors.error_for_code(code, "what the server said")
    said = explain(error, rvm_bridge_client, "tcp://gpu01:5701", "/shows/sh010/rvm_matte")
    assert expected in said and "tcp://gpu01:5701" in said


def test_the_start_a_local_bridge_button_starts_one_the_node_can_reach(nuke, show):
    import rvm_matte.render

    session(nuke, show, gui=True)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    address = free_address()
    group["server"].setValue(address)
    group["start_bridge"].execute()
    try:
        assert nuke.state.messages[-1] == f"A bridge runs at {address}, reading and writing under " \
                                          f"{show['root'] / 'comp'}."
        group["refresh"].execute()  # the menus now come from that bridge
        assert "ACEScg" in group["colour_space"].values() and len(nuke.state.messages) == 1
    finally:
        while rvm_matte.render._local_bridges:
            assert rvm_matte.render._local_bridges.pop().stop() == 0


def test_the_stand_in_refuses_what_real_nuke_lacks(nuke, show):
    """Not a blanket mock: a missing attribute, knob or node class fails as it would in Nuke, and
    a 17.1-only ProgressTask signature fails under 16."""
    session(nuke, show, version=(16, 0))
    with pytest.raises(AttributeError):
        nuke.ProgressTask.kUserCanCancel  # noqa: B018
    with pytest.raises(TypeError):
        nuke.ProgressTask("RVMMatte", 12, 3)
    with pytest.raises(AttributeError):
        nuke.addBeforeRenderEverywhere  # noqa: B018
    with pytest.raises(AttributeError):
        nuke.nodes.Keyer2000()
    read = plate_read(nuke, show["pattern"])
    with pytest.raises(NameError):
        read["no_such_knob"]  # noqa: B018
    assert read.knob("no_such_knob") is None
    with pytest.raises(NotImplementedError):
        nuke.nodes.Merge2()._image(FIRST)  # knobs and inputs only: its pixels are not imitated


def test_a_plain_read_outside_the_bridges_roots_is_written_by_the_node_instead(nuke, show, tmp_path):
    elsewhere = tmp_path / "local_disk"
    elsewhere.mkdir()
    for frame in range(FIRST, FIRST + 3):
        source = show["pattern"].replace("####", f"{frame:04d}")
        (elsewhere / f"plate.{frame:04d}.exr").write_bytes(open(source, "rb").read())
    rvm_matte = session(nuke, show)
    group = rvm_node(nuke, show, plate_read(nuke, str(elsewhere / "plate.####.exr"), FIRST, FIRST + 2))
    line = rvm_matte.render.render_matte(group)
    assert line.endswith("input written by the node")
    assert [frame for name, frame in nuke.state.executed if name == "RVMMatte1.rvm_input"] == [FIRST, FIRST + 1,
                                                                                               FIRST + 2]
    for frame in range(FIRST, FIRST + 3):
        assert same(out_folder(show, group) / f"rgba.{frame:04d}.exr", ref(show, "rgba", frame))


def test_menu_py_puts_rvm_matte_in_the_toolbar_and_its_command_makes_the_node(nuke, show):
    session(nuke, show, gui=True)
    read = plate_read(nuke, show["pattern"])
    read["selected"].setValue(True)
    runpy.run_path(str(PLUGIN["folder"] / "menu.py"))
    command = nuke.menu("Nodes").findItem("RVM").findItem("RVMMatte")
    exec(command, {})
    made = nuke.toNode("RVMMatte1")
    assert made is not None and made.input(0) is read  # under the selected plate, as Tab would
    assert made["server"].value() == "tcp://127.0.0.1:5701" and made["downsample_ratio"].value() == "auto"
    assert made["info"].value().startswith("not rendered yet")


def test_a_missing_frame_upstream_or_an_unwritable_plates_folder_is_said_on_the_node(nuke, show):
    """A graded Read with a hole in its sequence, and a plates folder that cannot be made: the
    artist gets a message box and the node says why, not a Python traceback."""
    folder = show["root"] / "holes"
    folder.mkdir()
    for frame in (FIRST, FIRST + 2):
        source = show["pattern"].replace("####", f"{frame:04d}")
        (folder / f"plate.{frame:04d}.exr").write_bytes(open(source, "rb").read())
    session(nuke, show, gui=True)
    grade = nuke.nodes.Grade(multiply=1.0)
    grade.setInput(0, plate_read(nuke, str(folder / "plate.####.exr"), FIRST, FIRST + 2))
    group = rvm_node(nuke, show, grade)
    group["render"].execute()
    assert nuke.state.messages[-1].startswith("Nuke could not make frame 1002 of the input for the bridge:")
    assert "plate.1002.exr" in group["info"].value()
    assert group.node("rvm_input")["disable"].value()  # the internal Write is off again

    (show["root"] / "a_file").write_text("not a folder")
    group["plates_folder"].setValue(str(show["root"] / "a_file" / "plates"))
    group["render"].execute()
    assert nuke.state.messages[-1].startswith("Cannot make the plates folder ")
    assert group["info"].value() == nuke.state.messages[-1]


def test_a_farm_chunk_beyond_one_nodes_range_renders_only_the_nodes_that_need_it(nuke, show, monkeypatch):
    """Two RVMMattes feed one Write; the second covers 1001-1002 only. A chunk of 1011-1012
    renders the first node's frames and leaves the second alone instead of failing the task."""
    session(nuke, show)
    long = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    short = rvm_node(nuke, show, plate_read(nuke, show["pattern"], FIRST, FIRST + 1))
    switch = nuke.nodes.Switch(which=0)
    switch.setInput(0, long)
    switch.setInput(1, short)
    comp = show["root"] / "comp" / "two_mattes"
    comp.mkdir(parents=True, exist_ok=True)
    write = nuke.nodes.Write(file=str(comp / "comp.####.exr"), channels="rgba")
    write.setInput(0, switch)
    monkeypatch.setenv("RVM_MATTE_FRAMES", "1011-1012")
    nuke.execute(write, FIRST + 10, FIRST + 11)
    assert long["info"].value().startswith("frames 1011-1012: 2 made"), long["info"].value()
    assert short["info"].value().startswith("not rendered yet"), short["info"].value()
    for frame in (FIRST + 10, FIRST + 11):
        assert same(comp / f"comp.{frame:04d}.exr", ref(show, "rgba", frame))


def test_a_matte_made_from_another_mattes_output_renders_after_it(nuke, show):
    """RVMMatte A's output, graded, feeds RVMMatte B. A render node's before-render must render
    A first: B written first would matte A's "re-render needed" output (transparent black)."""
    rvm_matte = session(nuke, show)
    first_matte = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    grade = nuke.nodes.Grade(multiply=1.0)
    grade.setInput(0, first_matte)
    second_matte = rvm_node(nuke, show, grade)
    for group in (first_matte, second_matte):
        group["use_input_range"].setValue(False)
        group["first"].setValue(FIRST)
        group["last"].setValue(FIRST + 1)
    comp = show["root"] / "comp" / "chained"
    comp.mkdir(parents=True, exist_ok=True)
    write = nuke.nodes.Write(file=str(comp / "comp.####.exr"), channels="rgba")
    write.setInput(0, second_matte)
    assert list(rvm_matte.callbacks.upstream_mattes(write)) == [first_matte, second_matte]
    nuke.execute(write, FIRST, FIRST + 1)  # the stand-in refuses to compute A's stale Constant
    for group in (first_matte, second_matte):
        assert rvm_matte.render.is_current(group, FIRST, FIRST + 1), group["info"].value()
    written = out_folder(show, second_matte) / "input" / f"input.{FIRST:04d}.exr"
    assert np.array_equal(pixels(str(written))[..., :3],
                          pixels(str(out_folder(show, first_matte) / f"rgba.{FIRST:04d}.exr"))[..., :3].astype(
                              pixels(str(written)).dtype))


def test_a_read_whose_path_holds_a_tcl_expression_is_written_by_the_node(nuke, show):
    """`[getenv SHOT]`-style paths are expanded by Nuke, not by the bridge: such a Read is not
    handed to the bridge as a path."""
    session(nuke, show)
    import rvm_matte.upstream

    root = str(show["root"])
    read = plate_read(nuke, root + "/[string trim plates]/" + os.path.basename(show["pattern"]))
    group = rvm_node(nuke, show, read)
    assert rvm_matte.upstream.plain_exr_read(group, FIRST, FIRST + 11) is None
    assert rvm_matte.upstream.plain_exr_read(rvm_node(nuke, show, plate_read(nuke, show["pattern"])), FIRST,
                                             FIRST + 11) == show["pattern"]


def test_cancel_pressed_after_the_last_frame_keeps_the_finished_matte(nuke, show):
    rvm_matte = session(nuke, show, gui=True)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"], FIRST, FIRST + 2))
    group["use_input_range"].setValue(False)
    group["first"].setValue(FIRST)
    group["last"].setValue(FIRST + 2)
    nuke.state.cancel_after = 3  # Cancel lands with the third and last frame
    group["render"].execute()
    assert group["info"].value().startswith("frames 1001-1003: 3 made"), group["info"].value()
    assert rvm_matte.node.inner(group, "rvm_output")["which"].value() == 0


def test_a_reversed_frame_range_and_an_unsaved_script_are_said_plainly(nuke, show):
    rvm_matte = session(nuke, show, gui=True)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    group["use_input_range"].setValue(False)
    group["first"].setValue(FIRST + 3)
    group["last"].setValue(FIRST + 1)
    with pytest.raises(rvm_matte.render.MatteError, match="first frame 1004 is after its last frame 1002"):
        rvm_matte.render.render_matte(group)

    nuke.root()["name"].setValue("")  # a new script, never saved
    group["server"].setValue(free_address())
    group["start_bridge"].execute()
    assert nuke.state.messages[-1].startswith("Save the script first")
    assert rvm_matte.render._local_bridges == []


def test_an_input_write_cancelled_after_a_grade_change_never_leaves_old_frames_taken_as_current(nuke, show):
    """The artist renders, changes the grade, renders again and cancels while the node writes
    its input, then renders once more: every input frame the bridge mattes is the new grade's,
    not a frame of the old grade left in the folder from the first render."""
    session(nuke, show, gui=True)
    grade = nuke.nodes.Grade(multiply=1.0)
    grade.setInput(0, plate_read(nuke, show["pattern"], FIRST, FIRST + 3))
    group = rvm_node(nuke, show, grade)
    group["render"].execute()
    written = out_folder(show, group) / "input" / f"input.{FIRST + 3:04d}.exr"
    old = pixels(str(written))

    nuke.artist_sets(grade["multiply"], 1.25)
    nuke.state.progress_steps, nuke.state.cancel_after = 0, 2
    group["render"].execute()  # Cancel while the input's second frame is written
    assert group["info"].value().startswith("cancelled while writing the input")
    nuke.state.cancel_after = None
    group["render"].execute()
    assert group["info"].value().startswith("frames 1001-1004: 4 made"), group["info"].value()
    new = pixels(str(written))
    assert np.allclose(new[..., :3], old[..., :3] * 1.25, rtol=2e-3, atol=1e-4)


def test_a_farm_frames_variable_that_cannot_be_read_fails_the_task_instead_of_rendering_the_whole_range(
        nuke, show, monkeypatch):
    """A TD writes RVM_MATTE_FRAMES=1009:1012 in the job: falling back to the whole range would
    have every chunk render the same clip into the same folder at once."""
    rvm_matte = session(nuke, show)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    comp = show["root"] / "comp" / "bad_chunk"
    comp.mkdir(parents=True, exist_ok=True)
    write = nuke.nodes.Write(file=str(comp / "comp.####.exr"), channels="rgba")
    write.setInput(0, group)
    monkeypatch.setenv("RVM_MATTE_FRAMES", "1009:1012")
    with pytest.raises(rvm_matte.render.MatteError, match="RVM_MATTE_FRAMES='1009:1012' should look like 1009-1012"):
        nuke.execute(write, FIRST + 8, FIRST + 11)
    assert not out_folder(show, group).exists()
    plain = nuke.nodes.Write(file=str(comp / "plain.####.exr"), channels="rgb")  # no RVMMatte above it:
    plain.setInput(0, plate_read(nuke, show["pattern"]))  # the variable is none of its business
    nuke.execute(plain, FIRST + 8, FIRST + 8)
    assert (comp / f"plain.{FIRST + 8:04d}.exr").exists()


def test_a_disabled_rvm_matte_is_not_rendered_by_a_render_node(nuke, show):
    """The artist disables RVMMatte (it passes its input through): a render of the comp must not
    need a bridge for it, nor fail the farm task when none answers."""
    session(nuke, show)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    group["server"].setValue(free_address())
    group["timeout"].setValue(1)
    group["disable"].setValue(True)
    comp = show["root"] / "comp" / "disabled"
    comp.mkdir(parents=True, exist_ok=True)
    write = nuke.nodes.Write(file=str(comp / "comp.####.exr"), channels="rgb")
    write.setInput(0, group)
    nuke.execute(write, FIRST, FIRST)
    assert same(comp / f"comp.{FIRST:04d}.exr", show["pattern"].replace("####", f"{FIRST:04d}"))
    assert group["info"].value().startswith("not rendered yet")


def test_a_script_saved_as_a_new_version_elsewhere_never_shows_a_matte_with_missing_plates(nuke, show):
    """The plates go next to the saved script by default. The artist renders, saves the script
    as v2 in another folder and re-renders a few frames: the node must not call a matte current
    whose plates are split over two folders (its Reads would find frames missing)."""
    rvm_matte = session(nuke, show)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"], FIRST, FIRST + 3))
    rvm_matte.render.render_matte(group)
    (show["root"] / "comp_v2").mkdir()
    nuke.scriptSave(str(show["root"] / "comp_v2" / "sh010_v2.nk"))
    assert not rvm_matte.render.is_current(group, FIRST, FIRST + 3)  # its plates folder is another now
    rvm_matte.render.render_matte(group, (FIRST + 2, FIRST + 3))
    assert not rvm_matte.render.is_current(group, FIRST, FIRST + 3)
    rvm_matte.render.render_matte(group)
    assert rvm_matte.render.is_current(group, FIRST, FIRST + 3)
    for frame in range(FIRST, FIRST + 4):
        group._image(frame)  # every plate the node shows is there


def test_start_a_local_bridge_with_a_plates_folder_not_made_yet_makes_it(nuke, show, tmp_path):
    """The artist sets a new plates folder, then presses "Start a local bridge": the bridge's root
    must exist, so the node makes the folder rather than report the server's refusal."""
    import rvm_matte.render

    session(nuke, show, gui=True)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    folder = tmp_path / "new plates"
    group["plates_folder"].setValue(str(folder))
    group["server"].setValue(free_address())
    group["start_bridge"].execute()
    try:
        assert nuke.state.messages[-1].startswith("A bridge runs at "), nuke.state.messages[-1]
        assert folder.is_dir()
    finally:
        while rvm_matte.render._local_bridges:
            assert rvm_matte.render._local_bridges.pop().stop() == 0


class _NewPythonObject:
    """What Nuke's ``Node.input(i)`` returns: a new Python object for the node at each call."""

    def __init__(self, node):
        self._node = node

    def __getattr__(self, name):
        return getattr(self._node, name)

    def __getitem__(self, name):
        return self._node[name]


def test_a_changed_read_far_upstream_makes_the_matte_stale_with_nukes_throwaway_node_objects(nuke, show,
                                                                                             monkeypatch):
    """Nuke gives a new Python object for a node at each input() call; one freed can leave its
    id() to the next. Told apart by id(), the upstream walk skipped nodes (here the Read and the
    Grades nearest it), and a new plate file left the matte 'current'."""
    session(nuke, show)
    import rvm_matte.node
    import rvm_matte.upstream

    read = plate_read(nuke, show["pattern"])
    below = read
    for _ in range(5):
        grade = nuke.nodes.Grade(multiply=1.0)
        grade.setInput(0, below)
        below = grade
    group = rvm_node(nuke, show, below)
    real_input = nuke.Node.input
    monkeypatch.setattr(nuke.Node, "input", lambda node, index: (
        None if real_input(node, index) is None else _NewPythonObject(real_input(node, index))))
    walked = sorted(found.name() for found in rvm_matte.upstream.walk(group))
    assert walked == ["Grade1", "Grade2", "Grade3", "Grade4", "Grade5", "RVMMatte1", "Read1"]
    settings = rvm_matte.node.settings_items(group)
    before = rvm_matte.upstream.stamp(group, settings, FIRST, FIRST + 11)
    nuke.artist_sets(read["file"], show["pattern"].replace("plate.", "plate_v2."))
    assert rvm_matte.upstream.stamp(group, settings, FIRST, FIRST + 11) != before


def test_a_studio_write_gizmo_renders_the_rvm_matte_above_it(nuke, show):
    """Pipelines render through write gizmos: a Group around an Input and a Write. The
    before-render fires for the inner Write; the RVMMatte above the gizmo must still be found
    (through the gizmo's Input) and rendered, not left 're-render needed' (transparent black)."""
    rvm_matte = session(nuke, show)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"], FIRST, FIRST + 1))
    comp = show["root"] / "comp" / "gizmo"
    comp.mkdir(parents=True, exist_ok=True)
    gizmo = nuke.nodes.Group(name="StudioWrite1")
    gizmo.begin()
    try:
        inner_write = nuke.nodes.Write(file=str(comp / "comp.####.exr"), channels="rgba")
        inner_write.setInput(0, nuke.nodes.Input())
        nuke.nodes.Output().setInput(0, inner_write)
    finally:
        gizmo.end()
    gizmo.setInput(0, group)
    assert list(rvm_matte.callbacks.upstream_mattes(inner_write)) == [group]
    nuke.execute(inner_write, FIRST, FIRST + 1)
    assert rvm_matte.render.is_current(group, FIRST, FIRST + 1), group["info"].value()
    for frame in (FIRST, FIRST + 1):
        assert same(comp / f"comp.{frame:04d}.exr", ref(show, "rgba", frame))


# -- Try ratios ---------------------------------------------------------------------------------------------------
def sheet_attributes(path):
    import OpenImageIO as oiio

    image = oiio.ImageInput.open(str(path))
    assert image is not None, path
    spec = image.spec()
    image.close()
    return spec.getattribute("rvm:ratios"), spec.getattribute("rvm:suggested_ratio")


def test_try_ratios_writes_the_sheet_shows_it_in_one_read_and_use_suggested_sets_the_ratio(nuke, show, capsys):
    session(nuke, show, gui=True)
    grade = nuke.nodes.Grade(multiply=1.0)
    grade.setInput(0, plate_read(nuke, show["pattern"]))
    group = rvm_node(nuke, show, grade)
    assert group["try_frames"].value() == 8
    group["try_frames"].setValue(3)
    nuke.frame(FIRST + 5)
    group["try_ratios"].execute()

    # The graded input is written by the node for the stretch only: 3 frames around the current one.
    assert [frame for name, frame in nuke.state.executed if name == "RVMMatte1.rvm_input"] == [FIRST + 4, FIRST + 5,
                                                                                               FIRST + 6]
    sheet = out_folder(show, group) / "ratios.png"
    read = nuke.toNode("RVMMatte1_ratios")
    assert read is not None and read.Class() == "Read" and read["file"].value() == str(sheet).replace(os.sep, "/")
    ratios, suggested = sheet_attributes(sheet)
    assert ratios == "0.125,0.25,0.4,0.6" and suggested == group["suggested_ratio"].value()
    assert float(suggested) in (0.125, 0.25, 0.4, 0.6)
    said = nuke.state.messages[-1]
    assert said.startswith(f"try ratios (frames {FIRST + 4}-{FIRST + 6}): suggested {suggested}, ") and \
        "Use suggested ratio" in said
    assert f"suggested {suggested}" in group["info"].value()
    assert any(task.message.startswith("trying ratios on frames") and "Cancel cannot stop it" in task.message
               for task in nuke.state.tasks)
    table = capsys.readouterr().out  # the table goes to the Script Editor
    assert all(f"{ratio:g}" in table for ratio in (0.125, 0.25, 0.4, 0.6)), table

    # A second press updates the same Read; the stretch is clamped to the node's range at its end.
    nuke.frame(FIRST + 11)
    reads = len(nuke.allNodes("Read"))
    group["try_ratios"].execute()
    assert len(nuke.allNodes("Read")) == reads and nuke.toNode("RVMMatte1_ratios") is read
    assert nuke.state.messages[-1].startswith(f"try ratios (frames {FIRST + 9}-{FIRST + 11}): ")

    group["use_suggested"].execute()
    assert group["downsample_ratio"].value() == suggested


def test_try_ratios_on_a_plain_read_sends_its_files_and_use_suggested_first_says_what_to_do(nuke, show):
    rvm_matte = session(nuke, show)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    group["use_suggested"].execute()
    assert nuke.state.messages == [] and group["downsample_ratio"].value() == "auto"  # not the GUI: printed
    assert group["downsample_ratio"].value() == "auto"
    group["try_frames"].setValue(2)
    nuke.frame(1)  # outside the range: the stretch starts at its first frame
    line = rvm_matte.render.try_ratios(group)
    assert line.startswith(f"try ratios (frames {FIRST}-{FIRST + 1}): ") and nuke.state.executed == []
    assert sheet_attributes(out_folder(show, group) / "ratios.png")[0] == "0.125,0.25,0.4,0.6"


def test_try_ratios_with_no_bridge_says_how_to_start_one(nuke, show):
    group, address = node_with_no_bridge(nuke, show)
    group["try_ratios"].execute()
    said = nuke.state.messages[-1]
    assert said.startswith(f"No bridge answers at {address}. Start one on the machine with the GPU:")
    assert group["info"].value() == said and nuke.toNode("RVMMatte1_ratios") is None


def test_a_failed_try_ratios_leaves_a_current_matte_shown(nuke, show):
    rvm_matte = session(nuke, show)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"], FIRST, FIRST))
    rvm_matte.render.render_matte(group)
    assert rvm_matte.node.inner(group, "rvm_output")["which"].value() == 0
    group["try_ratios"].execute()  # a one-frame range: nothing to judge flicker on
    assert group["info"].value().startswith("Try ratios needs at least two frames")
    assert rvm_matte.node.inner(group, "rvm_output")["which"].value() == 0


def test_try_ratios_on_one_frame_judges_two_and_a_huge_count_stays_within_what_the_bridge_judges(nuke, show):
    """An artist types 1 in "try ratios on": the node's range is long enough, so the stretch is
    the two frames the bridge needs, not a stop blaming the range. A huge count is held to the
    bridge's limit (100 judged frames) rather than writing the whole input and being refused."""
    rvm_matte = session(nuke, show)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    group["try_frames"].setValue(1)
    nuke.frame(FIRST + 5)
    line = rvm_matte.render.try_ratios(group)
    assert line.startswith(f"try ratios (frames {FIRST + 4}-{FIRST + 5}): "), line
    group["try_frames"].setValue(10 ** 6)
    nuke.frame(1)
    assert rvm_matte.render.ratio_stretch(group, 1, 5000) == (1, 100)


def test_try_ratios_leaves_a_read_the_artist_named_like_the_sheet_alone(nuke, show):
    """An artist already has a Read called RVMMatte1_ratios (their own reference frames): Try
    ratios shows the sheet in a Read of its own and never repoints the artist's."""
    rvm_matte = session(nuke, show)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))
    theirs = nuke.nodes.Read(name="RVMMatte1_ratios", file=show["pattern"], first=FIRST, last=FIRST + 11,
                             origfirst=FIRST, origlast=FIRST + 11)
    group["try_frames"].setValue(2)
    rvm_matte.render.try_ratios(group)
    assert theirs["file"].value() == show["pattern"] and theirs["last"].value() == FIRST + 11
    sheet = str(out_folder(show, group) / "ratios.png").replace(os.sep, "/")
    ours = [read for read in nuke.allNodes("Read") if read["file"].value() == sheet]
    assert len(ours) == 1 and ours[0] is not theirs
    rvm_matte.render.try_ratios(group)  # a second press finds its own Read again
    assert [read for read in nuke.allNodes("Read") if read["file"].value() == sheet] == ours
    assert theirs["file"].value() == show["pattern"]


def test_try_ratios_while_the_bridge_tries_another_node_says_so_in_the_artists_words(nuke, show, monkeypatch):
    """Another artist's Try ratios holds the bridge (one at a time): after the client has asked
    again for the node's timeout, the node says the bridge is trying ratios for someone else and
    to press again, not "busy with other clips ... Render again"."""
    import rvm_bridge_client

    session(nuke, show, gui=True)
    group = rvm_node(nuke, show, plate_read(nuke, show["pattern"]))

    def busy(bridge, *args, **kwargs):
        raise rvm_bridge_client.ServerBusy("another try_ratios is running; the bridge runs one at a time: ask again "
                                           "when it is done (still busy after 60 s)")

    monkeypatch.setattr(rvm_bridge_client.BridgeClient, "try_ratios", busy)
    group["try_ratios"].execute()
    said = nuke.state.messages[-1]
    assert said.startswith(f"The bridge at {group['server'].value()} is still trying ratios for another node"), said
    assert "Press Try ratios again" in said and "Render again" not in said
    assert group["info"].value() == said and nuke.toNode("RVMMatte1_ratios") is None


def test_use_suggested_after_the_input_changed_asks_for_a_new_try(nuke, show):
    """The artist tries ratios, then swaps the plate for another shot and presses Use suggested
    ratio: the suggestion was judged on the old plate, so the node says to try again and leaves
    "downsample ratio" alone. A change of the ratio itself does not make the suggestion stale."""
    session(nuke, show, gui=True)
    read = plate_read(nuke, show["pattern"])
    group = rvm_node(nuke, show, read)
    group["try_frames"].setValue(2)
    group["try_ratios"].execute()
    suggested = group["suggested_ratio"].value()
    group["downsample_ratio"].setValue("0.9")
    group["use_suggested"].execute()
    assert group["downsample_ratio"].value() == suggested
    group["downsample_ratio"].setValue("auto")
    nuke.artist_sets(read["file"], show["pattern"].replace("plate.", "plate_v2."))
    group["use_suggested"].execute()
    said = nuke.state.messages[-1]
    assert said.startswith(f"The input or model changed since Try ratios suggested {suggested}"), said
    assert group["downsample_ratio"].value() == "auto"
