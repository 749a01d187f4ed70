"""The node's code checked the way a Nuke licence cannot check it on CI: mypy against the
published types-nuke stubs (plus the local stub of what Nuke 17.1 adds), and vermin proving the
node, its start-up files, the path-picker and the vendored client need nothing newer than 3.7."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE = os.path.join(REPO, "host_plugins", "nuke")


def python_files(*folders):
    return [os.path.join(root, name) for folder in folders for root, _, names in os.walk(folder)
            for name in sorted(names) if name.endswith(".py")]


def test_the_node_type_checks_against_the_published_nuke_stubs():
    from importlib.metadata import PackageNotFoundError, version

    try:
        version("types-nuke")
    except PackageNotFoundError:
        raise AssertionError("types-nuke (a dev dependency) is not installed: pip install -e '.[dev]'") from None
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", os.path.join(NODE, "rvm_matte"),
                           os.path.join(REPO, "bridge_server", "install")],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout


def test_the_node_and_what_the_installer_copies_run_on_python_3_7():
    files = python_files(NODE, os.path.join(REPO, "bridge_server", "client")) + [
        os.path.join(REPO, "bridge_server", "install", "pathpicker.py")]
    assert os.path.join(NODE, "init.py") in files and os.path.join(NODE, "rvm_matte", "render.py") in files
    run_vermin = "import sys; from vermin.main import main; sys.exit(main())"
    done = subprocess.run([sys.executable, "-c", run_vermin, "-t=3.7-", "--no-tips", "--violations", *files],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
