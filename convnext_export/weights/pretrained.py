"""Published ConvNeXt weights: where each file lives, and a download that never leaves a partial file.

This module only moves bytes; it imports no torch. Reading the checkpoints (and converting timm key names)
is done elsewhere, keyed on ``PretrainedWeights.source_format``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convnext_export._atomic import atomic_path
from convnext_export.errors import DownloadError, UnknownNameError

# tag -> (num_classes, image_size); the tag vocabulary of the table below.
_TAG_SHAPES: dict[str, tuple[int, int]] = {
    "in1k": (1000, 224),  # trained on ImageNet-1k at 224
    "in1k-384": (1000, 384),  # ImageNet-1k at 384
    "in22k": (21841, 224),  # ImageNet-22k pre-training, 22k head
    "in22k-in1k": (1000, 224),  # 22k pre-training, 1k fine-tune at 224
    "in22k-in1k-384": (1000, 384),  # 22k pre-training, 1k fine-tune at 384
}
TAGS: tuple[str, ...] = tuple(_TAG_SHAPES)

_CHUNK = 1 << 20
_NETWORK_ERRORS = (OSError, http.client.HTTPException)  # URLError, HTTPError, timeouts are OSErrors


@dataclass(frozen=True)
class PretrainedWeights:
    """One downloadable checkpoint, with what a loader must know before opening it."""

    variant: str
    tag: str
    url: str
    num_classes: int  # 1000 or 21841
    image_size: int  # 224 or 384
    source_format: str  # "official" (facebookresearch keys) or "timm"
    top1: float | None = None  # ImageNet-1k top-1 as published next to the URL

    @property
    def filename(self) -> str:
        """Name in the cache; hub files are all ``model.safetensors``, so the repo id is folded in."""
        parts = urllib.parse.urlsplit(self.url)
        segments = [s for s in parts.path.split("/") if s]
        if parts.hostname == "huggingface.co" and len(segments) >= 3:
            return f"{segments[0]}--{segments[1]}--{segments[-1]}"
        return segments[-1]


def _w(variant: str, tag: str, url: str, top1: float | None = None, fmt: str = "official") -> PretrainedWeights:
    """Build an entry whose class count and resolution follow from its tag, so they cannot disagree."""
    num_classes, image_size = _TAG_SHAPES[tag]
    return PretrainedWeights(variant, tag, url, num_classes, image_size, fmt, top1)


_FB = "https://dl.fbaipublicfiles.com/convnext/"
_HF = "https://huggingface.co/timm/"

# Official weights: facebookresearch/ConvNeXt README.md, "Results and Pre-trained Models" (commit 048efce,
# 2022-07-23); URLs and acc@1 copied from its tables. In the 22K table acc@1 belongs to the 1k fine-tuned
# model, so the 21841-class heads carry no top1. The same 1k/22k URLs appear in models/convnext.py model_urls
# and the isotropic ones in models/convnext_isotropic.py.
# timm weights: huggingface/pytorch-image-models (commit aa4b585) timm/models/convnext.py default_cfgs;
# hf_hub_id='timm/' means repo "timm/<model>.<tag>" (timm/models/_registry.py); the file is
# HF_SAFE_WEIGHTS_NAME = "model.safetensors" (timm/models/_hub.py).
# The ImageNet-1k-only tags are used (nano's default in12k_ft_in1k is not 1k-only).
PRETRAINED: tuple[PretrainedWeights, ...] = (
    _w("atto", "in1k", _HF + "convnext_atto.d2_in1k/resolve/main/model.safetensors", fmt="timm"),
    _w("femto", "in1k", _HF + "convnext_femto.d1_in1k/resolve/main/model.safetensors", fmt="timm"),
    _w("pico", "in1k", _HF + "convnext_pico.d1_in1k/resolve/main/model.safetensors", fmt="timm"),
    _w("nano", "in1k", _HF + "convnext_nano.d1h_in1k/resolve/main/model.safetensors", fmt="timm"),
    _w("tiny", "in1k", _FB + "convnext_tiny_1k_224_ema.pth", 82.1),
    _w("tiny", "in22k", _FB + "convnext_tiny_22k_224.pth"),
    _w("tiny", "in22k-in1k", _FB + "convnext_tiny_22k_1k_224.pth", 82.9),
    _w("tiny", "in22k-in1k-384", _FB + "convnext_tiny_22k_1k_384.pth", 84.1),
    _w("small", "in1k", _FB + "convnext_small_1k_224_ema.pth", 83.1),
    _w("small", "in22k", _FB + "convnext_small_22k_224.pth"),
    _w("small", "in22k-in1k", _FB + "convnext_small_22k_1k_224.pth", 84.6),
    _w("small", "in22k-in1k-384", _FB + "convnext_small_22k_1k_384.pth", 85.8),
    _w("base", "in1k", _FB + "convnext_base_1k_224_ema.pth", 83.8),
    _w("base", "in1k-384", _FB + "convnext_base_1k_384.pth", 85.1),
    _w("base", "in22k", _FB + "convnext_base_22k_224.pth"),
    _w("base", "in22k-in1k", _FB + "convnext_base_22k_1k_224.pth", 85.8),
    _w("base", "in22k-in1k-384", _FB + "convnext_base_22k_1k_384.pth", 86.8),
    _w("large", "in1k", _FB + "convnext_large_1k_224_ema.pth", 84.3),
    _w("large", "in1k-384", _FB + "convnext_large_1k_384.pth", 85.5),
    _w("large", "in22k", _FB + "convnext_large_22k_224.pth"),
    _w("large", "in22k-in1k", _FB + "convnext_large_22k_1k_224.pth", 86.6),
    _w("large", "in22k-in1k-384", _FB + "convnext_large_22k_1k_384.pth", 87.5),
    _w("xlarge", "in22k", _FB + "convnext_xlarge_22k_224.pth"),
    _w("xlarge", "in22k-in1k", _FB + "convnext_xlarge_22k_1k_224_ema.pth", 87.0),
    _w("xlarge", "in22k-in1k-384", _FB + "convnext_xlarge_22k_1k_384_ema.pth", 87.8),
    _w("isotropic_small", "in1k", _FB + "convnext_iso_small_1k_224_ema.pth", 78.7),
    _w("isotropic_base", "in1k", _FB + "convnext_iso_base_1k_224_ema.pth", 82.0),
    _w("isotropic_large", "in1k", _FB + "convnext_iso_large_1k_224_ema.pth", 82.6),
)


def list_pretrained(variant: str | None = None) -> list[PretrainedWeights]:
    """All entries, or those of one variant (empty for a variant nobody published weights for)."""
    return [w for w in PRETRAINED if variant is None or w.variant == variant]


def find_pretrained(variant: str, tag: str) -> PretrainedWeights:
    """The entry for ``variant``/``tag``; the error names the valid choices so the user can retry."""
    entries = list_pretrained(variant)
    if not entries:
        raise UnknownNameError("pretrained variant", variant, sorted({w.variant for w in PRETRAINED}))
    for entry in entries:
        if entry.tag == tag:
            return entry
    raise UnknownNameError(f"pretrained tag for {variant}", tag, [w.tag for w in entries])


def is_pretrained_tag(value: str) -> bool:
    """Whether ``value`` is a tag (``in1k``...) rather than a path to a weights file."""
    return value in _TAG_SHAPES


def cache_dir() -> Path:
    """Where downloads go: $CONVNEXT_EXPORT_CACHE, else $XDG_CACHE_HOME/convnext-export, else ~/.cache."""
    explicit = os.environ.get("CONVNEXT_EXPORT_CACHE")
    if explicit:
        path = Path(explicit).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
        path = base / "convnext-export"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached_path(entry: PretrainedWeights, cache: Path | None = None) -> Path:
    """Where ``entry`` is (or will be) stored; also where a user can place a file fetched elsewhere."""
    return Path(cache if cache is not None else cache_dir()) / entry.filename


class _NetworkError(Exception):
    """Internal: the transfer failed; carries a one-line reason."""


def _reason(exc: BaseException, timeout: float) -> str:
    """A short, single-line cause for a network error (URLError wraps the useful part)."""
    if isinstance(exc, urllib.error.HTTPError):
        text = f"HTTP {exc.code} {exc.reason}"
    else:
        cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(cause, TimeoutError):
            text = f"timed out after {timeout:g}s"
        else:
            text = str(cause) or type(cause).__name__
    return " ".join(text.split())


def _content_length(response: Any) -> int | None:
    """Declared size, or None when the server does not say (or says nonsense)."""
    value = response.headers.get("Content-Length") if getattr(response, "headers", None) else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@contextlib.contextmanager
def _progress(enabled: bool, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield an ``advance(n)`` callback; a rich bar on stderr when enabled, imported only then."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.update(task, advance=n)


def _download(url: str, dest: Path, *, timeout: float, progress: bool, label: str) -> None:
    """Stream ``url`` into ``dest``; network trouble becomes _NetworkError, disk trouble stays OSError."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except _NETWORK_ERRORS as exc:
        raise _NetworkError(_reason(exc, timeout)) from exc
    with response, open(dest, "wb") as out:
        total = _content_length(response)
        received = 0
        with _progress(progress, label, total) as advance:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except _NETWORK_ERRORS as exc:
                    raise _NetworkError(_reason(exc, timeout)) from exc
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                advance(len(chunk))
    if total is not None and received != total:
        raise _NetworkError(f"incomplete download: received {received} of {total} bytes")


def fetch_pretrained(
    entry: PretrainedWeights, *, cache: Path | None = None, progress: bool = True, timeout: float = 30.0
) -> Path:
    """Path to the cached file for ``entry``, downloading it first if absent.

    The download is written beside the target and renamed only when complete, so an interrupted run
    never leaves a file that a later run would trust.
    """
    target = cached_path(entry, cache)
    if target.is_file():
        return target
    try:
        with atomic_path(target) as tmp:
            _download(entry.url, tmp, timeout=timeout, progress=progress, label=entry.filename)
    except _NetworkError as exc:
        raise DownloadError(
            f"could not download {entry.filename} ({entry.variant} {entry.tag}) from {entry.url}: {exc}; "
            f"fetch it on a machine with network access and place it at {target}, or pass --weights PATH"
        ) from exc
    except OSError as exc:
        reason = " ".join(str(exc).split())
        raise DownloadError(
            f"could not write {target}: {reason}; set CONVNEXT_EXPORT_CACHE to a writable directory, "
            "or pass --weights PATH"
        ) from exc
    return target
