"""ZeroMQ endpoint addresses: which ones stay on this machine, and how to bind "any free port".

Standard library only (Python 3.7+).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Tuple

_TCP = re.compile(r"^tcp://(\[[^\]]+\]|[^:/]+):(\d+|\*)$")


def split_tcp(address: str) -> Tuple[str, str]:
    """``(host, port)`` of a ``tcp://host:port`` address; raises ValueError for anything else."""
    match = _TCP.match(address)
    if not match:
        raise ValueError(f"address {address!r} is not tcp://HOST:PORT (e.g. tcp://127.0.0.1:5701)")
    return match.group(1).strip("[]"), match.group(2)


def is_loopback(address: str) -> bool:
    """True for addresses only this machine can reach: ipc://, inproc://, and tcp:// on
    localhost, 127.0.0.0/8 or ::1. Wildcards (``*``, 0.0.0.0) and named hosts are not."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    try:
        host, _ = split_tcp(address)
    except ValueError:
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
