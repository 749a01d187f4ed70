"""Path mapping between a client's view of shared storage and the server's.

An artist's Windows box sees the show as ``P:\\shows``, a Mac as ``/Volumes/shows``, the GPU
server as ``/mnt/shows``. A rule maps a client prefix to a server prefix. The client applies
the rules to every path it sends (plates, patterns, checkpoints) and, in reverse, to every
path the server sends back; the server never maps replies, so a Mac and a Windows artist on
one server each get their own paths back. Matching is on whole path components, uses the
longest matching prefix, treats ``\\`` and ``/`` alike, and ignores case where a prefix is
Windows-style (drive letter, UNC, backslash).

The client's own rules come first. A server's rules (sent in ``hello``) are used for paths of
the same style as their client side, and back to this client only where their client side is
this OS's style. A Windows-style path that no rule maps cannot reach a POSIX server:
``to_server`` raises ``PathNotMapped`` saying which variable or option sets a rule.

Standard library only (Python 3.7+).
"""

from __future__ import annotations

import os
import re
from typing import Iterable, List, Optional, Sequence, Tuple

from .errors import BadParameter, PathNotMapped

ENVIRONMENT_VARIABLE = "RVM_BRIDGE_PATH_MAP"
_DRIVE = re.compile(r"^[A-Za-z]:")


def windows_style(path: str) -> bool:
    """True for ``P:\\...``, ``P:/...``, UNC ``\\\\server\\share`` and backslashed paths."""
    return bool(_DRIVE.match(path)) or path.startswith("\\\\") or "\\" in path


def _components(path: str) -> List[str]:
    """The folders of ``path``; the leading empty ones say root (one) or UNC share (two), and a
    doubled separator elsewhere (``P:\\\\shows`` from an over-escaped shell line) is no folder."""
    parts = path.replace("\\", "/").split("/")
    lead = 0
    while lead < min(2, len(parts) - 1) and parts[lead] == "":
        lead += 1
    return parts[:lead] + [part for part in parts[lead:] if part]


class PathRule:
    """One mapping: paths under ``client`` on the client are under ``server`` on the server."""

    def __init__(self, client: str, server: str) -> None:
        if not client or not server:
            raise BadParameter("a path-mapping rule needs a client prefix and a server prefix")
        self.client = client
        self.server = server

    def __repr__(self) -> str:
        return f"PathRule({self.client!r}, {self.server!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PathRule) and (self.client, self.server) == (other.client, other.server)

    def __hash__(self) -> int:
        return hash((self.client, self.server))


def _rest_under(path: str, prefix: str) -> Optional[List[str]]:
    """The components of ``path`` below ``prefix`` (empty for the prefix itself), or None."""
    fold = windows_style(prefix) or windows_style(path)
    head, whole = _components(prefix), _components(path)
    if len(whole) < len(head):
        return None
    for mine, theirs in zip(whole, head):
        if (mine.lower() != theirs.lower()) if fold else (mine != theirs):
            return None
    return [part for part in whole[len(head):] if part]


def _join(prefix: str, rest: List[str]) -> str:
    """``rest`` under ``prefix``, with the separator the prefix is written with (``P:/shows``
    gives ``P:/shows/a.exr``, as Nuke writes paths; ``P:\\shows`` gives ``P:\\shows\\a.exr``)."""
    if not rest:
        return prefix
    separator = "\\" if "\\" in prefix or ("/" not in prefix and windows_style(prefix)) else "/"
    return prefix.rstrip("\\/") + separator + separator.join(rest)


def _best(path: str, pairs: Sequence[Tuple[str, str]]) -> Optional[str]:
    """The mapping of ``path`` by the rule with the most folders that holds it (None: no rule)."""
    best: Optional[Tuple[int, str, List[str]]] = None
    for source, target in pairs:
        rest = _rest_under(path, source)
        depth = len(_components(source))
        if rest is not None and (best is None or depth > best[0]):
            best = (depth, target, rest)
    return None if best is None else _join(best[1], best[2])


class PathMap:
    """The client's own rules, then the server's (``served``); unmapped paths pass through."""

    def __init__(self, rules: Iterable[PathRule] = (), served: Iterable[PathRule] = (),
                 client_windows: Optional[bool] = None) -> None:
        self.rules: List[PathRule] = list(rules)
        self.served: List[PathRule] = [rule for rule in served if rule not in self.rules]
        self.client_windows = os.name == "nt" if client_windows is None else client_windows

    def __bool__(self) -> bool:
        return bool(self.rules or self.served)

    def with_served(self, served: Iterable[PathRule]) -> PathMap:
        """This map with a server's rules (from ``hello``) after its own."""
        return PathMap(self.rules, served, self.client_windows)

    def to_server(self, path: str, server_windows: bool = False) -> str:
        """``path`` as the server sees it. Raises PathNotMapped for a Windows-style path that no
        rule maps when the server is not Windows (it could only be misread as a relative path)."""
        mapped = _best(path, [(rule.client, rule.server) for rule in self.rules])
        if mapped is None:
            style = windows_style(path)
            mapped = _best(path, [(rule.client, rule.server) for rule in self.served
                                  if windows_style(rule.client) == style])
        if mapped is None:
            mapped = path
            if windows_style(path) and not server_windows:
                raise PathNotMapped(f"no path-mapping rule for {path} (set {ENVIRONMENT_VARIABLE}, e.g. "
                                    "'P:\\shows=/mnt/shows', or serve --path-map)")
        return mapped

    def to_client(self, path: str) -> str:
        """A server ``path`` as this client sees it: its own rules first, then the server's rules
        whose client side is in this OS's style."""
        mapped = _best(path, [(rule.server, rule.client) for rule in self.rules])
        if mapped is None:
            mapped = _best(path, [(rule.server, rule.client) for rule in self.served
                                  if windows_style(rule.client) == self.client_windows])
        return path if mapped is None else mapped

    @classmethod
    def parse(cls, text: str) -> PathMap:
        """Rules written ``CLIENT=SERVER``, several separated by ``;``.

        Raises BadParameter naming the rule that has no ``=`` or an empty side.
        """
        rules = []
        for item in text.split(";"):
            item = item.strip()
            if not item:
                continue
            client, equals, server = item.partition("=")
            if not equals or not client.strip() or not server.strip():
                raise BadParameter(f"path-mapping rule {item!r} must be written CLIENT_PREFIX=SERVER_PREFIX, "
                                   "e.g. 'P:\\shows=/mnt/shows'")
            rules.append(PathRule(client.strip(), server.strip()))
        return cls(rules)

    @classmethod
    def from_environment(cls) -> PathMap:
        """Rules from ``$RVM_BRIDGE_PATH_MAP`` (empty when unset)."""
        return cls.parse(os.environ.get(ENVIRONMENT_VARIABLE, ""))

    def to_json(self) -> List[List[str]]:
        return [[rule.client, rule.server] for rule in self.rules]

    @staticmethod
    def rules_from_json(pairs: object) -> List[PathRule]:
        """Rules from ``[[client, server], ...]`` (as a server's hello sends them); bad items are skipped."""
        rules = []
        if isinstance(pairs, list):
            for pair in pairs:
                if isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) and p for p in pair):
                    rules.append(PathRule(pair[0], pair[1]))
        return rules
