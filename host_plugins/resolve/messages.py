"""What the scripts tell the artist when something stops them, in the artist's words.

Every stop is a ``UserError`` whose text says what happened and what to do; the entry scripts
print it and show it in a dialog where the edition has one. ``explain`` turns the bridge's own
errors (``BridgeError`` subclasses, caught by their ``code`` so this module needs no client
import) into such text, naming the address, the roots or the file.
"""

from __future__ import annotations

from typing import Optional, Sequence

INSTALL_COMMAND = "rvm-bridge install resolve"
SERVE_COMMAND = "rvm-bridge serve --root <folder holding your plates>"


class UserError(Exception):
    """A stop the artist can act on; ``str()`` is the whole message."""


class NothingSelected(UserError):
    pass


class NotAFile(UserError):
    pass


class EditionCannot(UserError):
    pass


class ZmqMissing(UserError):
    pass


class Cancelled(UserError):
    pass


def nothing_selected(where: str) -> NothingSelected:
    if where == "comp":
        return NothingSelected("RVM Matte: select a Loader or a MediaIn in the Flow first (the matte is made for "
                               "the selected tool's clip).")
    return NothingSelected("RVM Matte: select clips in the Media Pool, or put the playhead over a clip on the "
                           "timeline, then run RVM Matte again.")


def zmq_missing(python: str, detail: str) -> ZmqMissing:
    return ZmqMissing(f"RVM Matte needs the ZeroMQ library (pyzmq) for this Python ({python}), and it could not be "
                      f"loaded ({detail}). In a terminal where rvm-bridge is installed, run `{INSTALL_COMMAND}`, "
                      "then run the script again.")


def explain(error: BaseException, address: str = "", roots: Sequence[str] = ()) -> str:
    """The artist's message for ``error`` (a bridge error or a UserError), with what to do."""
    if isinstance(error, UserError):
        return str(error)
    code = getattr(error, "code", "")
    message = getattr(error, "message", str(error))
    at = f" at {address}" if address else ""
    if code == "timeout":
        return (f"RVM Matte: no RVM bridge answered{at}. Start one in a terminal with `{SERVE_COMMAND}`, or check "
                "the server address in the dialog.")
    if code == "access_refused":
        return f"RVM Matte: the bridge{at} refused this computer's keys: {message}"
    if code == "path_outside_roots":
        where = ", ".join(roots) if roots else "its --root folders"
        return (f"RVM Matte: the bridge{at} may only read and write under {where}. {message}. Start the bridge "
                "with --root on the folder of your plates, or choose an output folder under one of its roots.")
    if code == "no_path_mapping":
        return (f"RVM Matte: the bridge{at} runs on another kind of computer and cannot reach this path: {message}. "
                "Set RVM_BRIDGE_PATH_MAP (for example P:\\shows=/mnt/shows) before starting Resolve.")
    if code == "plate_error":
        return (f"RVM Matte: the bridge cannot read or write a plate: {message.rstrip('.')}. If it is the clip that "
                "cannot be read (a camera raw or other codec the bridge does not decode), render it to EXR first (the "
                "comp script does this with a Saver); if the plates cannot be written, choose a plates folder the "
                "bridge can write to.")
    if code == "colour_error":
        return f"RVM Matte: the colour space is not one the bridge knows: {message}"
    if code == "weights_error":
        return f"RVM Matte: the bridge has no weights for this model: {message}"
    if code:
        return f"RVM Matte: the bridge{at} could not make the matte: {message}"
    return f"RVM Matte stopped: {type(error).__name__}: {error}"


def first_line(text: Optional[str]) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""
