"""The scripts' few calls to the bridge, through the client unit (``bootstrap.client_unit()``).

Ask what it serves (for the dialog), check it answers (before touching the comp), and render a
range through it with progress and cancel (``render_through_bridge``: the server plans the
render, reads the source itself and writes the plates; frames go in order).
"""

from __future__ import annotations

import os
import threading
from types import ModuleType
from typing import Any, Dict, List, Optional, Tuple

from .dialog import MatteSettings

PROBE_TIMEOUT = 3.0  # the dialog's look at the default server: short, a missing server is normal here
HELLO_TIMEOUT = 10.0
RATIOS_TIMEOUT = 300.0  # Try Ratios: silence accepted (the bridge's "still running" notes keep it alive)


def timeouts() -> Tuple[float, float]:
    """(probe, hello) seconds; ``$RVM_BRIDGE_TIMEOUT`` caps both (a slow network, or tests)."""
    try:
        cap = float(os.environ.get("RVM_BRIDGE_TIMEOUT", "") or HELLO_TIMEOUT)
    except ValueError:
        cap = HELLO_TIMEOUT
    if not cap > 0:
        cap = HELLO_TIMEOUT
    return min(PROBE_TIMEOUT, cap), min(HELLO_TIMEOUT, cap)


def describe(client: ModuleType, address: str, timeout: float) -> Optional[Dict[str, Any]]:
    """``describe_models`` of the bridge at ``address``, or None when it does not answer."""
    try:
        with client.BridgeClient(address, timeout=timeout, retries=0, name="resolve RVM Matte") as bridge:
            return dict(bridge.describe_models())
    except client.BridgeError:
        return None


def hello(client: ModuleType, address: str, timeout: float) -> Dict[str, Any]:
    """The bridge's ``hello`` (roots, path map); raises BridgeTimeout when nothing answers."""
    with client.BridgeClient(address, timeout=timeout, retries=1, name="resolve RVM Matte") as bridge:
        return dict(bridge.hello())


def frames_of(client: ModuleType, address: str, source: str, plates: Dict[str, str],
              timeout: float = HELLO_TIMEOUT) -> List[int]:
    """The frames of ``source`` the bridge finds (a movie's 0..count-1: only the bridge decodes
    movies). Raises the client's BridgeError subclasses (PlateError for a codec it cannot read)."""
    with client.BridgeClient(address, timeout=timeout, retries=1, name="resolve RVM Matte") as bridge:
        plan = bridge.plan_render(source, None, {"alpha": plates["alpha"], "foreground": plates["foreground"]})
    return [int(frame) for frame in plan.get("frames", [])]


def render(client: ModuleType, settings: MatteSettings, source: str, first: int, last: int,
           plates: Dict[str, str], progress: Any, cancel: threading.Event, timeout: float = 300.0) -> Any:
    """Matte ``first``..``last`` of ``source`` into ``plates`` (alpha, foreground patterns);
    returns the RenderSummary. Raises the client's BridgeError subclasses."""
    return client.render_through_bridge(
        settings.address, source, f"{first}-{last}", alpha=plates["alpha"], foreground=plates["foreground"],
        settings=settings.clip_settings(), progress=progress, cancel=cancel, timeout=timeout,
        name="resolve RVM Matte")
