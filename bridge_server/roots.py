"""Root folders: the only places a bridge reads or writes plates.

A path is resolved (symlinks followed, ``..`` collapsed, relative paths refused) before it is
compared with the roots, which are resolved the same way when the server starts, so a link
inside a root that points outside it does not let a client out. Paths go back to clients as
the root was *spelled* when the server started (``/mnt/shows/...``, not the automounter's
``/net/fs1/shows/...``), so each client's own path mapping can translate them back.
"""

from __future__ import annotations

import os
from typing import Iterable, List, Tuple

from .client.errors import BadParameter, PathNotMapped, PathOutsideRoots
from .client.pathmap import ENVIRONMENT_VARIABLE, windows_style

FRAME_TOKENS = ("#", "@", "%0", "$F")


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class PlateRoots:
    """The folders plates may be read from and written to."""

    def __init__(self, roots: Iterable[str]) -> None:
        self._roots: List[Tuple[str, str]] = []  # (as spelled, resolved)
        for root in roots:
            if not os.path.exists(root):
                raise BadParameter(f"plate root {root} does not exist; create it or fix --root")
            if not os.path.isdir(root):
                raise BadParameter(f"plate root {root} is a file, not a folder; fix --root")
            self._roots.append((os.path.normpath(os.path.abspath(root)), os.path.realpath(root)))
        if not self._roots:
            raise BadParameter("the bridge needs at least one --root folder to read and write plates under")

    @property
    def roots(self) -> List[str]:
        """The roots as spelled when the server started."""
        return [spelled for spelled, _ in self._roots]

    def resolve(self, path: str, what: str = "plate") -> str:
        """``path``, checked to resolve under a root, spelled under the root's own spelling.

        Raises PathNotMapped for a path of another OS (``P:\\shows``), PathOutsideRoots for a
        relative path or one that resolves outside every root.
        """
        if windows_style(path) and os.name != "nt":
            raise PathNotMapped(f"no path-mapping rule for {path} (set {ENVIRONMENT_VARIABLE} on the client, "
                                "e.g. 'P:\\shows=/mnt/shows', or serve --path-map)")
        if not os.path.isabs(path):
            raise PathOutsideRoots(f"{what} path {path!r} is relative; send absolute paths (as the server sees them)")
        given, real = os.path.normpath(path), os.path.realpath(path)
        for spelled, resolved in self._roots:
            if _under(real, resolved):
                if _under(given, spelled):
                    return given
                rest = os.path.relpath(real, resolved)
                return spelled if rest == "." else os.path.join(spelled, rest)
        raise PathOutsideRoots(f"{what} {path} is outside the server's root folders ({', '.join(self.roots)}); "
                               "add a --root for it or use a path mapping")

    def resolve_pattern(self, pattern: str, what: str) -> str:
        """A sequence pattern whose folder is under a root: the folder resolved (see ``resolve``)
        joined to the pattern's file name.

        Raises PathOutsideRoots / PathNotMapped, or BadParameter for a frame token in a folder
        name or a pattern that names a folder.
        """
        folder, name = os.path.split(pattern.replace("\\", "/") if windows_style(pattern) else pattern)
        if windows_style(pattern):
            self.resolve(pattern, what)  # raises PathNotMapped on a POSIX server
        if any(token in folder for token in FRAME_TOKENS):
            raise BadParameter(f"{what} pattern {pattern} has a frame token in a folder name; frame tokens belong "
                               "in the file name (shot/plate.####.exr)")
        if name in ("", ".", ".."):
            raise BadParameter(f"{what} pattern {pattern} names a folder, not files")
        return os.path.join(self.resolve(folder or ".", what + " folder"), name)

    def check_folder_of(self, path: str, what: str) -> None:
        """Check again, right before a plate is written, that its folder still resolves under a
        root (a folder swapped for a symlink after the clip opened must not lead out)."""
        self.resolve(os.path.dirname(path), what + " folder")
