"""Memory the machine has, checked before a request that would otherwise end in the kernel's OOM kill.

`--image-size 9984x9984`, `profile --batch-sizes 100000`, or metadata that asks for a giant network would each
be killed with exit 137 and no message; an estimate against the memory available turns that into one line
(exit 4) before any work starts. The estimates are deliberately coarse: they refuse what cannot fit, they do
not predict what will be used.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from convnext_export.errors import ResourceError

GIB = 1024**3
_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def available_memory() -> int | None:
    """Bytes this process may still use: MemAvailable, capped by a cgroup limit; None where unknown."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit in _CGROUP_LIMITS:
        try:
            text = limit.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            found.append(int(text))
    if not found and hasattr(os, "sysconf"):
        with contextlib.suppress(ValueError, OSError):
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return min(found) if found else None


def require_memory(needed: int, what: str, hint: str) -> None:
    """ResourceError (one line, exit 4) when `what` needs more than this machine has available."""
    available = available_memory()
    if available is not None and needed > available:
        raise ResourceError(
            f"{what} needs about {needed / GIB:.1f} GiB of memory and {available / GIB:.1f} GiB is available: {hint}"
        )
