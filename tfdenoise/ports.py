"""Whether a TCP port is free before a server takes it.

gRPC binds its servers (the tf.data service dispatcher and workers) with SO_REUSEPORT, so a
second server on a busy port starts without error and the kernel splits the connections
between the two: trainers and workers silently end up on different dispatchers.
"""

from __future__ import annotations

import socket


def check_port_free(port: int) -> None:
    """A ValueError when something already listens on `port` (0, any free port, always passes).

    A plain bind (SO_REUSEADDR only, so a port left in TIME_WAIT is free; no SO_REUSEPORT) on
    the address gRPC listens on, every interface, IPv6 and IPv4, fails where gRPC would not.
    """
    if port == 0:
        return
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too, as gRPC
        address: tuple = ("::", port)
    except OSError:  # no IPv6 in this kernel: gRPC listens on IPv4 only
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        address = ("", port)
    with probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise ValueError(
                f"port {port} is already in use ({error.strerror}): another dispatcher or "
                "worker, or another program, listens on it; choose another --port"
            ) from None
