"""Eager PyTorch's predictions on a dataset, cached on disk so a CI rerun does not pay for eager again.

Eager is the slowest runner of a check and the same on every rerun of an unchanged model and dataset. The
cache holds, per image, eager's top-1 and top-k classes (not correctness: labels are applied when read, so a
changed --labels file reuses the entry). An entry is keyed by everything eager's outputs depend on:

- the weights: a digest of the eager model's state dict (names, dtypes, shapes, bytes) and its config, so a
  retrained checkpoint, another EMA entry or a random init with another seed all miss;
- the dataset: its sha256 over relative paths and file contents (data.datasets.dataset_digests; contents
  because a CI checkout resets every mtime);
- the preprocessing (size, crop, interpolation, mean, std), the batch size eager ran at, torch's version and
  the toolkit's (each can move a logit by a rounding step and flip a near-tie).

Entries live in `<cache>/check/` ($CONVNEXT_EXPORT_CACHE, as downloads and calibration ranges), one .npz per
key, written atomically; an unreadable or mismatching entry is recomputed and replaced.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convnext_export import __version__
from convnext_export._atomic import atomic_path
from convnext_export.evaluation.check.results import Predictions
from convnext_export.weights.pretrained import cache_dir

if TYPE_CHECKING:
    from torch import nn

    from convnext_export.data.datasets import Dataset

SCHEMA = "convnext-export/eager-cache/1"


def default_cache_dir() -> Path:
    return cache_dir() / "check"


def weights_digest(model: nn.Module) -> str:
    """sha256 over the model's state dict (name, dtype, shape and bytes of every tensor, in order)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}\0{data.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(memoryview(data.view(torch.uint8).numpy()))
    return digest.hexdigest()


def _config(model: nn.Module) -> object:
    config = getattr(model, "config", None)
    return asdict(config) if is_dataclass(config) and not isinstance(config, type) else repr(config)


def eager_cache_key(model: nn.Module, dataset: Dataset, batch_size: int) -> dict:
    """What eager's predictions depend on; the entry's file name is a digest of this document."""
    import torch

    return {
        "schema": SCHEMA,
        "weights_sha256": weights_digest(model),
        "model": _config(model),
        "dataset_sha256": dataset.sha256,
        "images": len(dataset),
        "preprocessing": dataset.preprocess.to_dict(),
        "batch_size": batch_size,
        "torch": torch.__version__,
        "toolkit": __version__,
    }


def _canonical(key: dict) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def eager_cache_path(key: dict, directory: Path | None = None) -> Path:
    name = hashlib.sha256(_canonical(key).encode()).hexdigest()[:24]
    return (directory or default_cache_dir()) / f"eager-{name}.npz"


def read_eager_cache(path: Path, key: dict) -> Predictions | None:
    """The cached predictions for `key`, or None when there are none usable (missing, unreadable, another key,
    wrong shape): a miss recomputes, so a damaged entry can never decide a verdict."""
    try:
        with np.load(path, allow_pickle=False) as data:
            stored, top1, topk, seconds = str(data["key"]), data["top1"], data["topk"], float(data["seconds"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    images = key["images"]
    if stored != _canonical(key) or top1.shape != (images,) or topk.ndim != 2 or len(topk) != images:
        return None
    return Predictions(top1.astype(np.int32), topk.astype(np.int32), seconds)


def write_eager_cache(path: Path, key: dict, predictions: Predictions) -> None:
    """Store the predictions atomically (a killed run leaves no entry a later run would trust)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            key=np.array(_canonical(key)),
            top1=predictions.top1,
            topk=predictions.topk,
            seconds=np.array(predictions.seconds),
        )
