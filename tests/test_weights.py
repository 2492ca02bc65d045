"""Tests for reading weights: official, timm and transformers checkpoints, wrappers, and bad input.

Every checkpoint is made here from a tiny network with randomised parameters, so a load that silently
keeps the random initialisation, or swaps two tensors, changes the outputs. The timm names are written
from timm's module layout, independently of the package's converter. Nothing reaches the network.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from typer.testing import CliRunner

from convnext_export.cli import app
from convnext_export.errors import CheckpointError, InvalidOptionError
from convnext_export.model.factory import create_model
from convnext_export.weights.convert import detect_format

TEST_DEPTHS = (1, 1, 2, 1)
ATTO_DEPTHS = (2, 2, 6, 2)


# --- helpers -----------------------------------------------------------------------------------------


def randomize_(model: nn.Module, seed: int) -> nn.Module:
    """Give every parameter distinct random values (norm weights around 1), in place."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            is_norm = "LayerNorm" in type(module).__name__
            for name, param in module.named_parameters(recurse=False):
                offset = 1.0 if is_norm and name == "weight" else 0.0
                param.copy_(offset + 0.1 * torch.randn(param.shape, generator=generator))
    return model


def make_model(variant: str = "test", seed: int = 0, **options: object) -> nn.Module:
    return randomize_(create_model(variant, **options), seed)


def images(seed: int = 0, size: int = 64) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_same_parameters(model: nn.Module, expected: dict[str, torch.Tensor]) -> None:
    """The model holds exactly `expected`: the same names and bit-identical tensors."""
    actual = model.state_dict()
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key


@torch.no_grad()
def assert_same_outputs(model: nn.Module, reference: nn.Module, x: torch.Tensor | None = None) -> None:
    x = images() if x is None else x
    torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


def save_torch(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


@pytest.fixture(scope="module")
def source() -> nn.Module:
    """A 10-class `test` network with random parameters; every official checkpoint below holds it."""
    return make_model("test", seed=1, num_classes=10)


@pytest.fixture
def checkpoint(tmp_path: Path, source: nn.Module) -> Path:
    return save_torch(source.state_dict(), tmp_path / "test.pth")


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


def test_explicit_variant_and_class_count_are_accepted(checkpoint: Path, source: nn.Module) -> None:
    model = create_model("convnext_test", weights=checkpoint, num_classes=10)
    assert_same_outputs(model, source)


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


# --- transformers layout -------------------------------------------------------------------------------

LABELS = ["cat", "dog", "bird", "fish", "frog"]


@pytest.fixture(scope="module")
def hf() -> object:
    return pytest.importorskip("transformers")


def hf_config(hf: object, labels: list[str] | None = None) -> object:
    id2label = dict(enumerate(labels)) if labels else None
    return hf.ConvNextConfig(
        depths=[1, 1, 2, 1],
        hidden_sizes=[8, 16, 32, 64],
        num_labels=5,
        layer_scale_init_value=1.0,
        layer_norm_eps=1e-6,
        **({"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}} if id2label else {}),
    )


def hf_classifier(hf: object, labels: list[str] | None = LABELS) -> nn.Module:
    return randomize_(hf.ConvNextForImageClassification(hf_config(hf, labels)), seed=5).eval()


def save_pytorch_bin(model: nn.Module, directory: Path) -> None:
    """A pytorch_model.bin directory, via save_pretrained where transformers still writes one."""
    try:
        model.save_pretrained(directory, safe_serialization=False)
    except TypeError:  # the option is gone
        model.save_pretrained(directory)
    if not (directory / "pytorch_model.bin").exists():  # transformers 5 ignores it and writes safetensors
        (directory / "model.safetensors").unlink()
        torch.save(model.state_dict(), directory / "pytorch_model.bin")


@torch.no_grad()
def assert_matches_hf_logits(model: nn.Module, reference: nn.Module) -> None:
    x = images(seed=6)
    torch.testing.assert_close(model(x), reference(pixel_values=x).logits, rtol=1e-5, atol=1e-5)


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


def test_transformers_placeholder_labels_are_dropped(tmp_path: Path, hf: object) -> None:
    reference = hf_classifier(hf, labels=None)
    assert reference.config.id2label[0] == "LABEL_0"
    reference.save_pretrained(tmp_path / "hf")
    model = create_model(weights=tmp_path / "hf")
    assert model.weights_info.labels is None
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


# --- bad input -----------------------------------------------------------------------------------------


class _TouchOnLoad:
    """Unpickling this runs Path.touch: a stand-in for a checkpoint that carries code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (pathlib.Path.touch, (self.marker,))


def _truncated(tmp: Path) -> Path:
    data = save_torch(make_model().state_dict(), tmp / "whole.pth").read_bytes()
    (tmp / "half.pth").write_bytes(data[: len(data) // 2])
    return tmp / "half.pth"


def _text(content: str) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        (tmp / "notes.pth").write_text(content)
        return tmp / "notes.pth"

    return build


def _jpeg_bytes(tmp: Path) -> Path:
    noise = torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(9), dtype=torch.uint8)
    (tmp / "photo.safetensors").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(noise.tolist()))
    return tmp / "photo.safetensors"


def _h5(tmp: Path) -> Path:
    (tmp / "weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    return tmp / "weights.h5"


def _directory_without_config(tmp: Path) -> Path:
    save_file(make_model().state_dict(), tmp / "model.safetensors")
    return tmp


def _code_pickle(tmp: Path) -> Path:
    return save_torch({"model": _TouchOnLoad(tmp / "marker")}, tmp / "evil.pth")


def _no_tensors(tmp: Path) -> Path:
    return save_torch({"epoch": 3, "args": {"lr": 0.1}, "model": {"note": "weights elsewhere"}}, tmp / "meta.pth")


# name: (build the bad weights under a temporary folder, words the error message must contain)
BAD_INPUTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "truncated": (_truncated, "truncated"),
    "git_lfs_pointer": (
        _text("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 28589\n"),
        "Git LFS pointer",
    ),
    "html_page": (_text("<!DOCTYPE html><html><body>404 Not Found</body></html>\n"), "not a PyTorch checkpoint"),
    "text_hello": (_text("hello, the weights are on the shared drive\n"), "not a PyTorch checkpoint"),
    "text_see": (_text("see README.md for the download link\n"), "not a PyTorch checkpoint"),
    "jpeg_bytes": (_jpeg_bytes, "not a valid safetensors file"),
    "h5_suffix": (_h5, "unsupported weights file type '.h5'"),
    "missing": (lambda tmp: tmp / "nowhere.pth", "not found"),
    "directory_without_config": (_directory_without_config, "no config.json"),
    "code_pickle": (_code_pickle, "could run code"),
    "no_tensors": (_no_tensors, "holds no weights"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_weights_raise_checkpoint_error(tmp_path: Path, case: str) -> None:
    build, words = BAD_INPUTS[case]
    path = build(tmp_path)
    with pytest.raises(CheckpointError) as error:
        create_model(weights=path)
    assert words in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_cli_reports_bad_weights_in_one_line(tmp_path: Path, case: str) -> None:
    build, words = BAD_INPUTS[case]
    path = build(tmp_path)
    result = CliRunner().invoke(app, ["info", "--weights", str(path)])
    stderr = getattr(result, "stderr", None) or result.output
    assert result.exit_code == 2, (result.exception, result.output)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error:")
    assert words in lines[0]
    assert "Traceback" not in result.output


def test_cli_info_reads_good_weights(checkpoint: Path) -> None:
    """The error test above is only meaningful if the same command succeeds on a real checkpoint."""
    result = CliRunner().invoke(app, ["info", "--weights", str(checkpoint), "--json", "-"])
    assert result.exit_code == 0, result.output
    weights = json.loads(result.stdout)["weights"]
    assert (weights["format"], weights["sha256"], weights["num_classes"]) == ("official", sha256(checkpoint), 10)


def test_pickled_code_never_runs(tmp_path: Path) -> None:
    path = _code_pickle(tmp_path)
    marker = tmp_path / "marker"
    with pytest.raises(CheckpointError, match="could run code"):
        create_model(weights=path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="could run code"):
        create_model(weights=path, ema=True)
    assert not marker.exists()


def test_other_variant_checkpoint_names_it(tmp_path: Path) -> None:
    path = tmp_path / "atto.safetensors"
    save_file(create_model("atto", num_classes=3).state_dict(), path)
    with pytest.raises(CheckpointError) as error:
        create_model("test", weights=path)
    message = str(error.value)
    assert "convnext_atto" in message
    assert "convnext_test" in message
    assert "omit the variant" in message
    assert create_model(weights=path).config.name == "atto"  # which is what the message advises


def test_other_class_count_needs_reset_head(checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match="reset_head"):
        create_model(weights=checkpoint, num_classes=7)


def test_reset_head_keeps_the_trunk(checkpoint: Path, source: nn.Module) -> None:
    model = create_model(weights=checkpoint, num_classes=7, reset_head=True)

    assert model.config.num_classes == 7
    assert model.head.weight.shape == (7, 64)
    assert model.head.bias.shape == (7,)
    expected = source.state_dict()
    trunk = {k for k in expected if not k.startswith("head.")}
    assert trunk == {k for k in model.state_dict() if not k.startswith("head.")}
    for key in trunk:
        assert torch.equal(model.state_dict()[key], expected[key]), key
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(images()), source.forward_features(images()))


def _drop(key: str) -> Callable[[dict], dict]:
    return lambda sd: {k: v for k, v in sd.items() if k != key}


def _add(key: str) -> Callable[[dict], dict]:
    return lambda sd: {**sd, key: torch.zeros(3)}


def _reshape(key: str) -> Callable[[dict], dict]:
    return lambda sd: {**sd, key: torch.zeros(sd[key].numel() + 1)}


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


# --- headless and features-only ------------------------------------------------------------------------


def test_classifier_checkpoint_loads_headless(checkpoint: Path, source: nn.Module) -> None:
    model = create_model(weights=checkpoint, num_classes=None)
    assert model.config.num_classes is None
    assert not any(k.startswith("head.") for k in model.state_dict())
    with torch.no_grad():
        features = model(images())
        assert features.shape == (2, 64)
        torch.testing.assert_close(features, source.forward_features(images()), rtol=0, atol=0)


def test_classifier_checkpoint_loads_features_only(checkpoint: Path, source: nn.Module) -> None:
    model = create_model(weights=checkpoint, features_only=True)
    assert model.config.features_only
    with torch.no_grad():
        maps, expected = model(images()), source.forward_stages(images())
    assert [m.shape for m in maps] == [(2, 8, 16, 16), (2, 16, 8, 8), (2, 32, 4, 4), (2, 64, 2, 2)]
    assert len(maps) == len(expected) == 4
    for got, want in zip(maps, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


# --- pretrained tags -----------------------------------------------------------------------------------


def test_pretrained_tag_needs_a_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[object]
) -> None:
    monkeypatch.chdir(tmp_path)  # no file called "in1k" can shadow the tag
    with pytest.raises(InvalidOptionError, match="variant"):
        create_model(weights="in1k")
    assert no_network == []


def test_ema_flag_on_a_transformers_directory_is_an_error(tmp_path: Path) -> None:
    save_file(make_model().state_dict(), tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no EMA weights"):
        create_model(weights=tmp_path, ema=True)
