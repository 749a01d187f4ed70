"""``rvm-bridge install resolve``: lay out the RVM Matte scripts in Resolve's Fusion Scripts folder.

Into ``Fusion/Scripts`` (per user by default, ``--all-users``, or ``--dest``; the folders per OS
come from ``host_plugins/resolve/install_layout.py``) go the menu entries ``Comp/RVM Matte.py``,
``Comp/RVM Matte (Lua).lua`` and ``Utility/RVM Matte.py``, and the package ``rvm_bridge/``
(``client/``, ``resolve/``, the path-picker ``rvm_bridge_paths.py``, pyzmq unpacked under
``wheels/<platform>/<abi>/`` and ``command.txt``, the rvm-bridge command line the Lua launcher
runs). ``host_plugins/resolve/bootstrap.py`` is the one module of the scripts that knows it.

Everything is built in a hidden folder beside, then swapped in: a failed install (no wheel, a
full disk) leaves the previous one as it was, and a second install upgrades ours without touching
anything else in those folders.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import List, Mapping, Optional, Sequence, Tuple

from host_plugins.resolve import install_layout

from ..client.errors import BadParameter, BridgeError
from . import vendor

HOST_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "host_plugins", "resolve")
MENU_SOURCE = os.path.join(HOST_SOURCE, "scripts")
PACKAGE = install_layout.PACKAGE
COMMAND_FILE = "command.txt"
STAGING_PREFIX = ".rvm_bridge-install-"

#: Pythons vendored when no installed Python is found: every CPython the scripts run on up to
#: 3.11, plus ``ABI3_PYTHON`` (one abi3 wheel for 3.12 on, Resolve 21.1's own 3.14 included).
DEFAULT_PYTHONS: Tuple[Tuple[int, int], ...] = ((3, 7), (3, 8), (3, 9), (3, 10), (3, 11))
ABI3_PYTHON = (3, 12)
#: Where Resolve (and Fusion) are told which Python 3 to load.
PYTHON_HOME_VARIABLES = ("PYTHON3HOME", "FUSION_PYTHON3_HOME")
ASK_VERSION = "import sys; print('%d.%d' % sys.version_info[:2])"


class InstallError(BridgeError):
    """The scripts could not be installed (a folder that cannot be written); never sent over the wire."""

    default_code = "install"


def this_os() -> str:
    """``linux``, ``windows`` or ``macos`` (install_layout's names) for the running machine."""
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return "linux"


def default_scripts_folder(all_users: bool = False, environ: Optional[Mapping[str, str]] = None) -> str:
    """This machine's ``Fusion/Scripts`` folder, for this user or for all users."""
    return install_layout.scripts_root(this_os(), all_users, os.environ if environ is None else environ,
                                       os.path.expanduser("~"))


def python_version(executable: str) -> Optional[Tuple[int, int]]:
    """(major, minor) of a Python executable, asked by running it; None when it does not run."""
    try:
        done = subprocess.run([executable, "-c", ASK_VERSION], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    try:
        return vendor.parse_python(done.stdout.strip())
    except BadParameter:
        return None


def python_in(home: str) -> Optional[str]:
    """The interpreter inside a Python home folder (``python.exe`` on Windows, ``bin/python3``)."""
    for name in ("python.exe", os.path.join("bin", "python3"), os.path.join("bin", "python"), "python3", "python"):
        path = os.path.join(home, name)
        if os.path.isfile(path):
            return path
    return None


def installed_pythons(environ: Optional[Mapping[str, str]] = None) -> List[Tuple[str, Tuple[int, int]]]:
    """The Pythons Resolve is pointed at (``PYTHON3HOME``, ``FUSION_PYTHON3_HOME``) that run:
    ``[(description, (major, minor))]``."""
    env = os.environ if environ is None else environ
    found = []
    for variable in PYTHON_HOME_VARIABLES:
        home = env.get(variable, "")
        executable = python_in(home) if home else None
        version = python_version(executable) if executable else None
        if version is not None:
            found.append((f"{variable}={home}", version))
    return found


def pythons_to_vendor(chosen: Optional[Sequence[str]], environ: Optional[Mapping[str, str]] = None
                      ) -> Tuple[List[Tuple[int, int]], str]:
    """The Pythons to vendor pyzmq for, and a line saying why: the ``--python`` versions as given;
    else the installed Python(s) Resolve is pointed at plus the abi3 wheel; else the default list
    plus the abi3 wheel."""
    if chosen:
        pythons = [vendor.parse_python(text) for text in chosen]
        return list(dict.fromkeys(pythons)), "as chosen with --python"
    found = installed_pythons(environ)
    if found:
        pythons = [version for _, version in found] + [ABI3_PYTHON]
        return list(dict.fromkeys(pythons)), "for " + ", ".join(where for where, _ in found) + \
            " and Resolve's own Python from 21.1 (3.12 or later)"
    variables = " / ".join(PYTHON_HOME_VARIABLES)
    return list(DEFAULT_PYTHONS) + [ABI3_PYTHON], f"for every Python from 3.7 ({variables} names no runnable Python)"


def bridge_command_line(python: str = sys.executable, windows: bool = os.name == "nt") -> str:
    """The command line that runs this rvm-bridge (``python -m bridge_server``), quoted for the
    shell the Lua launcher hands it to (``cmd.exe`` on Windows, ``sh`` elsewhere)."""
    argv = [python, "-m", "bridge_server"]
    if windows:
        return subprocess.list2cmdline(argv)
    return " ".join(shlex.quote(part) for part in argv)


def menu_files() -> List[Tuple[str, str]]:
    """Our menu entries: ``[(menu, file name)]`` (``("Comp", "RVM Matte.py")``...)."""
    return [(menu, name) for menu in install_layout.MENUS for name in sorted(os.listdir(os.path.join(MENU_SOURCE, menu)))
            if not name.startswith(".") and os.path.isfile(os.path.join(MENU_SOURCE, menu, name))]


@dataclass
class ResolveInstall:
    scripts: str
    pythons: List[Tuple[int, int]]
    platforms: List[str]
    why: str
    command: str
    report: vendor.VendorReport = field(default_factory=vendor.VendorReport)

    @property
    def package(self) -> str:
        return os.path.join(self.scripts, PACKAGE)

    def lines(self) -> List[str]:
        entries = ", ".join(f"{menu}/{name}" for menu, name in menu_files())
        lines = [f"installed the RVM Matte scripts into {self.scripts} ({entries}, {PACKAGE}/)"]
        if self.pythons:
            lines.append(f"pyzmq for Python {', '.join('%d.%d' % p for p in self.pythons)} {self.why}:")
            lines += ["  " + line for line in self.report.lines()]
        else:
            lines.append("no pyzmq vendored (--no-pyzmq): Resolve's Python must have its own")
        lines.append(f"the Lua launcher runs: {self.command} (in {PACKAGE}/{COMMAND_FILE})")
        lines.append("in Resolve: Workspace > Scripts > Comp > RVM Matte and RVM Try Ratios (Fusion page), "
                     "Utility > RVM Matte (any page)")
        return lines


def _unwritable(folder: str, error: OSError, all_users: bool) -> InstallError:
    hint = ("run it as an administrator (sudo on Linux and macOS), or leave out --all-users" if all_users
            else "choose a folder you can write with --dest")
    if os.name == "nt":
        hint += "; close DaVinci Resolve first if it runs (it keeps the pyzmq it loaded open)"
    return InstallError(f"cannot write to {folder} ({error.strerror or error}); {hint}")


def _build(stage: str, pythons: Sequence[Tuple[int, int]], platforms: Sequence[str], wheel_source: Optional[str],
           command: str) -> vendor.VendorReport:
    """Lay out the menu entries and the package under ``stage`` (a fresh folder)."""
    package = os.path.join(stage, PACKAGE)
    os.makedirs(package)
    with open(os.path.join(package, "__init__.py"), "w", encoding="utf-8") as handle:
        handle.write('"""rvm-bridge for DaVinci Resolve, installed by `rvm-bridge install resolve` '
                     '(see resolve/bootstrap.py)."""\n')
    vendor.copy_client(package, name="client")
    shutil.copytree(HOST_SOURCE, os.path.join(package, "resolve"),
                    ignore=shutil.ignore_patterns("scripts", "__pycache__", "*.pyc"))
    vendor.copy_path_picker(package)
    report = vendor.VendorReport()
    if pythons:
        report = vendor.vendor_pyzmq(os.path.join(package, "wheels"), pythons, platforms, wheel_source)
    with open(os.path.join(package, COMMAND_FILE), "w", encoding="utf-8") as handle:
        handle.write(command + "\n")
    for menu, name in menu_files():
        os.makedirs(os.path.join(stage, menu), exist_ok=True)
        shutil.copyfile(os.path.join(MENU_SOURCE, menu, name), os.path.join(stage, menu, name))
    return report


def _swap_in(stage: str, scripts: str) -> None:
    """Move what ``stage`` holds into ``scripts``: the package folder first (the old one is renamed
    into ``stage``, deleted after, and put back if the new one cannot take its place), then each
    menu file over ours with one rename."""
    target = os.path.join(scripts, PACKAGE)
    old = os.path.join(stage, PACKAGE + ".old")
    if os.path.lexists(target):
        os.replace(target, old)
    try:
        os.replace(os.path.join(stage, PACKAGE), target)
    except OSError:
        if os.path.lexists(old):
            os.replace(old, target)
        raise
    for menu, name in menu_files():
        os.makedirs(os.path.join(scripts, menu), exist_ok=True)
        os.replace(os.path.join(stage, menu, name), os.path.join(scripts, menu, name))


def _forget_stale_stages(scripts: str) -> None:
    """Remove what an interrupted install left (best effort: a file a running Resolve holds open
    on Windows stays until the next time)."""
    for name in os.listdir(scripts):
        if name.startswith(STAGING_PREFIX):
            shutil.rmtree(os.path.join(scripts, name), ignore_errors=True)


def install_resolve(dest: Optional[str] = None, all_users: bool = False, pythons: Optional[Sequence[str]] = None,
                    platforms: Optional[Sequence[str]] = None, wheel_source: Optional[str] = None,
                    with_pyzmq: bool = True, command: Optional[str] = None,
                    environ: Optional[Mapping[str, str]] = None) -> ResolveInstall:
    """Install the scripts into ``dest`` (a ``Fusion/Scripts`` folder; default: this machine's,
    per user or ``all_users``), with pyzmq for ``pythons`` (``["3.10"]``; default: see
    ``pythons_to_vendor``) on ``platforms`` (default: this machine's) taken from PyPI or from
    ``wheel_source`` (a folder of wheels). ``with_pyzmq=False`` vendors none. ``command`` is
    the rvm-bridge command line for the Lua launcher (default: this Python's). Raises
    InstallError, BadParameter, vendor.WheelError; on any of them the previous install stays."""
    from .pathpicker import platform_name

    if wheel_source and not os.path.isdir(wheel_source):
        raise BadParameter(f"--wheels {wheel_source} is not a folder")
    if not os.path.isfile(os.path.join(MENU_SOURCE, "Comp", "RVM Matte (Lua).lua")):
        raise InstallError(f"this rvm-bridge lacks the Resolve scripts ({MENU_SOURCE}); reinstall it (pip install "
                           "-e . in a checkout)")
    scripts = os.path.abspath(os.path.expanduser(dest) if dest else default_scripts_folder(all_users, environ))
    chosen, why = pythons_to_vendor(pythons, environ) if with_pyzmq else ([], "")
    install = ResolveInstall(scripts, chosen, vendor.check_platforms(platforms or [platform_name()]), why,
                             command or bridge_command_line())
    try:
        os.makedirs(scripts, exist_ok=True)
        _forget_stale_stages(scripts)
        stage = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=scripts)
    except OSError as error:
        raise _unwritable(scripts, error, all_users and not dest) from error
    try:
        install.report = _build(stage, install.pythons, install.platforms, wheel_source, install.command)
        _swap_in(stage, scripts)
        for wheel in install.report.wheels:  # say where the wheels are now, not where they were built
            wheel.folder = os.path.join(scripts, os.path.relpath(wheel.folder, stage))
    except vendor.WheelError as error:
        if pythons:
            raise
        raise vendor.WheelError(f"{error.message}; or name the Python Resolve runs with --python X.Y") from error
    except OSError as error:
        raise _unwritable(getattr(error, "filename", None) or scripts, error, all_users and not dest) from error
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return install
