"""Which Resolve is running, and what its edition lets the scripts do.

From ``resolve.GetProductName()`` ("DaVinci Resolve" or "DaVinci Resolve Studio") and
``resolve.GetVersion()`` (``[major, minor, patch, build, suffix]``), both in Blackmagic's
scripting README. What each edition can do comes from Blackmagic's release notes and forum
reports (see docs/resolve.md): the free edition lost UIManager dialogs in 19.1, and from 21.1
it no longer lists ``.py`` scripts under Workspace > Scripts (Lua scripts still run there);
``TimelineItem.GetSourceStartFrame`` exists from 19.0; up to 21.0 Python scripts run in a
separately installed Python 3, 21.1 ships its own Python 3.14 (no pip).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Sequence, Tuple

OLDEST = (18, 0)  # Media Pool selection (GetSelectedClips) and ImportMedia's dict form are needed


@dataclass(frozen=True)
class Edition:
    product: str
    version: Tuple[int, int, int]

    @property
    def studio(self) -> bool:
        return "studio" in self.product.lower()

    @property
    def fusion_studio(self) -> bool:
        """Standalone Fusion Studio (no Resolve object, no Media Pool)."""
        return self.product.lower().startswith("fusion")

    @property
    def ui_manager(self) -> bool:
        """UIManager dialogs: Studio always; the free edition before 19.1."""
        return self.studio or self.fusion_studio or self.version[:2] < (19, 1)

    @property
    def python_from_menu(self) -> bool:
        """Workspace > Scripts lists .py scripts: Studio always; the free edition before 21.1."""
        return self.studio or self.fusion_studio or self.version[:2] < (21, 1)

    @property
    def source_start_frame(self) -> bool:
        """TimelineItem.GetSourceStartFrame exists (19.0 on); older versions use GetLeftOffset."""
        return self.version[:2] >= (19, 0)

    @property
    def supported(self) -> bool:
        return self.fusion_studio or self.version[:2] >= OLDEST

    def describe(self) -> List[str]:
        """Plain lines: what this edition can do with RVM Matte."""
        name = f"{self.product} {'.'.join(str(part) for part in self.version)}"
        lines = [name + ":"]
        if not self.supported:
            lines.append(f"  too old for RVM Matte (needs {OLDEST[0]}.{OLDEST[1]} or newer).")
            return lines
        lines.append("  Python scripts from Workspace > Scripts: " + (
            "yes (Comp > RVM Matte and Utility > RVM Matte)" if self.python_from_menu else
            "no (this edition lists only Lua scripts: use Comp > RVM Matte (Lua))"))
        lines.append("  settings dialog: " + (
            "yes (UIManager)" if self.ui_manager else "no UIManager: the edition's own prompt, or defaults"))
        lines.append("  Media Pool import and clip mattes: " + ("no (standalone Fusion)" if self.fusion_studio
                                                                else "yes"))
        if self.version[:2] >= (21, 1):
            lines.append("  Python: Resolve's own 3.14 (no pip; rvm-bridge install resolve vendors pyzmq)")
        else:
            lines.append("  Python: the separately installed Python 3 (PYTHON3HOME / FUSION_PYTHON3_HOME); "
                         "3.13 and 3.14 are reported to crash fusionscript on 20.x for Windows")
        return lines


def python_warning(edition: Edition, python: Tuple[int, int], os_name: str) -> str:
    """A line for a Python known to crash ``fusionscript`` here (3.13 and 3.14 on Resolve 20.x for
    Windows, reported on Blackmagic's forum), else empty."""
    if os_name == "nt" and edition.version[0] == 20 and python >= (3, 13):
        return (f"RVM Matte: warning: Python {python[0]}.{python[1]} is reported to crash Resolve 20 for Windows' "
                "scripting; if Resolve stops responding, install Python 3.12 and point PYTHON3HOME at it.")
    return ""


def edition_of(product: Any, version: Any) -> Edition:
    """An Edition from what ``GetProductName()`` and ``GetVersion()`` returned (a list, or a
    Lua-style ``{1.0: major, ...}`` table; missing parts are 0)."""
    parts: Sequence[Any] = [value for _, value in sorted(version.items())] if isinstance(version, dict) else \
        list(version or [])
    numbers = []
    for part in list(parts)[:3]:
        try:
            numbers.append(int(part))
        except (TypeError, ValueError):
            numbers.append(0)
    numbers += [0] * (3 - len(numbers))
    return Edition(str(product or "DaVinci Resolve"), (numbers[0], numbers[1], numbers[2]))
