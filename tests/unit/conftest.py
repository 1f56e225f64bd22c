"""Fixtures shared by unit test modules."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml


@pytest.fixture
def unanswering_kubeconfig(tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig whose API server accepts TCP connections and never says a word: a bare
    listening socket, for the one fault a real API server cannot be made to show on
    demand in a unit test (a hang)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        path = tmp_path / "hang.kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "hang",
            "clusters": [{"name": "hang", "cluster": {
                "server": f"https://127.0.0.1:{listener.getsockname()[1]}",
                "insecure-skip-tls-verify": True}}],
            "users": [{"name": "hang", "user": {"token": "t"}}],
            "contexts": [{"name": "hang", "context": {"cluster": "hang", "user": "hang"}}],
        }))
        yield path
