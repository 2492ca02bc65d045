"""The isolation of tests/conftest.py reaches fixtures of every scope, not only the tests themselves: a module- or
session-scoped fixture sees a temporary weights cache, transformers offline, and no network."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from convnext_export.weights.pretrained import cache_dir


def _probe() -> dict[str, object]:
    """What code running now sees: the package's cache folder, transformers' offline flag, and what a connection
    attempt (a raw connect, and a name lookup) ends with."""
    seen: dict[str, object] = {"cache": cache_dir(), "hf_offline": os.environ.get("HF_HUB_OFFLINE")}
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1 (RFC 5737): an address no network routes
            seen["connect"] = "connected"
        except OSError as exc:
            seen["connect"] = str(exc)
    try:
        socket.getaddrinfo("example.com", 443)
        seen["dns"] = "resolved"
    except OSError as exc:
        seen["dns"] = str(exc)
    return seen


@pytest.fixture(scope="session")
def session_probe() -> dict[str, object]:
    return _probe()


@pytest.fixture(scope="module")
def module_probe() -> dict[str, object]:
    return _probe()


def _assert_isolated(seen: dict[str, object], basetemp: Path) -> None:
    cache = Path(seen["cache"])
    assert cache.is_relative_to(basetemp), cache  # never the user's cache
    assert seen["hf_offline"] == "1"
    assert seen["connect"] == seen["dns"] == "network disabled in tests"


# The probes are the tests' arguments, so pytest sets them up before any function-scoped fixture runs (as it does
# for every module-scoped fixture), and only the session- and module-wide isolation can apply to them.


def test_a_module_scoped_fixture_sees_a_temporary_cache_and_no_network(
    module_probe: dict, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _assert_isolated(module_probe, tmp_path_factory.getbasetemp())


def test_a_session_scoped_fixture_sees_a_temporary_cache_and_no_network(
    session_probe: dict, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _assert_isolated(session_probe, tmp_path_factory.getbasetemp())


def test_a_test_starts_from_a_cache_of_its_own(module_probe: dict) -> None:
    assert cache_dir() != module_probe["cache"]


def test_no_network_lists_the_attempts_of_this_test_only(module_probe: dict, no_network: list[object]) -> None:
    assert module_probe["connect"] == "network disabled in tests" and no_network == []  # the fixture's are not here
    with pytest.raises(OSError, match="network disabled in tests"):
        socket.create_connection(("example.com", 443), timeout=1)
    assert len(no_network) == 1
