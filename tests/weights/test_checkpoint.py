"""Reading weights files: official checkpoints and their wrappers, prefixes and suffixes, EMA entries, transformers
directories (sharded or not), and bad input as one-line errors; pickled code never runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from convnext_export.errors import CheckpointError
from convnext_export.model.factory import create_model
from tests.weights._helpers import (
    BAD_INPUTS,
    LABELS,
    assert_matches_hf_logits,
    assert_same_outputs,
    assert_same_parameters,
    code_pickle,
    hf_classifier,
    images,
    make_model,
    save_torch,
    sha256,
)

# --- official layout: wrappers, prefixes and suffixes --------------------------------------------------


def _plain(sd: dict) -> object:
    return sd


def _prefixed(prefix: str) -> Callable[[dict], dict]:
    return lambda sd: {prefix + k: v for k, v in sd.items()}


WRAPPINGS: dict[str, tuple[Callable[[dict], object], str | None]] = {
    # name: (wrap the state dict, entry the loader should report)
    "plain": (_plain, None),
    "model": (lambda sd: {"model": sd, "epoch": 3}, "model"),
    "state_dict": (lambda sd: {"state_dict": sd, "optimizer": {"lr": 0.1}}, "state_dict"),
    "model_ema_only": (lambda sd: {"model_ema": sd}, "model_ema"),
    "ddp": (_prefixed("module."), None),
    "compiled": (_prefixed("_orig_mod."), None),
    "ddp_compiled_in_model": (lambda sd: {"model": _prefixed("module._orig_mod.")(sd)}, "model"),
}


@pytest.mark.parametrize("wrapping", WRAPPINGS)
def test_official_wrappings_round_trip(tmp_path: Path, source: nn.Module, wrapping: str) -> None:
    wrap, entry = WRAPPINGS[wrapping]
    path = save_torch(wrap(source.state_dict()), tmp_path / "ckpt.pth")

    model = create_model(weights=path)

    assert model.config.name == "test"
    assert model.config.num_classes == 10
    assert_same_parameters(model, source.state_dict())
    assert_same_outputs(model, source)
    info = model.weights_info
    assert (info.format, info.entry, info.num_classes) == ("official", entry, 10)
    assert info.sha256 == sha256(path)
    assert info.path == str(path)


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin", ".ckpt", ".safetensors"])
def test_official_suffixes(tmp_path: Path, source: nn.Module, suffix: str) -> None:
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(source.state_dict(), path)
    else:
        torch.save(source.state_dict(), path)

    model = create_model(weights=path)

    assert (model.config.name, model.config.num_classes) == ("test", 10)
    assert_same_parameters(model, source.state_dict())
    assert_same_outputs(model, source)
    assert model.weights_info.format == "official"
    assert model.weights_info.sha256 == sha256(path)


@pytest.fixture
def ema_pair(tmp_path: Path) -> tuple[Path, nn.Module, nn.Module]:
    """A training checkpoint whose `model` and `model_ema` entries hold different weights."""
    live = make_model(seed=2, num_classes=10)
    ema = make_model(seed=3, num_classes=10)
    path = save_torch({"model": live.state_dict(), "model_ema": ema.state_dict(), "epoch": 9}, tmp_path / "t.pth")
    return path, live, ema


def test_training_checkpoint_defaults_to_model_entry(ema_pair: tuple[Path, nn.Module, nn.Module]) -> None:
    path, live, _ = ema_pair
    model = create_model(weights=path)
    assert model.weights_info.entry == "model"
    assert_same_parameters(model, live.state_dict())
    assert_same_outputs(model, live)


def test_ema_flag_picks_model_ema(ema_pair: tuple[Path, nn.Module, nn.Module]) -> None:
    path, live, ema = ema_pair
    model = create_model(weights=path, ema=True)
    assert model.weights_info.entry == "model_ema"
    assert_same_parameters(model, ema.state_dict())
    with torch.no_grad():
        assert not torch.allclose(model(images()), live(images()))


@pytest.mark.parametrize(
    "wrapping",
    [
        "model",
        "plain",
    ],
)
def test_ema_flag_without_ema_weights_is_an_error(tmp_path: Path, source: nn.Module, wrapping: str) -> None:
    wrap, _ = WRAPPINGS[wrapping]
    path = save_torch(wrap(source.state_dict()), tmp_path / "no_ema.pth")
    with pytest.raises(CheckpointError, match="EMA"):
        create_model(weights=path, ema=True)


# --- transformers directories --------------------------------------------------------------------------------------


def test_transformers_placeholder_labels_are_dropped(tmp_path: Path, hf: object) -> None:
    reference = hf_classifier(hf, labels=None)
    assert reference.config.id2label[0] == "LABEL_0"
    reference.save_pretrained(tmp_path / "hf")
    model = create_model(weights=tmp_path / "hf")
    assert model.weights_info.labels is None
    assert_matches_hf_logits(model, reference)


def shard(directory: Path) -> list[str]:
    """Split a saved model.safetensors into two shards with an index, as save_pretrained does for big models."""
    tensors = load_file(directory / "model.safetensors")
    (directory / "model.safetensors").unlink()
    keys = sorted(tensors)
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    halves = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
    for name, part in zip(names, halves, strict=True):
        save_file({k: tensors[k] for k in part}, directory / name)
    weight_map = {k: name for name, part in zip(names, halves, strict=True) for k in part}
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return names


def test_transformers_sharded_directory(tmp_path: Path, hf: object) -> None:
    reference = hf_classifier(hf)
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    reference.save_pretrained(whole)
    reference.save_pretrained(sharded)
    shard(sharded)

    model = create_model(weights=sharded)

    assert_same_parameters(model, create_model(weights=whole).state_dict())
    assert model.weights_info.labels == tuple(LABELS)
    assert_matches_hf_logits(model, reference)


def test_transformers_missing_shard_is_named(tmp_path: Path, hf: object) -> None:
    hf_classifier(hf).save_pretrained(tmp_path / "hf")
    _, second = shard(tmp_path / "hf")
    (tmp_path / "hf" / second).unlink()
    with pytest.raises(CheckpointError, match=second):
        create_model(weights=tmp_path / "hf")


# --- bad input -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_weights_raise_checkpoint_error(tmp_path: Path, case: str) -> None:
    build, words = BAD_INPUTS[case]
    path = build(tmp_path)
    with pytest.raises(CheckpointError) as error:
        create_model(weights=path)
    assert words in str(error.value)
    assert "\n" not in str(error.value)


def test_pickled_code_never_runs(tmp_path: Path) -> None:
    path = code_pickle(tmp_path)
    marker = tmp_path / "marker"
    with pytest.raises(CheckpointError, match="could run code"):
        create_model(weights=path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="could run code"):
        create_model(weights=path, ema=True)
    assert not marker.exists()


def test_ema_flag_on_a_transformers_directory_is_an_error(tmp_path: Path) -> None:
    save_file(make_model().state_dict(), tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no EMA weights"):
        create_model(weights=tmp_path, ema=True)
