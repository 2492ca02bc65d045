"""TensorRT versions, mapped once: the release line a version belongs to, and the builder path that serves it.

- release: what differs in the ONNX parser's operator tables and in trtexec's options: 8.5, 8.6, 10, 11.
- generation: the builder's code paths: 8 (8.5 and 8.6: precision flags), 10 (strongly typed from the
  precision ONNX), 11 (strongly typed only).
User spellings (`--trt-version 10.3`, `inspect --trt 11.x`) are checked against the published releases;
an installed TensorRT is accepted by its major version.
"""

from __future__ import annotations

import re

from convnext_export.errors import UnknownNameError
from convnext_export.trt.errors import EngineBuildError, EngineMetaError

RELEASES = ("8.5", "8.6", "10", "11")
GENERATIONS = ("8", "10", "11")
# Spellings accepted from users. Minor releases are the ones published: NVIDIA/TensorRT tags v10.0.0 ... v10.16
# and release notes v11.0 ... v11.5; a patch level (8.6.1, 10.13.3) is accepted on top of any of them, and "8"
# means 8.6 (JetPack 6.0).
SPELLINGS: tuple[str, ...] = (
    "8",
    "8.x",
    "8.5",
    "8.5.x",
    "8.6",
    "8.6.x",
    "10",
    "10.x",
    *(f"10.{minor}" for minor in range(17)),
    "11",
    "11.x",
    *(f"11.{minor}" for minor in range(6)),
)
SHOWN_SPELLINGS = ("8.5", "8.6", "10", "10.x", "11", "11.x")


def version_tuple(version: str) -> tuple[int, ...]:
    """'10.3.0.26' -> (10, 3, 0, 26); '8.6.1.post1' -> (8, 6, 1): the leading numeric components."""
    match = re.match(r"\d+(?:\.\d+)*", str(version).strip().lower().removeprefix("v"))
    if not match:
        raise EngineMetaError(f"cannot read TensorRT version {version!r}")
    return tuple(int(part) for part in match.group(0).split("."))


def release_of(spelling: str) -> str:
    """A user's TensorRT version (10.3, 11.x, 8.6.1, v10, 8) -> its release in RELEASES."""
    key = str(spelling).strip().lower().removeprefix("v")
    patch = re.fullmatch(r"(\d+\.\d+)\.\d+", key)
    key = patch.group(1) if patch else key
    if key not in SPELLINGS:
        raise UnknownNameError("TensorRT version", str(spelling), SHOWN_SPELLINGS)
    if key in ("8", "8.x"):
        return "8.6"
    major = key.split(".")[0]
    return major if major in RELEASES else key.removesuffix(".x")


def generation_of(version: str) -> str:
    """An installed TensorRT's version -> "8" (8.5, 8.6), "10" or "11"; EngineBuildError for any other."""
    try:
        numbers = version_tuple(version)
    except EngineMetaError as exc:
        raise EngineBuildError(str(exc)) from None
    if numbers[:2] in ((8, 5), (8, 6)):
        return "8"
    if numbers[0] in (10, 11):
        return str(numbers[0])
    raise EngineBuildError(f"TensorRT {version} is not supported: use TensorRT 8.5, 8.6, 10.x or 11.x")


def generation_of_release(release: str) -> str:
    """A release (8.5, 8.6, 10, 11) -> the builder generation that serves it."""
    return "8" if release in ("8.5", "8.6") else release
