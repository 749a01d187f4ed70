"""ZeroMQ endpoint addresses: which ones stay on this machine, and how to bind "any free port".

Standard library only (Python 3.7+).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Tuple

from .errors import BadParameter

_TCP = re.compile(r"^tcp://(\[[^\]]+\]|[^:/]+):(\d+|\*)$")


def split_tcp(address: str) -> Tuple[str, str]:
    """``(host, port)`` of a ``tcp://host:port`` address; raises BadParameter for anything else."""
    match = _TCP.match(address)
    if not match:
        raise BadParameter(f"address {address!r} is not tcp://HOST:PORT (e.g. tcp://127.0.0.1:5701)")
    if match.group(2) != "*" and int(match.group(2)) > 65535:  # ZeroMQ would quietly use the port modulo 65536
        raise BadParameter(f"address {address!r} names port {match.group(2)}; ports are 0..65535")
    return match.group(1).strip("[]"), match.group(2)


def is_loopback(address: str) -> bool:
    """True for addresses only this machine can reach: ipc://, inproc://, and tcp:// on
    localhost, 127.0.0.0/8 or ::1. Wildcards (``*``, 0.0.0.0) and named hosts are not."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    try:
        host, _ = split_tcp(address)
    except BadParameter:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_address(address: str) -> str:
    """``address`` as ZeroMQ binds it: a tcp port of 0 means "any free port" (``*``)."""
    if address.startswith("tcp://"):
        host, port = split_tcp(address)
        if port == "0":
            host = f"[{host}]" if ":" in host else host
            return f"tcp://{host}:*"
    return address


def check_address(address: str) -> str:
    """``address`` if a client can connect to it (tcp://HOST:PORT, ipc://, inproc://); raises
    BadParameter otherwise, before ZeroMQ would say only "Invalid argument"."""
    if address.startswith(("ipc://", "inproc://")):
        return address
    _, port = split_tcp(address)
    if port in ("*", "0"):
        raise BadParameter(f"address {address!r} names no port to connect to; give the server's port, "
                           "e.g. tcp://127.0.0.1:5701")
    return address
