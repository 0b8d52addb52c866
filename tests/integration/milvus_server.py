"""One real Milvus Lite server for a test session, on loopback, with its data in a temp dir.

Milvus Lite 3.x is a pure-Python engine behind Milvus's gRPC protocol; its
``milvus-lite server`` command (``python -m milvus_lite server``) serves it on a port.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["MilvusUnavailableError", "milvus_lite_server"]

_START_TIMEOUT = 60.0


class MilvusUnavailableError(RuntimeError):
    """Milvus Lite is not installed or its server did not start (the tests skip)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(uri: str) -> bool:
    from pymilvus import MilvusClient, MilvusException

    try:
        client = MilvusClient(uri=uri, timeout=2)
    except MilvusException:
        return False
    try:
        client.list_collections()
        return True
    except MilvusException:
        return False
    finally:
        client.close()


@contextmanager
def milvus_lite_server(data_dir: Path) -> Iterator[str]:
    """Start ``milvus-lite server`` on 127.0.0.1; yield its ``milvus://`` URL; stop it.

    Raises:
        MilvusUnavailableError: milvus-lite or pymilvus is missing, or the server did not
            answer within a minute (the message holds its log).
    """
    for module in ("milvus_lite", "pymilvus"):
        if importlib.util.find_spec(module) is None:
            raise MilvusUnavailableError(f"{module} is not installed (pip install -e '.[dev]')")
    port = _free_port()
    log_path = data_dir / "server.log"
    command = [
        sys.executable,
        "-m",
        "milvus_lite",
        "server",
        "--data-dir",
        str(data_dir / "data"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-workers",
        "8",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not _answers(f"http://127.0.0.1:{port}"):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise MilvusUnavailableError(f"milvus-lite server did not start:\n{tail}")
            time.sleep(0.2)
        yield f"milvus://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
