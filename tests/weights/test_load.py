"""Loading official-layout tensors into a network: every missing, unexpected or misshapen key is named, and a
pretrained tag needs a variant (without reaching the network)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from convnext_export.errors import CheckpointError, InvalidOptionError
from convnext_export.model.factory import create_model
from tests.weights._helpers import (
    save_torch,
)


def _drop(key: str) -> Callable[[dict], dict]:
    return lambda sd: {k: v for k, v in sd.items() if k != key}


def _add(key: str) -> Callable[[dict], dict]:
    return lambda sd: {**sd, key: torch.zeros(3)}


def _reshape(key: str) -> Callable[[dict], dict]:
    return lambda sd: {**sd, key: torch.zeros(sd[key].numel() + 1)}


# --- missing, unexpected and misshapen keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "key", "kind"),
    [
        (_drop, "stages.2.1.pwconv1.bias", "1 missing"),
        (_drop, "stages.0.0.norm.weight", "1 missing"),
        (_add, "stages.1.0.extra.weight", "1 unexpected"),
        (_reshape, "stages.3.0.pwconv2.bias", "1 shape mismatches"),
    ],
    ids=["missing_mlp_bias", "missing_norm", "unexpected", "shape"],
)
def test_misfit_checkpoint_lists_the_key(
    tmp_path: Path, source: nn.Module, edit: Callable[[str], Callable[[dict], dict]], key: str, kind: str
) -> None:
    path = save_torch(edit(key)(source.state_dict()), tmp_path / "misfit.pth")
    with pytest.raises(CheckpointError) as error:
        create_model(weights=path)
    message = str(error.value)
    assert kind in message
    assert key in message


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_named_at_load(tmp_path: Path, source: nn.Module, value: float) -> None:
    state = source.state_dict()
    state["stages.1.0.pwconv1.weight"][3, 2] = value
    path = save_torch(state, tmp_path / "diverged.pth")
    with pytest.raises(CheckpointError, match=r"tensor 'stages.1.0.pwconv1.weight' holds 1 non-finite value"):
        create_model(weights=path)


# --- pretrained tags -----------------------------------------------------------------------------------


def test_pretrained_tag_needs_a_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[object]
) -> None:
    monkeypatch.chdir(tmp_path)  # no file called "in1k" can shadow the tag
    with pytest.raises(InvalidOptionError, match="variant"):
        create_model(weights="in1k")
    assert no_network == []
