"""Shared fixtures. Nothing here touches the network: tests use weights they make themselves."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the weights cache at a temporary folder so no test reads or fills the user's cache."""
    monkeypatch.setenv("CONVNEXT_EXPORT_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test: nothing downloads in tests."""
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access attempted during tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
