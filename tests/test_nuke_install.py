"""`rvm-bridge install nuke`: one step lays out a plug-in folder with the client, the node and
the pyzmq each Nuke's Python needs; the path-picker chooses the right one at start-up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from bridge_server.cli import main
from bridge_server.install import nuke as nuke_install
from bridge_server.install.pathpicker import abi_folder, platform_name
from bridge_server.install.vendor import WheelError, abi_name

from .nuke_support import real_python


@pytest.fixture(scope="module")
def plugin(tmp_path_factory, pyzmq_wheels):
    dest = tmp_path_factory.mktemp("nuke-plugin") / "rvm_matte_plugin"
    code = main(["install", "nuke", str(dest), "--nuke", "13", "16", "17", "18", "--wheels", pyzmq_wheels])
    assert code == 0
    return str(dest)


def test_one_install_lays_out_the_node_the_client_and_pyzmq_for_each_nukes_python(plugin, capsys):
    wheels = os.path.join(plugin, "wheels", platform_name())
    # Nuke 13 -> cp37, 16 -> cp311, 17 (3.13) and an unknown 18 -> the abi3 wheel, unpacked once.
    assert sorted(os.listdir(wheels)) == ["abi3-cp312", "cp311", "cp37"]
    for folder in os.listdir(wheels):
        assert os.path.isfile(os.path.join(wheels, folder, "zmq", "__init__.py"))
    assert any(name.startswith("pyzmq-26.2.1") for name in os.listdir(os.path.join(wheels, "cp37")))
    for path in ("init.py", "menu.py", "python/rvm_matte/node.py", "python/rvm_bridge_client/client.py",
                 "python/rvm_bridge_paths.py"):
        assert os.path.isfile(os.path.join(plugin, path)), path
    record = json.load(open(os.path.join(plugin, "rvm_bridge_install.json")))
    assert record["nuke"] == [13, 16, 17, 18] and record["pythons"] == ["3.7", "3.11", "3.13", "3.12"]
    assert record["bridge_python"] == sys.executable


def test_the_path_picker_chooses_the_wheel_for_each_python_and_abi3_for_unknown_ones(plugin):
    wheels = os.path.join(plugin, "wheels")
    assert abi_folder(wheels, (3, 7)).endswith("cp37")
    assert abi_folder(wheels, (3, 11)).endswith("cp311")
    assert abi_folder(wheels, (3, 13)).endswith("abi3-cp312")
    assert abi_folder(wheels, (3, 14)).endswith("abi3-cp312")  # a Python newer than any Nuke we know
    assert abi_folder(wheels, (3, 9)) is None  # not installed: the node says so
    assert nuke_install.python_for(18) == (3, 12)


CHOOSE = ("import sys; sys.path.insert(0, sys.argv[1]); import rvm_bridge_paths as p; where = p.add_zmq(sys.argv[2]); "
          "import zmq; print(where); print(zmq.__file__); print(zmq.zmq_version())")
FAKED = ("import sys; sys.version_info = tuple(int(x) for x in sys.argv[3].split('.')) + (0, 'final', 0); "
         "sys.path.insert(0, sys.argv[1]); import rvm_bridge_paths as p; print(p.abi_folder(sys.argv[2]))")


@pytest.mark.parametrize("version,folder", [("3.7", "cp37"), ("3.11", "cp311"), ("3.13", "abi3-cp312")])
def test_init_imports_the_vendored_zmq_under_each_python(plugin, version, folder):
    """Under a real interpreter of that version (without site-packages, so no zmq of its own) the
    picker's folder really imports; where none is installed here, the logic runs with a faked
    ``sys.version_info`` instead (that run says so in its output)."""
    python_dir, wheels = os.path.join(plugin, "python"), os.path.join(plugin, "wheels")
    python = real_python(version)
    if python is not None:
        done = subprocess.run([python, "-S", "-c", CHOOSE, python_dir, wheels], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        where, module, _ = done.stdout.split()
        assert where.endswith(os.path.join(platform_name(), folder)) and module.startswith(where)
    else:
        done = subprocess.run([sys.executable, "-S", "-c", FAKED, python_dir, wheels, version], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().endswith(os.path.join(platform_name(), folder)), "faked " + version


def test_a_zmq_the_host_already_has_is_preferred(plugin):
    code = "import sys; sys.path.insert(0, sys.argv[1]); import rvm_bridge_paths as p; print(p.add_zmq(sys.argv[2]))"
    done = subprocess.run([sys.executable, "-c", code, os.path.join(plugin, "python"),
                           os.path.join(plugin, "wheels")], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "host", done.stderr


def test_an_offline_install_without_the_wheel_a_nuke_needs_says_which_and_how_to_get_it(tmp_path, pyzmq_wheels):
    only_37 = tmp_path / "wheels"
    only_37.mkdir()
    for name in os.listdir(pyzmq_wheels):
        if "cp37" in name:
            shutil.copy(os.path.join(pyzmq_wheels, name), only_37)
    with pytest.raises(WheelError) as caught:
        nuke_install.install_nuke(str(tmp_path / "plugin"), [15], [platform_name()], wheel_source=str(only_37))
    assert "Python 3.10" in str(caught.value) and "--wheels" in str(caught.value)


def test_wheel_names_map_to_abi_folders():
    assert abi_name("pyzmq-26.2.1-cp37-cp37m-manylinux_2_12_x86_64.manylinux2010_x86_64.whl") == "cp37"
    assert abi_name("pyzmq-27.1.0-cp312-abi3-win_amd64.whl") == "abi3-cp312"


def test_installing_into_a_folder_with_a_studios_own_init_py_refuses_and_changes_nothing(tmp_path, pyzmq_wheels,
                                                                                         capsys):
    """A TD points the installer at ~/.nuke (or the studio's plug-in folder): its init.py and
    menu.py hold the studio's start-up code and must not be replaced by RVMMatte's."""
    dotnuke = tmp_path / ".nuke"
    dotnuke.mkdir()
    (dotnuke / "init.py").write_text("nuke.pluginAddPath('/studio/tools')\n")
    (dotnuke / "menu.py").write_text("# studio menus\n")
    code = main(["install", "nuke", str(dotnuke), "--nuke", "16", "--wheels", pyzmq_wheels])
    assert code == 1
    said = capsys.readouterr().err
    assert "init.py is not RVMMatte's" in said and os.path.join(str(dotnuke), "rvm_matte") in said
    assert (dotnuke / "init.py").read_text() == "nuke.pluginAddPath('/studio/tools')\n"
    assert sorted(os.listdir(dotnuke)) == ["init.py", "menu.py"]  # nothing laid out beside them

    # A folder RVMMatte's own install made is upgraded in place: a second install goes through.
    plugin = tmp_path / "rvm_matte"
    assert main(["install", "nuke", str(plugin), "--nuke", "16", "--wheels", pyzmq_wheels]) == 0
    assert main(["install", "nuke", str(plugin), "--nuke", "16", "--wheels", pyzmq_wheels]) == 0


def test_a_destination_that_is_a_file_is_said_not_thrown(tmp_path, pyzmq_wheels, capsys):
    target = tmp_path / "rvm_matte"
    target.write_text("not a folder")
    assert main(["install", "nuke", str(target), "--nuke", "16", "--wheels", pyzmq_wheels]) == 1
    assert "is a file: name a folder" in capsys.readouterr().err
    below = target / "sub"
    assert main(["install", "nuke", str(below), "--nuke", "16", "--wheels", pyzmq_wheels]) == 1
    assert f"cannot write the plug-in folder {below}" in capsys.readouterr().err


def test_a_bad_wheel_in_an_upgrade_leaves_the_working_pyzmq_in_place(tmp_path, pyzmq_wheels):
    """Re-installing with a wheel that tries to write outside its folder (zip-slip) or is not a
    zip at all is refused before the earlier, working pyzmq folder is touched."""
    import zipfile

    from bridge_server.install.vendor import unpack_wheel

    plugin = tmp_path / "plugin"
    nuke_install.install_nuke(str(plugin), [16], [platform_name()], wheel_source=pyzmq_wheels)
    folder = os.path.join(str(plugin), "wheels", platform_name(), "cp311")
    slip = tmp_path / "pyzmq-27.1.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(slip, "w") as archive:
        archive.writestr("zmq/__init__.py", "")
        archive.writestr("../../../../evil.py", "print('pwned')")
    broken = tmp_path / "pyzmq-27.1.0-cp311-cp311-win_amd64.whl"
    broken.write_bytes(b"not a zip")
    for wheel, said in ((slip, "holds a path outside its folder"), (broken, "is not a readable wheel")):
        with pytest.raises(WheelError, match=said):
            unpack_wheel(str(wheel), folder)
        assert os.path.isfile(os.path.join(folder, "zmq", "__init__.py"))
    assert not os.path.exists(os.path.join(str(plugin), "evil.py")) and not (tmp_path / "evil.py").exists()


def test_a_studio_zmq_that_cannot_load_its_library_gives_way_to_the_vendored_one(plugin, tmp_path):
    """A zmq on the host's path whose import fails with something other than ImportError (its
    libzmq missing: OSError) must not stop init.py: the vendored pyzmq is used instead."""
    broken = tmp_path / "studio_site" / "zmq"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise OSError('libzmq.so.5: cannot open shared object file')\n")
    code = ("import sys; sys.path.insert(0, sys.argv[3]); sys.path.insert(0, sys.argv[1]); "
            "import rvm_bridge_paths as p; where = p.add_zmq(sys.argv[2]); import zmq; print(where); print(zmq.__file__)")
    done = subprocess.run([sys.executable, "-c", code, os.path.join(plugin, "python"), os.path.join(plugin, "wheels"),
                           str(tmp_path / "studio_site")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    where, module = done.stdout.split()
    assert where.startswith(os.path.join(plugin, "wheels")) and module.startswith(where)


def test_a_renamed_copy_of_a_wheel_folder_does_not_stop_nukes_start_up(plugin, tmp_path):
    """A TD keeps a backup as wheels/<platform>/abi3-cp312.old: the picker skips it instead of
    raising ValueError in init.py."""
    wheels = tmp_path / "wheels"
    shutil.copytree(os.path.join(plugin, "wheels"), wheels)
    shutil.copytree(wheels / platform_name() / "abi3-cp312", wheels / platform_name() / "abi3-cp312.old")
    assert abi_folder(str(wheels), (3, 13)) == str(wheels / platform_name() / "abi3-cp312")
