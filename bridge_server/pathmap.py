"""Path mapping between a client's view of shared storage and the server's.

An artist's Windows box sees the show as ``P:\\shows``, the GPU server as ``/mnt/shows``.
A rule maps a client prefix to a server prefix; the client applies the rules to every path it
sends (plates, patterns, checkpoints) and, in reverse, to every path the server sends back.
Matching is on whole path components, uses the longest matching prefix, treats ``\\`` and
``/`` alike, and ignores case where a prefix is Windows-style (drive letter, UNC, backslash).

Standard library only (Python 3.7+).
"""

from __future__ import annotations

import os
import re
from typing import Iterable, List, Optional, Sequence, Tuple

ENVIRONMENT_VARIABLE = "RVM_BRIDGE_PATH_MAP"
_DRIVE = re.compile(r"^[A-Za-z]:")


def _windows_style(prefix: str) -> bool:
    return bool(_DRIVE.match(prefix)) or prefix.startswith("\\\\") or "\\" in prefix


def _components(path: str) -> List[str]:
    parts = path.replace("\\", "/").split("/")
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return parts


class PathRule:
    """One mapping: paths under ``client`` on the client are under ``server`` on the server."""

    def __init__(self, client: str, server: str) -> None:
        if not client or not server:
            raise ValueError("a path-mapping rule needs a client prefix and a server prefix")
        self.client = client
        self.server = server

    def __repr__(self) -> str:
        return f"PathRule({self.client!r}, {self.server!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PathRule) and (self.client, self.server) == (other.client, other.server)


def _rest_under(path: str, prefix: str) -> Optional[List[str]]:
    """The components of ``path`` below ``prefix`` (empty for the prefix itself), or None."""
    fold = _windows_style(prefix) or _windows_style(path)
    head, whole = _components(prefix), _components(path)
    if len(whole) < len(head):
        return None
    for mine, theirs in zip(whole, head):
        if (mine.lower() != theirs.lower()) if fold else (mine != theirs):
            return None
    return [part for part in whole[len(head):] if part]


def _join(prefix: str, rest: List[str]) -> str:
    if not rest:
        return prefix
    separator = "\\" if _windows_style(prefix) else "/"
    return prefix.rstrip("\\/") + separator + separator.join(rest)


class PathMap:
    """An ordered set of rules; unmapped paths pass through unchanged."""

    def __init__(self, rules: Iterable[PathRule] = ()) -> None:
        self.rules: List[PathRule] = list(rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def to_server(self, path: str) -> str:
        """``path`` as the server sees it."""
        return self._map(path, [(rule.client, rule.server) for rule in self.rules])

    def to_client(self, path: str) -> str:
        """A server ``path`` as the client sees it."""
        return self._map(path, [(rule.server, rule.client) for rule in self.rules])

    @staticmethod
    def _map(path: str, pairs: Sequence[Tuple[str, str]]) -> str:
        best: Optional[Tuple[int, str, List[str]]] = None
        for source, target in pairs:
            rest = _rest_under(path, source)
            if rest is not None and (best is None or len(source) > best[0]):
                best = (len(source), target, rest)
        return path if best is None else _join(best[1], best[2])

    @classmethod
    def parse(cls, text: str) -> PathMap:
        """Rules written ``CLIENT=SERVER``, several separated by ``;``.

        Raises ValueError naming the rule that has no ``=`` or an empty side.
        """
        rules = []
        for item in text.split(";"):
            item = item.strip()
            if not item:
                continue
            client, equals, server = item.partition("=")
            if not equals or not client.strip() or not server.strip():
                raise ValueError(f"path-mapping rule {item!r} must be written CLIENT_PREFIX=SERVER_PREFIX")
            rules.append(PathRule(client.strip(), server.strip()))
        return cls(rules)

    @classmethod
    def from_environment(cls) -> PathMap:
        """Rules from ``$RVM_BRIDGE_PATH_MAP`` (empty when unset)."""
        return cls.parse(os.environ.get(ENVIRONMENT_VARIABLE, ""))

    def to_json(self) -> List[List[str]]:
        return [[rule.client, rule.server] for rule in self.rules]

    @classmethod
    def from_json(cls, pairs: object) -> PathMap:
        """Rules from ``[[client, server], ...]`` (as a server's hello sends them); bad items are skipped."""
        rules = []
        if isinstance(pairs, list):
            for pair in pairs:
                if isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) and p for p in pair):
                    rules.append(PathRule(pair[0], pair[1]))
        return cls(rules)
