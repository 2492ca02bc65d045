"""Shared by the weights tests (and the model and CLI tests that read checkpoints): networks with randomised
parameters, comparisons that must be exact, transformers models, and bad weights files with the words their error
must contain. Every checkpoint is made from a tiny network, so a load that silently keeps the random
initialisation, or swaps two tensors, changes the outputs. Nothing reaches the network."""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from convnext_export.model.factory import create_model

# --- networks with random parameters, compared exactly --------------------------------------------------------


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


# --- transformers -----------------------------------------------------------------------------------------------

LABELS = ["cat", "dog", "bird", "fish", "frog"]  # the transformers classifier's class names


def hf_config(hf: object, labels: list[str] | None = None) -> object:
    """A 5-class transformers ConvNextConfig shaped like the `test` variant (layer scale 1: every block counts)."""
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
    """A transformers ConvNextForImageClassification with randomised parameters, in eval mode."""
    return randomize_(hf.ConvNextForImageClassification(hf_config(hf, labels)), seed=5).eval()


@torch.no_grad()
def assert_matches_hf_logits(model: nn.Module, reference: nn.Module) -> None:
    x = images(seed=6)
    torch.testing.assert_close(model(x), reference(pixel_values=x).logits, rtol=1e-5, atol=1e-5)


# --- bad weights files ------------------------------------------------------------------------------------------


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


def code_pickle(tmp: Path) -> Path:
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
    "code_pickle": (code_pickle, "could run code"),
    "no_tensors": (_no_tensors, "holds no weights"),
}
