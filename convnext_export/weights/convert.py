"""Renaming timm and transformers ConvNeXt weights to the official layout, and reading the architecture
back from a state dict.

The official facebookresearch names are this package's native names, so conversion is a table of
regular-expression renames per source format plus one reshape (timm's 1x1-conv MLP weights).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from convnext_export.errors import CheckpointError
from convnext_export.model.variants import describe_architecture

if TYPE_CHECKING:
    import torch

OFFICIAL, TIMM, TRANSFORMERS = "official", "timm", "transformers"

# (pattern, replacement) applied in order to every key; the first match wins.
_TIMM_RULES = [
    (r"^stem\.(\d)\.", r"downsample_layers.0.\1."),
    (r"^stages\.(\d+)\.downsample\.(\d)\.", r"downsample_layers.\1.\2."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.conv_dw\.", r"stages.\1.\2.dwconv."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.mlp\.fc(\d)\.", r"stages.\1.\2.pwconv\3."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.\2."),
    (r"^head\.norm\.", "norm."),
    (r"^head\.fc\.", "head."),
]
_TRANSFORMERS_RULES = [
    (r"^(?:convnext\.)?embeddings\.patch_embeddings\.", "downsample_layers.0.0."),
    (r"^(?:convnext\.)?embeddings\.layernorm\.", "downsample_layers.0.1."),
    (r"^(?:convnext\.)?encoder\.stages\.(\d+)\.downsampling_layer\.(\d)\.", r"downsample_layers.\1.\2."),
    (r"^(?:convnext\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.layer_scale_parameter$", r"stages.\1.\2.gamma"),
    (r"^(?:convnext\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.layernorm\.", r"stages.\1.\2.norm."),
    (r"^(?:convnext\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.", r"stages.\1.\2."),
    (r"^(?:convnext\.)?layernorm\.", "norm."),
    (r"^classifier\.", "head."),
]
_RULES = {TIMM: _TIMM_RULES, TRANSFORMERS: _TRANSFORMERS_RULES, OFFICIAL: []}


def detect_format(state_dict: dict) -> str:
    """Which implementation wrote these weights, judged by key names only."""
    keys = set(state_dict)
    if any(re.search(r"(^|\.)embeddings\.patch_embeddings\.weight$", k) for k in keys):
        return TRANSFORMERS
    if "stem.0.weight" in keys or any(re.match(r"^stages\.\d+\.blocks\.", k) for k in keys):
        return TIMM
    if "downsample_layers.0.0.weight" in keys or {"stem.weight", "blocks.0.dwconv.weight"} <= keys:
        return OFFICIAL
    sample = ", ".join(sorted(keys)[:5])
    raise CheckpointError(
        f"no ConvNeXt weights recognised (official, timm or transformers names); first keys: {sample}"
    )


def _rename(key: str, rules: list[tuple[str, str]]) -> str:
    for pattern, replacement in rules:
        new, count = re.subn(pattern, replacement, key)
        if count:
            return new
    return key


def to_official(state_dict: dict[str, torch.Tensor], source_format: str) -> dict[str, torch.Tensor]:
    """Rename keys to the official layout; 1x1-conv MLP weights (timm conv_mlp) become linear weights."""
    rules = _RULES[source_format]
    out = {}
    for key, value in state_dict.items():
        new_key = _rename(key, rules)
        if re.search(r"\.pwconv\d\.weight$", new_key) and value.ndim == 4:
            value = value.flatten(1)  # (out, in, 1, 1) -> (out, in)
        out[new_key] = value
    return out


@dataclass(frozen=True)
class Architecture:
    """What a state dict reveals about the network that produced it."""

    isotropic: bool
    depths: tuple[int, ...]
    dims: tuple[int, ...]
    patch_size: int
    in_channels: int
    num_classes: int | None
    has_layer_scale: bool
    has_final_norm: bool

    def describe(self) -> str:
        return describe_architecture(self)


def _tensor(state_dict: dict, key: str) -> torch.Tensor:
    if key not in state_dict:
        raise CheckpointError(f"weights lack {key!r}, which every ConvNeXt has; the file is incomplete")
    return state_dict[key]


def _block_counts(state_dict: dict, pattern: str) -> dict[int, int]:
    """Blocks per stage: 1 + the highest block index seen under each stage."""
    counts: dict[int, int] = {}
    for key in state_dict:
        match = re.match(pattern, key)
        if match:
            stage, block = (int(g or 0) for g in match.groups())
            counts[stage] = max(counts.get(stage, 0), block + 1)
    return counts


def infer_architecture(state_dict: dict) -> Architecture:
    """Read depths, dims, patch size, input channels and head size back from official-layout weights."""
    head = state_dict.get("head.weight")
    num_classes = int(head.shape[0]) if head is not None else None
    if "stem.weight" in state_dict:
        stem = _tensor(state_dict, "stem.weight")
        depth = _block_counts(state_dict, r"^()blocks\.(\d+)\.dwconv\.weight$").get(0, 0)
        return Architecture(
            True,
            (depth,),
            (int(stem.shape[0]),),
            int(stem.shape[-1]),
            int(stem.shape[1]),
            num_classes,
            "blocks.0.gamma" in state_dict,
            "norm.weight" in state_dict,
        )
    stem = _tensor(state_dict, "downsample_layers.0.0.weight")
    counts = _block_counts(state_dict, r"^stages\.(\d+)\.(\d+)\.dwconv\.weight$")
    if sorted(counts) != list(range(len(counts))) or not counts:
        raise CheckpointError(f"weights have an incomplete set of stages: {sorted(counts)}")
    dims = tuple(int(_tensor(state_dict, f"stages.{i}.0.dwconv.weight").shape[0]) for i in sorted(counts))
    return Architecture(
        False,
        tuple(counts[i] for i in sorted(counts)),
        dims,
        int(stem.shape[-1]),
        int(stem.shape[1]),
        num_classes,
        "stages.0.0.gamma" in state_dict,
        "norm.weight" in state_dict,
    )
