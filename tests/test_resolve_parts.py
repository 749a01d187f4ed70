"""The Resolve scripts' parts that need no host: where they install, how they find pyzmq, what
each edition can do, how clips become frame ranges, and what the artist is told."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from host_plugins.resolve import bootstrap, edition, install_layout, messages, sources

from .resolve_support import REPO, install_scripts


# -- where the scripts go -----------------------------------------------------------------------
@pytest.mark.parametrize("os_name, all_users, expected", [
    ("linux", False, "/home/ed/.local/share/DaVinciResolve/Fusion/Scripts"),
    ("linux", True, "/opt/resolve/Fusion/Scripts"),
    ("darwin", False, "/Users/ed/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts"),
    ("macos", True, "/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts"),
    ("win32", False, "C:\\Users\\ed\\AppData\\Roaming\\Blackmagic Design\\DaVinci Resolve\\Support\\Fusion\\Scripts"),
    ("windows", True, "C:\\ProgramData\\Blackmagic Design\\DaVinci Resolve\\Fusion\\Scripts"),
])
def test_each_os_has_its_own_scripts_folder_per_user_and_for_all_users(os_name, all_users, expected):
    home = "C:\\Users\\ed" if os_name.startswith("win") else ("/Users/ed" if "a" in os_name[:3] else "/home/ed")
    environ = {"APPDATA": "C:\\Users\\ed\\AppData\\Roaming", "PROGRAMDATA": "C:\\ProgramData"}
    assert install_layout.scripts_root(os_name, all_users, environ, home) == expected
    folders = install_layout.scripts_folders(os_name, all_users, environ, home)
    assert folders["Comp"].startswith(expected) and folders["Comp"].endswith("Comp")
    assert folders["Utility"].endswith("Utility") and folders["rvm_bridge"].endswith("rvm_bridge")


def test_an_os_resolve_does_not_run_on_is_refused():
    with pytest.raises(ValueError, match="Linux, Windows and macOS"):
        install_layout.scripts_root("freebsd")


# -- finding pyzmq -----------------------------------------------------------------------------
def test_bootstrap_uses_the_installers_path_picker_installed_or_from_a_checkout(tmp_path, monkeypatch):
    from bridge_server.install.pathpicker import platform_name
    from bridge_server.install.vendor import copy_path_picker

    checkout = bootstrap.path_picker()  # host_plugins/ in this checkout: bridge_server/install/pathpicker.py
    assert checkout is not None and checkout.__file__.endswith(os.path.join("install", "pathpicker.py"))
    package = tmp_path / "rvm_bridge"
    copy_path_picker(str(package))
    installed = bootstrap.path_picker(str(package))
    assert installed is not None and installed.__file__ == str(package / "rvm_bridge_paths.py")
    assert bootstrap.path_picker(str(tmp_path / "nowhere" / "rvm_bridge")) is None
    # One routine picks wheels for Nuke and Resolve: <platform>/<abi> under rvm_bridge/wheels.
    (package / "wheels" / platform_name() / "abi3-cp312").mkdir(parents=True)
    assert installed.abi_folder(str(package / "wheels"), (3, 14)) == str(package / "wheels" / platform_name() /
                                                                            "abi3-cp312")
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert bootstrap.prepare(str(package)) == []  # this Python has its own zmq: it is kept


BLOCK_ZMQ = """
import importlib.abc, runpy, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "zmq":
            raise ModuleNotFoundError("No module named 'zmq'", name="zmq")
sys.meta_path.insert(0, Refuse())
sys.path.insert(0, sys.argv[2])
from tests.standins.resolve import Artist, Bmd, Comp, Fusion, Resolve, UIManager
comp = Comp(0, 7)
comp.add_loader(sys.argv[3])
resolve = Resolve("DaVinci Resolve Studio", (20, 2, 1))
fusion = Fusion(comp, UIManager(Artist()))
done = runpy.run_path(sys.argv[1], init_globals={"fusion": fusion, "comp": comp, "bmd": Bmd(resolve),
                                                    "resolve": resolve})
print("status", done["RVM_MATTE_STATUS"])
"""


def test_without_pyzmq_the_script_says_so_with_the_install_command(tmp_path):
    from .test_server_support import FIRST, write_shot

    scripts = install_scripts(str(tmp_path / "Scripts"))
    plate = write_shot(str(tmp_path / "plates"), count=2).replace("####", str(FIRST))
    env = dict(os.environ, PYTHONPATH="")
    done = subprocess.run([sys.executable, "-c", BLOCK_ZMQ, os.path.join(scripts, "Comp", "RVM Matte.py"), REPO,
                           plate], capture_output=True, text=True, timeout=120, cwd=str(tmp_path), env=env)
    assert done.returncode == 0, done.stderr
    assert "needs the ZeroMQ library (pyzmq)" in done.stdout and "`rvm-bridge install resolve`" in done.stdout
    assert "status 1" in done.stdout


# -- editions ----------------------------------------------------------------------------------
def test_each_edition_is_told_plainly_what_it_can_do():
    free_21_1 = edition.edition_of("DaVinci Resolve", [21, 1, 0, 12, ""])
    assert not free_21_1.python_from_menu and not free_21_1.ui_manager
    assert "use Comp > RVM Matte (Lua)" in "\n".join(free_21_1.describe())
    assert "Resolve's own 3.14 (no pip" in "\n".join(free_21_1.describe())
    free_19_0 = edition.edition_of("DaVinci Resolve", {1.0: 19.0, 2.0: 0.0, 3.0: 3.0})
    assert free_19_0.ui_manager and free_19_0.python_from_menu and free_19_0.source_start_frame
    studio_18 = edition.edition_of("DaVinci Resolve Studio", [18, 6, 6, 4, ""])
    assert studio_18.ui_manager and not studio_18.source_start_frame and studio_18.supported
    assert "3.13 and 3.14 are reported to crash" in "\n".join(studio_18.describe())
    assert not edition.edition_of("DaVinci Resolve", [17, 4, 6]).supported
    studio_20 = edition.edition_of("DaVinci Resolve Studio", [20, 2, 1])
    assert "install Python 3.12" in edition.python_warning(studio_20, (3, 13), "nt")
    assert edition.python_warning(studio_20, (3, 12), "nt") == edition.python_warning(studio_20, (3, 13), "posix") == ""


# -- clips and frames --------------------------------------------------------------------------
def test_resolve_file_paths_become_sequences_and_movies(tmp_path):
    for frame in (1001, 1002, 1003):
        (tmp_path / f"plate.{frame}.exr").write_bytes(b"")
    (tmp_path / "talk.mov").write_bytes(b"")
    bracket = sources.resolve_file_path(str(tmp_path / "plate.[1001-1003].exr"))
    assert (bracket.pattern, bracket.first, bracket.last) == (str(tmp_path / "plate.%04d.exr"), 1001, 1003)
    assert bracket.label == "plate" and bracket.path(1002) == str(tmp_path / "plate.1002.exr")
    assert sources.resolve_file_path(str(tmp_path / "plate.%04d.exr")) == bracket
    assert sources.resolve_file_path(str(tmp_path / "plate.1002.exr")) == bracket
    assert sources.resolve_file_path(str(tmp_path / "talk.mov")).kind == "movie"
    with pytest.raises(messages.NotAFile, match="is not a file on disk"):
        sources.resolve_file_path("", "Text+")
    with pytest.raises(messages.NotAFile, match="offline"):
        sources.resolve_file_path(str(tmp_path / "gone.[0001-0010].exr"))


def test_a_loaders_per_clip_attributes_give_its_trimmed_frames(tmp_path):
    for frame in range(1001, 1011):
        (tmp_path / f"sh.{frame}.exr").write_bytes(b"")
    attrs = {"TOOLS_Name": "Loader3", "TOOLST_Clip_Name": {1.0: str(tmp_path / "sh.1001.exr")},
             "TOOLIT_Clip_InitialFrame": {1.0: 1001.0}, "TOOLIT_Clip_TrimIn": {1.0: 2.0},
             "TOOLIT_Clip_TrimOut": {1.0: 6.0}}
    assert sources.loader_source(attrs).frames == "1003-1007"
    with pytest.raises(messages.NotAFile, match="Loader3 has no clip"):
        sources.loader_source({"TOOLS_Name": "Loader3", "TOOLST_Clip_Name": {1.0: ""}})


def test_the_used_range_widens_by_handles_within_the_frames_on_disk():
    clip = sources.Source("/s/p.%04d.exr", 1001, 1100)
    assert sources.used_range(clip, 10, 20, 5).frames == "1006-1035"  # offset into the clip
    assert sources.used_range(clip, 1050, 20, 5).frames == "1045-1074"  # already a frame number
    assert sources.used_range(clip, 0, 10, 12).frames == "1001-1022"
    assert sources.parse_frames("", clip) == (1001, 1100) and sources.parse_frames("1010", clip) == (1010, 1010)
    with pytest.raises(messages.UserError, match="ends before it starts"):
        sources.parse_frames("1010-1001", clip)
    plates = sources.output_patterns(clip)
    assert plates == {"alpha": "/s/rvm/p_alpha.%04d.exr", "foreground": "/s/rvm/p_fg.%04d.exr"}


# -- what the artist reads ---------------------------------------------------------------------
class Coded(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


def test_bridge_errors_are_said_with_what_to_do():
    say = messages.explain
    assert "Start one in a terminal with `rvm-bridge serve" in say(Coded("timeout", "silent"), "tcp://h:5701")
    outside = say(Coded("path_outside_roots", "/x/p.exr is outside"), "tcp://h:5701", ["/shows"])
    assert "may only read and write under /shows" in outside and "--root" in outside
    assert "render it to EXR first" in say(Coded("plate_error", "cannot read prores"))
    assert "RVM_BRIDGE_PATH_MAP" in say(Coded("no_path_mapping", "P:\\x"))
