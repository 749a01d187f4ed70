"""ZeroMQ CURVE keys: what lets a bridge listen beyond loopback.

``rvm-bridge keys DIR`` writes, in ZeroMQ's certificate format::

    DIR/server.key                      server public key   (give to clients)
    DIR/server.key_secret               server key pair     (stays on the server)
    DIR/client.key_secret               client key pair     (give to clients)
    DIR/authorized_clients/client.key   client public keys the server accepts

A server started with ``--keys DIR`` encrypts every connection and accepts only clients
whose public key is in ``authorized_clients``; a client given the same ``DIR`` (or a copy
holding ``server.key`` and ``client.key_secret``) connects. Standard library and pyzmq only.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Dict, Tuple

import zmq
import zmq.auth

from .errors import BridgeError

AUTHORIZED = "authorized_clients"


def make_keys(directory: str, *, overwrite: bool = False) -> Dict[str, str]:
    """Write a server and a client key pair under ``directory``; returns the files by role.

    Raises BridgeError (code bad_parameter) if keys exist there and ``overwrite`` is false.
    """
    server_secret = os.path.join(directory, "server.key_secret")
    if os.path.exists(server_secret) and not overwrite:
        raise BridgeError(f"{server_secret} already exists; pass --force to replace the keys", "bad_parameter")
    authorized = os.path.join(directory, AUTHORIZED)
    os.makedirs(authorized, exist_ok=True)
    server_public, server_secret = zmq.auth.create_certificates(directory, "server")
    client_public, client_secret = zmq.auth.create_certificates(directory, "client")
    # Clients need only the server's public key and their own pair: the public client key
    # lives in the folder the server's authenticator reads.
    authorized_key = shutil.move(client_public, os.path.join(authorized, "client.key"))
    for secret in (server_secret, client_secret):
        os.chmod(secret, 0o600)
    return {"server_public": server_public, "server_secret": server_secret,
            "client_secret": client_secret, "authorized_client": str(authorized_key)}


def _load(path: str, want_secret: bool) -> Tuple[bytes, bytes]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as error:
        raise BridgeError(f"cannot read CURVE key {path}: {error}; make keys with `rvm-bridge keys DIR`",
                          "bad_parameter") from None
    if want_secret and not secret:
        raise BridgeError(f"{path} holds no secret key", "bad_parameter")
    return public, secret or b""


def secure_server(socket: zmq.Socket, directory: str, context: zmq.Context) -> Any:
    """Make ``socket`` a CURVE server admitting only the authorized client keys in ``directory``.

    Returns the running authenticator (stop it when the server stops). Raises BridgeError
    (bad_parameter) if the keys are missing or unreadable.
    """
    from zmq.auth.thread import ThreadAuthenticator

    public, secret = _load(os.path.join(directory, "server.key_secret"), True)
    authorized = os.path.join(directory, AUTHORIZED)
    if not os.path.isdir(authorized) or not os.listdir(authorized):
        raise BridgeError(f"{authorized} holds no client keys; no client could connect", "bad_parameter")
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=authorized)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    return authenticator


def secure_client(socket: zmq.Socket, directory: str) -> None:
    """Give ``socket`` the client key pair and the server's public key found in ``directory``."""
    server_public, _ = _load(os.path.join(directory, "server.key"), False)
    public, secret = _load(os.path.join(directory, "client.key_secret"), True)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = server_public
