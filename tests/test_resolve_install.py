"""`rvm-bridge install resolve`: one step puts the RVM Matte scripts, the client and the pyzmq
Resolve's Python needs into a Fusion Scripts folder; the scripts' bootstrap then finds them, and
a second install upgrades ours without touching the artist's other scripts."""

from __future__ import annotations

import filecmp
import os
import shlex
import subprocess
import sys

import pytest

from bridge_server.cli import build_parser, main
from bridge_server.install import resolve as resolve_install
from bridge_server.install.pathpicker import platform_name
from bridge_server.install.vendor import WheelError
from host_plugins.resolve import install_layout

from .nuke_support import real_python
from .resolve_support import REPO

SOURCE = os.path.join(REPO, "host_plugins", "resolve")
OURS = ["Comp/RVM Matte.py", "Comp/RVM Matte (Lua).lua", "Comp/RVM Try Ratios.py", "Utility/RVM Matte.py"]
THIS_PYTHON = "{}.{}".format(*sys.version_info[:2])


def install(dest, *extra):
    return main(["install", "resolve", "--dest", str(dest), *extra])


def leftovers(scripts):
    return [name for name in os.listdir(scripts) if name.startswith(resolve_install.STAGING_PREFIX)]


@pytest.fixture(scope="module")
def scripts(tmp_path_factory, pyzmq_wheels):
    """Fusion/Scripts filled by the real installer, offline, for Python 3.7, 3.11 and 3.13."""
    dest = tmp_path_factory.mktemp("Fusion") / "Scripts"
    assert install(dest, "--python", "3.7", "3.11", "3.13", "--wheels", pyzmq_wheels) == 0
    return str(dest)


def test_the_install_lays_out_the_menu_entries_the_package_and_pyzmq_per_python(scripts, capsys):
    for path in OURS:
        menu, name = path.split("/")
        assert filecmp.cmp(os.path.join(scripts, menu, name), os.path.join(SOURCE, "scripts", menu, name), False)
    package = os.path.join(scripts, "rvm_bridge")
    for path in ("__init__.py", "client/client.py", "client/errors.py", "resolve/bootstrap.py",
                 "resolve/comp_matte.py", "rvm_bridge_paths.py", "command.txt"):
        assert os.path.isfile(os.path.join(package, path)), path
    assert not os.path.exists(os.path.join(package, "resolve", "scripts"))
    wheels = os.path.join(package, "wheels", platform_name())
    assert sorted(os.listdir(wheels)) == ["abi3-cp312", "cp311", "cp37"]  # 3.13 takes the abi3 wheel
    assert all(os.path.isfile(os.path.join(wheels, abi, "zmq", "__init__.py")) for abi in os.listdir(wheels))
    assert open(os.path.join(package, "command.txt")).read() == resolve_install.bridge_command_line() + "\n"
    assert leftovers(scripts) == []


BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); from rvm_bridge.resolve import bootstrap; "
        "added = bootstrap.prepare(); unit = bootstrap.client_unit(); import zmq; "
        "print(added[0]); print(zmq.__file__); print(unit.__name__, unit.BridgeClient.__name__); "
        "print(zmq.Context().socket(zmq.REQ).getsockopt(zmq.TYPE) == zmq.REQ)")


@pytest.mark.parametrize("version,abi", [(THIS_PYTHON, None), ("3.7", "cp37"), ("3.13", "abi3-cp312")])
def test_the_scripts_bootstrap_finds_the_client_and_the_vendored_zmq(scripts, version, abi):
    """Under a real interpreter run with -S (no site-packages: the venv's own zmq and any other
    are out of reach), the installed bootstrap puts our wheel first and imports client and zmq."""
    python = sys.executable if version == THIS_PYTHON else real_python(version)
    if python is None:
        pytest.skip(f"no Python {version} on this machine")
    if abi is None:  # this machine's Python: the wheel the fixture installed for it
        abi = "abi3-cp312" if sys.version_info >= (3, 12) else "cp{}{}".format(*sys.version_info[:2])
        if abi not in ("cp37", "cp311", "abi3-cp312"):
            pytest.skip(f"the test wheels serve Python 3.7, 3.11 and 3.12+, not {version}")
    done = subprocess.run([python, "-S", "-c", BOOT, scripts], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=""), cwd=scripts)
    assert done.returncode == 0, done.stderr
    added, module, client, works = done.stdout.split("\n")[:4]
    folder = os.path.join(scripts, "rvm_bridge", "wheels", platform_name(), abi)
    assert added == folder and module.startswith(folder + os.sep)
    assert client == "rvm_bridge.client BridgeClient" and works == "True"


def test_a_second_install_upgrades_ours_and_leaves_the_artists_scripts_alone(tmp_path, pyzmq_wheels):
    scripts = tmp_path / "Scripts"
    assert install(scripts, "--python", "3.11", "--wheels", pyzmq_wheels) == 0
    mine = {"Comp/My Keyer.py": "print('mine')\n", "Utility/Render All.lua": "print('mine')\n",
            "Edit/Trim.py": "print('mine')\n", "rvm_notes.txt": "keep\n"}
    for path, text in mine.items():
        (scripts / path).parent.mkdir(exist_ok=True)
        (scripts / path).write_text(text)
    (scripts / "Comp" / "RVM Matte.py").write_text("an older version\n")
    (scripts / "rvm_bridge" / "stale.py").write_text("from an older version\n")
    (scripts / (resolve_install.STAGING_PREFIX + "interrupted") / "rvm_bridge").mkdir(parents=True)

    assert install(scripts, "--python", "3.11", "3.13", "--wheels", pyzmq_wheels) == 0
    assert {path: (scripts / path).read_text() for path in mine} == mine
    assert filecmp.cmp(scripts / "Comp" / "RVM Matte.py", os.path.join(SOURCE, "scripts", "Comp", "RVM Matte.py"),
                       False)
    assert not (scripts / "rvm_bridge" / "stale.py").exists()
    assert sorted(os.listdir(scripts / "rvm_bridge" / "wheels" / platform_name())) == ["abi3-cp312", "cp311"]
    assert leftovers(str(scripts)) == []


def test_a_failed_install_says_why_in_one_line_and_leaves_the_last_one(tmp_path, pyzmq_wheels, capsys):
    scripts = tmp_path / "Scripts"
    assert install(scripts, "--python", "3.11", "--wheels", pyzmq_wheels) == 0
    capsys.readouterr()
    assert install(scripts, "--python", "3.9", "--wheels", pyzmq_wheels) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "Python 3.9" in error and "--wheels" in error
    assert (scripts / "rvm_bridge" / "wheels" / platform_name() / "cp311" / "zmq").is_dir()
    assert leftovers(str(scripts)) == []
    with pytest.raises(WheelError, match="--python X.Y"):  # the default list offline: name the Python instead
        resolve_install.install_resolve(str(scripts), wheel_source=pyzmq_wheels, environ={})

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert install(blocked / "Scripts", "--no-pyzmq") == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("rvm-bridge install: error:") and "\n" not in error
    assert f"cannot write to {blocked / 'Scripts'}" in error and "--dest" in error


def test_the_python_resolve_is_pointed_at_is_asked_its_version(tmp_path):
    home = sys.prefix  # a venv is a Python home too: bin/python3 (python.exe on Windows)
    assert resolve_install.pythons_to_vendor(None, {"PYTHON3HOME": home})[0] == [sys.version_info[:2], (3, 12)]
    assert resolve_install.pythons_to_vendor(None, {"FUSION_PYTHON3_HOME": home})[0] == [sys.version_info[:2],
                                                                                          (3, 12)]
    defaults, why = resolve_install.pythons_to_vendor(None, {"PYTHON3HOME": str(tmp_path)})  # nothing runnable
    assert defaults == [(3, 7), (3, 8), (3, 9), (3, 10), (3, 11), (3, 12)] and "PYTHON3HOME" in why
    assert resolve_install.pythons_to_vendor(["3.10", "3.14"], {"PYTHON3HOME": home})[0] == [(3, 10), (3, 14)]


@pytest.mark.parametrize("platform, all_users, expected", [
    ("linux", False, "/home/ed/.local/share/DaVinciResolve/Fusion/Scripts"),
    ("linux", True, "/opt/resolve/Fusion/Scripts"),
    ("darwin", False, "/home/ed/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts"),
    ("darwin", True, "/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts"),
    ("win32", False, "C:\\Users\\ed\\AppData\\Roaming\\Blackmagic Design\\DaVinci Resolve\\Support\\Fusion\\Scripts"),
    ("win32", True, "C:\\ProgramData\\Blackmagic Design\\DaVinci Resolve\\Fusion\\Scripts"),
])
def test_the_default_folder_is_this_oss_per_user_or_all_users_one(platform, all_users, expected, monkeypatch):
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setenv("HOME", "/home/ed")
    environ = {"APPDATA": "C:\\Users\\ed\\AppData\\Roaming", "PROGRAMDATA": "C:\\ProgramData"}
    assert resolve_install.default_scripts_folder(all_users, environ) == expected


def test_without_dest_it_installs_into_this_users_scripts_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    monkeypatch.setenv("APPDATA", str(tmp_path / "AppData" / "Roaming"))
    done = resolve_install.install_resolve(with_pyzmq=False)
    expected = install_layout.scripts_folders(resolve_install.this_os(), False, os.environ, str(tmp_path))
    assert done.scripts == install_layout.scripts_root(resolve_install.this_os(), False, os.environ, str(tmp_path))
    assert all(os.path.isdir(folder) for folder in expected.values())
    assert os.path.isfile(os.path.join(expected["Comp"], "RVM Matte.py"))
    args = build_parser().parse_args(["install", "resolve", "--all-users", "--no-pyzmq"])
    assert args.all_users and args.dest is None and args.no_pyzmq
    with pytest.raises(SystemExit):  # one place or the other
        build_parser().parse_args(["install", "resolve", "--all-users", "--dest", str(tmp_path)])


def test_the_command_line_for_the_lua_launcher_runs_this_bridge(scripts):
    assert resolve_install.bridge_command_line("C:\\Program Files\\Python311\\python.exe", windows=True) == \
        '"C:\\Program Files\\Python311\\python.exe" -m bridge_server'
    assert resolve_install.bridge_command_line("/opt/my python/bin/python3", windows=False) == \
        "'/opt/my python/bin/python3' -m bridge_server"
    line = open(os.path.join(scripts, "rvm_bridge", "command.txt")).read().strip()
    argv = shlex.split(line, posix=os.name != "nt")
    done = subprocess.run(argv + ["--version"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert done.returncode == 0 and done.stdout.startswith("rvm-bridge"), done.stderr
