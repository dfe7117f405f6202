"""What several test modules share: the very small tiny model of their end-to-end runs, and
local servers for the HTTP tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from socketserver import BaseServer
from typing import TypeVar

TINY_MODEL = [
    "model.tiny.layers=1",
    "model.tiny.hidden=32",
    "model.tiny.heads=2",
    "model.tiny.vocab_size=300",
    "model.tiny.tokenizer_tasks=5",
    "model.threads=1",
]
"""Overrides for the very small tiny model (on one torch thread) that end-to-end runs train."""

Server = TypeVar("Server", bound=BaseServer)


def free_port() -> int:
    """A local port that nothing listens on once this returns."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving_in_thread(server: Server) -> Iterator[Server]:
    """`server` serving from a daemon thread; shut down and closed on the way out."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
