"""Loaded by every Python process of a guarded run (``PYTHONPATH`` points here): an outbound connection to any host
but this machine is refused and recorded in ``$ARENA_NETGUARD_LOG``. Loopback stays open (Jupyter kernels talk to
papermill over it; the browser test serves the book on it)."""

import os
import socket

_LOG = os.environ.get("ARENA_NETGUARD_LOG")
_LOCAL = ("127.", "::1", "localhost", "0.0.0.0")


def _guard(connect):
    def guarded(self, address, *args, **kwargs):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and self.family in (socket.AF_INET, socket.AF_INET6) and not str(host).startswith(_LOCAL):
            with open(_LOG, "a") as log:
                log.write(f"{os.getpid()} {host}:{address[1]}\n")
            raise OSError(f"outbound connection to {host} refused by the test's network guard")
        return connect(self, address, *args, **kwargs)

    return guarded


if _LOG:
    socket.socket.connect = _guard(socket.socket.connect)
    socket.socket.connect_ex = _guard(socket.socket.connect_ex)
