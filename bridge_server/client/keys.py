"""ZeroMQ CURVE keys: making them, and loading them on the client side.

``rvm-bridge keys DIR`` writes, in ZeroMQ's certificate format::

    DIR/server.key                      server public key   (give to clients)
    DIR/server.key_secret               server key pair     (stays on the server)
    DIR/client.key_secret               client key pair     (give to clients)
    DIR/authorized_clients/client.key   client public keys the server accepts

A server started with ``--keys DIR`` encrypts every connection and admits only clients whose
public key is in ``authorized_clients`` (``bridge_server/curve.py``); a client given the same
``DIR`` (or a copy holding ``server.key`` and ``client.key_secret``) connects.
Standard library and pyzmq only.
"""

from __future__ import annotations

import os
import shutil
from typing import Dict, Tuple

import zmq
import zmq.auth

from .errors import BadParameter

AUTHORIZED = "authorized_clients"
MAKE_HINT = "make keys with `rvm-bridge keys DIR` on the server and copy server.key and client.key_secret here"


def make_keys(directory: str, *, overwrite: bool = False) -> Dict[str, str]:
    """Write a server and a client key pair under ``directory``; returns the files by role.

    Raises BadParameter if keys exist there and ``overwrite`` is false.
    """
    server_secret = os.path.join(directory, "server.key_secret")
    if os.path.exists(server_secret) and not overwrite:
        raise BadParameter(f"{server_secret} already exists; pass --force to replace the keys")
    authorized = os.path.join(directory, AUTHORIZED)
    try:
        os.makedirs(authorized, exist_ok=True)
    except OSError as error:
        raise BadParameter(f"cannot create the keys folder {authorized}: {error.strerror}") from None
    server_public, server_secret = zmq.auth.create_certificates(directory, "server")
    client_public, client_secret = zmq.auth.create_certificates(directory, "client")
    # Clients need only the server's public key and their own pair: the public client key
    # lives in the folder the server's authenticator reads.
    authorized_key = shutil.move(client_public, os.path.join(authorized, "client.key"))
    for secret in (server_secret, client_secret):
        os.chmod(secret, 0o600)
    return {"server_public": server_public, "server_secret": server_secret,
            "client_secret": client_secret, "authorized_client": str(authorized_key)}


def check_folder(directory: str) -> None:
    """Raise BadParameter saying what to run when ``directory`` is missing or not a folder."""
    if not os.path.exists(directory):
        raise BadParameter(f"keys folder {directory} does not exist; {MAKE_HINT}")
    if not os.path.isdir(directory):
        raise BadParameter(f"keys folder {directory} is a file, not a folder; {MAKE_HINT}")


def load_certificate(path: str, want_secret: bool) -> Tuple[bytes, bytes]:
    """``(public, secret)`` of a ZeroMQ certificate file; raises BadParameter naming the file."""
    check_folder(os.path.dirname(path) or ".")
    if not os.path.isfile(path):
        raise BadParameter(f"CURVE key {path} is missing; {MAKE_HINT}")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as error:
        raise BadParameter(f"cannot read CURVE key {path}: {error}; {MAKE_HINT}") from None
    if want_secret and not secret:
        raise BadParameter(f"{path} holds no secret key; give the client.key_secret made by `rvm-bridge keys`")
    return public, secret or b""


def secure_client(socket: zmq.Socket, directory: str) -> None:
    """Give ``socket`` the client key pair and the server's public key found in ``directory``."""
    server_public, _ = load_certificate(os.path.join(directory, "server.key"), False)
    public, secret = load_certificate(os.path.join(directory, "client.key_secret"), True)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = server_public
