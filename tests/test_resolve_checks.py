"""The Resolve scripts type-check against fusionscript-stubs and our Fusion interface, need
nothing newer than Python 3.7 (Resolve up to 21.0 runs whatever Python 3 the artist installed),
and import only the standard library at run time (the client and pyzmq come through bootstrap)."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import subprocess
import sys

from .resolve_support import REPO

HOST = os.path.join(REPO, "host_plugins", "resolve")


def host_files(extension: str = ".py"):
    for folder, _, names in os.walk(HOST):
        if "__pycache__" not in folder:
            yield from (os.path.join(folder, name) for name in sorted(names) if name.endswith(extension))


def test_the_scripts_type_check_against_the_resolve_stubs_and_our_fusion_interface():
    # Installed as a dev dependency; mypy would otherwise silently treat fusionscript as Any.
    assert importlib.metadata.version("fusionscript-stubs")
    assert os.path.isfile(os.path.join(HOST, "fusion_api.pyi"))
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--warn-unused-ignores", HOST],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_scripts_need_nothing_newer_than_python_3_7():
    files = list(host_files())
    assert any(name.endswith("RVM Matte.py") for name in files) and len(files) >= 12
    run_vermin = "import sys; from vermin.main import main; sys.exit(main())"
    done = subprocess.run([sys.executable, "-c", run_vermin, "-t=3.7-", "--no-tips", "--violations", *files],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _runtime_imports(path):
    """Imports that run (those under ``if TYPE_CHECKING:`` are for mypy only)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    checking = {id(node) for guard in ast.walk(tree) if isinstance(guard, ast.If) and
                getattr(guard.test, "id", "") == "TYPE_CHECKING" for node in ast.walk(guard)}
    for node in ast.walk(tree):
        if id(node) in checking:
            continue
        if isinstance(node, ast.Import):
            yield from ((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


def test_the_host_modules_import_only_the_standard_library_and_each_other():
    allowed = set(sys.stdlib_module_names) | {"rvm_bridge"}  # the entry scripts import the installed package
    for path in host_files():
        for module, level in _runtime_imports(path):
            assert level == 1 or module.split(".")[0] in allowed, (path, module)
