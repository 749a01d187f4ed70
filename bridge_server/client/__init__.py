"""The rvm-bridge client: everything that runs inside a host, as one folder.

Protocol, clip parameters, error classes, path mapping, CURVE key loading, address parsing,
the client, rendering through a bridge and starting a local bridge. It imports only the
standard library, ``pyzmq`` and itself (relative imports), and runs on Python 3.7+, so a host
installer copies this folder as it is into a Nuke or Resolve plug-in, under any name.
"""

from .client import BridgeClient
from .clip import Clip, FrameRequest, FrameResult, InlineFrame
from .errors import (
    AccessRefused,
    BadMessage,
    BadParameter,
    BridgeError,
    BridgeTimeout,
    ClipConflict,
    OrderError,
    PathNotMapped,
    PathOutsideRoots,
    PlateError,
    ProtocolError,
    RemoteError,
    ServerBusy,
    UnknownClip,
    VersionMismatch,
)
from .launch import ServerProcess
from .parameters import CLIP_PARAMETERS, MODELS
from .pathmap import PathMap, PathRule
from .protocol import DEFAULT_ADDRESS, PROTOCOL_VERSION
from .render import RenderSummary, render_through_bridge

__all__ = [
    "AccessRefused", "BadMessage", "BadParameter", "BridgeClient", "BridgeError", "BridgeTimeout", "CLIP_PARAMETERS",
    "Clip", "ClipConflict", "DEFAULT_ADDRESS", "FrameRequest", "FrameResult", "InlineFrame", "MODELS", "OrderError",
    "PROTOCOL_VERSION", "PathMap", "PathNotMapped", "PathOutsideRoots", "PathRule", "PlateError", "ProtocolError",
    "RemoteError", "RenderSummary", "ServerBusy", "ServerProcess", "UnknownClip", "VersionMismatch",
    "render_through_bridge",
]
