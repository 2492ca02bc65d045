"""Fixtures of the weights tests (the random `test` network and its checkpoint live in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def hf() -> object:
    """The transformers package; the tests that take it skip where it is not installed."""
    return pytest.importorskip("transformers")
