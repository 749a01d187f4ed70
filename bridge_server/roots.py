"""Root folders: the only places a bridge reads or writes plates.

A path is resolved (symlinks followed, ``..`` collapsed, relative paths refused) before it is
compared with the roots, which are resolved the same way when the server starts, so a link
inside a root that points outside it does not let a client out.
"""

from __future__ import annotations

import os
from typing import Iterable, List

from .errors import RemoteError


class PlateRoots:
    """The folders plates may be read from and written to."""

    def __init__(self, roots: Iterable[str]) -> None:
        self.roots: List[str] = []
        for root in roots:
            if not os.path.isdir(root):
                raise ValueError(f"plate root {root} is not a folder; create it or fix --root")
            self.roots.append(os.path.realpath(root))
        if not self.roots:
            raise ValueError("the bridge needs at least one --root folder to read and write plates under")

    def resolve(self, path: str, what: str = "plate") -> str:
        """``path`` resolved, if it lies under a root.

        Raises RemoteError with code ``path_outside_roots`` (naming the path and the roots)
        for a relative path or one that resolves outside every root.
        """
        if not os.path.isabs(path):
            raise RemoteError(f"{what} path {path!r} is relative; send absolute paths (as the server sees them)",
                              "path_outside_roots")
        real = os.path.realpath(path)
        for root in self.roots:
            if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
                return real
        raise RemoteError(f"{what} {path} is outside the server's root folders ({', '.join(self.roots)}); "
                          "add a --root for it or use a path mapping", "path_outside_roots")

    def resolve_pattern(self, pattern: str, what: str) -> str:
        """A sequence pattern whose folder is under a root: the resolved folder joined to the
        pattern's file name (the frame token must be in the file name, not the folders).

        Raises RemoteError ``path_outside_roots``, or ``bad_parameter`` for a token in a folder.
        """
        folder, name = os.path.split(pattern)
        if any(token in folder for token in ("#", "@", "%0", "$F")):
            raise RemoteError(f"{what} pattern {pattern} has a frame token in its folders; put it in the file name",
                              "bad_parameter")
        if name in ("", ".", ".."):
            raise RemoteError(f"{what} pattern {pattern} names a folder, not files", "bad_parameter")
        return os.path.join(self.resolve(folder or ".", what + " folder"), name)
