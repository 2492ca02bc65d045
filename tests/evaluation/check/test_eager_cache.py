"""The eager cache: one entry per weights, dataset contents, preprocessing and batch size; a damaged or foreign
entry is a miss, never a verdict."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from convnext_export import create_model
from convnext_export.data.datasets import load_dataset
from convnext_export.data.preprocess import eval_config
from convnext_export.evaluation.check.eager_cache import (
    eager_cache_key,
    eager_cache_path,
    read_eager_cache,
    write_eager_cache,
)
from convnext_export.evaluation.check.results import Predictions
from tests._paths import DIGITS

WEIGHTS = DIGITS / "convnext_digits.safetensors"


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return create_model(weights=WEIGHTS)


def _dataset(root: Path = DIGITS / "test", **preprocess: object):
    return load_dataset(root, eval_config(32, **preprocess), limit=60)


def _path(model: torch.nn.Module, dataset, batch_size: int = 32, directory: Path = Path("c")) -> Path:
    return eager_cache_path(eager_cache_key(model, dataset, batch_size), directory)


def test_the_same_inputs_give_the_same_entry(model: torch.nn.Module) -> None:
    assert _path(model, _dataset()) == _path(create_model(weights=WEIGHTS), _dataset())


def test_other_weights_miss(model: torch.nn.Module) -> None:
    other = create_model(weights=WEIGHTS)
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1e-3  # one weight, barely moved
    assert _path(other, _dataset()) != _path(model, _dataset())


def test_other_images_miss(model: torch.nn.Module, tmp_path: Path) -> None:
    assert _path(model, load_dataset(DIGITS / "test", eval_config(32), limit=61)) != _path(model, _dataset())
    copy = tmp_path / "test"
    shutil.copytree(DIGITS / "test", copy)
    assert _path(model, _dataset(copy)) == _path(model, _dataset())  # where it lives does not matter
    image = _dataset(copy).files[0]
    data = bytearray(image.read_bytes())
    data[-1] ^= 1  # same size and name, other contents
    image.write_bytes(bytes(data))
    assert _path(model, _dataset(copy)) != _path(model, _dataset())


def test_other_preprocessing_or_batch_size_miss(model: torch.nn.Module) -> None:
    base = _path(model, _dataset())
    assert _path(model, _dataset(crop_pct=0.9)) != base
    assert _path(model, _dataset(interpolation="bilinear")) != base
    assert _path(model, _dataset(), batch_size=8) != base


def test_an_entry_reads_back_only_under_its_own_key(model: torch.nn.Module, tmp_path: Path) -> None:
    dataset = _dataset()
    key = eager_cache_key(model, dataset, 32)
    path = eager_cache_path(key, tmp_path)
    stored = Predictions(np.arange(60, dtype=np.int32) % 10, np.tile(np.arange(5, dtype=np.int32), (60, 1)), 1.5)
    write_eager_cache(path, key, stored)
    read = read_eager_cache(path, key)
    assert read is not None and read.seconds == 1.5
    np.testing.assert_array_equal(read.top1, stored.top1)
    np.testing.assert_array_equal(read.topk, stored.topk)
    assert read_eager_cache(path, key | {"batch_size": 8}) is None  # another key in this file: a miss
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 truncated", b"not a zip at all"])
def test_a_damaged_entry_is_a_miss(model: torch.nn.Module, tmp_path: Path, damage: bytes) -> None:
    key = eager_cache_key(model, _dataset(), 32)
    path = eager_cache_path(key, tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(damage)
    assert read_eager_cache(path, key) is None
    assert read_eager_cache(tmp_path / "missing.npz", key) is None
