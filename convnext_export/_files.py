"""File digests, shared by checkpoint provenance and the build manifest."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

CHUNK = 1 << 20


def sha256_of(paths: Iterable[str | os.PathLike[str]]) -> str:
    """SHA-256 over the concatenated contents of `paths` (one file, or a checkpoint's shards in order)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                digest.update(chunk)
    return digest.hexdigest()
