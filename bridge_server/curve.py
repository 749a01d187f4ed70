"""The server side of ZeroMQ CURVE: admit only authorized client keys, and log refusals.

``secure_server`` makes the ROUTER a CURVE server whose authenticator admits the public keys
in ``DIR/authorized_clients`` (made by ``rvm-bridge keys DIR``). pyzmq's authenticator notes a
refused key only at debug level; ``_RefusalLog`` raises those lines to warnings, with the
peer's address, and ``HandshakeWatch`` logs handshakes that fail before any key is looked at
(a client without keys, or with keys for another server).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

import zmq

from .client.errors import BadParameter
from .client.keys import AUTHORIZED, MAKE_HINT, check_folder, load_certificate

log = logging.getLogger("rvm_bridge.server")


class _RefusalLog(logging.LoggerAdapter):
    """pyzmq's authenticator logger: refusals become warnings naming the peer."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("rvm_bridge.curve"), {})
        self.address = "?"

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        text = str(msg) % args if args else str(msg)
        if "address:" in text:
            self.address = text.split("address:", 1)[1].split(",", 1)[0].strip(" '\"")
        if text.startswith("DENIED"):
            log.warning("refused a client from %s: its CURVE key is not in %s (%s)", self.address, AUTHORIZED, text)


def secure_server(socket: zmq.Socket, directory: str, context: zmq.Context) -> Any:
    """Make ``socket`` a CURVE server admitting only the authorized client keys in ``directory``.

    Returns the running authenticator (stop it when the server stops). Raises BadParameter
    saying what to run when the keys are missing or unreadable.
    """
    from zmq.auth.thread import ThreadAuthenticator

    check_folder(directory)
    public, secret = load_certificate(os.path.join(directory, "server.key_secret"), True)
    authorized = os.path.join(directory, AUTHORIZED)
    if not os.path.isdir(authorized) or not os.listdir(authorized):
        raise BadParameter(f"{authorized} holds no client keys, so no client could connect; {MAKE_HINT}")
    authenticator = ThreadAuthenticator(context, log=_RefusalLog())  # type: ignore[arg-type]
    authenticator.start()
    authenticator.configure_curve(domain="*", location=authorized)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    return authenticator


class HandshakeWatch:
    """Handshake failures on the server's socket, read by the main loop and logged."""

    EVENTS = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | \
        zmq.EVENT_HANDSHAKE_FAILED_AUTH

    def __init__(self, socket: zmq.Socket) -> None:
        self.socket: Optional[zmq.Socket] = socket.get_monitor_socket(self.EVENTS)
        self.refused = 0

    def drain(self) -> None:
        while self.socket is not None and self.socket.poll(0):
            from zmq.utils.monitor import parse_monitor_message

            event = parse_monitor_message(self.socket.recv_multipart())
            self.refused += 1
            why = "its key is not admitted" if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH else \
                "it speaks without CURVE keys, or with keys for another server"
            log.warning("refused a connection on %s: %s (handshake error %s)",
                        event.get("endpoint", b"").decode("utf-8", "replace"), why, event.get("value"))

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None
