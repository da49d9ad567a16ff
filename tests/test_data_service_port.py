"""`tfdenoise data-service` refuses a port something already listens on: gRPC's SO_REUSEPORT
would otherwise let a second dispatcher share it and split workers and trainers between them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from tfdenoise import ports

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "tfdenoise", "data-service", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def held_port():
    """A port a plain socket listens on for the test's duration."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_held_by_a_socket_is_refused(held_port):
    with pytest.raises(ValueError, match=f"port {held_port} is already in use"):
        ports.check_port_free(held_port)
    ports.check_port_free(0)  # any free port


def test_a_free_port_passes():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ports.check_port_free(port)


def test_a_second_dispatcher_on_a_busy_port_exits_2():
    first = tf.data.experimental.service.DispatchServer(
        tf.data.experimental.service.DispatcherConfig(port=0)
    )
    port = int(first.target.rsplit(":", 1)[-1])
    result = run_cli("dispatcher", "--port", str(port), "--timeout", "3")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"port {port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli(
        "worker", "--dispatcher", f"localhost:{port}", "--port", str(port), "--timeout", "3"
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"port {port} is already in use" in result.stderr
    first._stop()
