"""timm and transformers checkpoints converted to the official layout: every tensor lands where it belongs and the
outputs match the source network (the timm names are written from timm's module layout, independently of the
package's converter)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from convnext_export.model.factory import create_model
from convnext_export.weights.convert import detect_format
from tests.weights._helpers import (
    LABELS,
    assert_matches_hf_logits,
    assert_same_outputs,
    hf_classifier,
    hf_config,
    images,
    make_model,
    randomize_,
    sha256,
)

TEST_DEPTHS = (1, 1, 2, 1)
ATTO_DEPTHS = (2, 2, 6, 2)


# --- timm layout ---------------------------------------------------------------------------------------


def timm_names(depths: tuple[int, ...]) -> Iterator[tuple[str, str]]:
    """(timm key, official key) for every tensor, following timm/models/convnext.py's module layout."""
    for p in ("weight", "bias"):
        yield f"stem.0.{p}", f"downsample_layers.0.0.{p}"  # patchify conv
        yield f"stem.1.{p}", f"downsample_layers.0.1.{p}"  # its LayerNorm
    for i, depth in enumerate(depths):
        if i > 0:  # stage 0's downsample is an Identity in timm; the stem does its job
            for k in (0, 1):
                for p in ("weight", "bias"):
                    yield f"stages.{i}.downsample.{k}.{p}", f"downsample_layers.{i}.{k}.{p}"
        for j in range(depth):
            timm_block, official_block = f"stages.{i}.blocks.{j}", f"stages.{i}.{j}"
            for p in ("weight", "bias"):
                yield f"{timm_block}.conv_dw.{p}", f"{official_block}.dwconv.{p}"
                yield f"{timm_block}.norm.{p}", f"{official_block}.norm.{p}"
                yield f"{timm_block}.mlp.fc1.{p}", f"{official_block}.pwconv1.{p}"
                yield f"{timm_block}.mlp.fc2.{p}", f"{official_block}.pwconv2.{p}"
            yield f"{timm_block}.gamma", f"{official_block}.gamma"
    for p in ("weight", "bias"):
        yield f"head.norm.{p}", f"norm.{p}"
        yield f"head.fc.{p}", f"head.{p}"


def to_timm(official: dict[str, torch.Tensor], depths: tuple[int, ...], conv_mlp: bool) -> dict[str, torch.Tensor]:
    """The state dict timm would save; conv_mlp models hold 1x1-conv MLP weights (out, in, 1, 1)."""
    names = dict(timm_names(depths))
    assert sorted(names.values()) == sorted(official), "the timm naming rules must cover every tensor once"
    out = {}
    for timm_key, official_key in names.items():
        value = official[official_key].clone()
        if conv_mlp and ".mlp.fc" in timm_key and timm_key.endswith(".weight"):
            value = value[:, :, None, None]
        out[timm_key] = value
    return out


@pytest.mark.parametrize(
    ("variant", "depths", "conv_mlp", "suffix"),
    [("test", TEST_DEPTHS, False, ".pth"), ("atto", ATTO_DEPTHS, True, ".safetensors")],
    ids=["test-linear_mlp", "atto-conv_mlp"],
)
def test_timm_checkpoint(tmp_path: Path, variant: str, depths: tuple[int, ...], conv_mlp: bool, suffix: str) -> None:
    reference = make_model(variant, seed=4, num_classes=6)
    timm_sd = to_timm(reference.state_dict(), depths, conv_mlp)
    if conv_mlp:
        assert timm_sd["stages.2.blocks.5.mlp.fc1.weight"].shape == (640, 160, 1, 1)
    path = tmp_path / f"timm{suffix}"
    if suffix == ".safetensors":
        save_file(timm_sd, path)
    else:
        torch.save(timm_sd, path)
    assert detect_format(timm_sd) == "timm"

    model = create_model(weights=path)

    assert (model.config.name, model.config.num_classes) == (variant, 6)
    assert model.weights_info.format == "timm"
    loaded = model.state_dict()
    for timm_key, official_key in timm_names(depths):
        assert torch.equal(loaded[official_key], timm_sd[timm_key].reshape(loaded[official_key].shape)), timm_key
    assert_same_outputs(model, reference)


# --- transformers layout -------------------------------------------------------------------------------------------


def save_pytorch_bin(model: nn.Module, directory: Path) -> None:
    """A pytorch_model.bin directory, via save_pretrained where transformers still writes one."""
    try:
        model.save_pretrained(directory, safe_serialization=False)
    except TypeError:  # the option is gone
        model.save_pretrained(directory)
    if not (directory / "pytorch_model.bin").exists():  # transformers 5 ignores it and writes safetensors
        (directory / "model.safetensors").unlink()
        torch.save(model.state_dict(), directory / "pytorch_model.bin")


@pytest.mark.parametrize("layout", ["safetensors_dir", "pytorch_bin_dir", "safetensors_file"])
def test_transformers_classifier(tmp_path: Path, hf: object, layout: str) -> None:
    reference = hf_classifier(hf)
    path = tmp_path / "hf"
    if layout == "safetensors_dir":
        reference.save_pretrained(path)
        weight_file = path / "model.safetensors"
    elif layout == "pytorch_bin_dir":
        save_pytorch_bin(reference, path)
        weight_file = path / "pytorch_model.bin"
    else:
        path = weight_file = tmp_path / "hf_state_dict.safetensors"
        save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, path)

    model = create_model(weights=path)

    assert (model.config.name, model.config.num_classes) == ("test", 5)
    info = model.weights_info
    assert info.format == "transformers"
    assert info.sha256 == sha256(weight_file)
    assert info.labels == (None if layout == "safetensors_file" else tuple(LABELS))
    assert_matches_hf_logits(model, reference)


def test_transformers_backbone_gives_pooled_features(tmp_path: Path, hf: object) -> None:
    reference = randomize_(hf.ConvNextModel(hf_config(hf)), seed=7).eval()
    reference.save_pretrained(tmp_path / "hf")

    model = create_model(weights=tmp_path / "hf", num_classes=None)

    assert model.config.name == "test"
    assert model.config.num_classes is None
    assert model.weights_info.format == "transformers"
    x = images(seed=8)
    with torch.no_grad():
        features, expected = model(x), reference(pixel_values=x).pooler_output
    assert features.shape == (2, 64)
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)
