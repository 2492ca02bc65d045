"""From a weights argument (file, transformers directory or pretrained tag) to official-layout tensors
with a record of where they came from.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from convnext_export.errors import CheckpointError, InvalidOptionError
from convnext_export.weights.checkpoint import read_checkpoint
from convnext_export.weights.convert import Architecture, detect_format, infer_architecture, to_official
from convnext_export.weights.pretrained import fetch_pretrained, find_pretrained, is_pretrained_tag

if TYPE_CHECKING:
    import torch
    from torch import nn

MAX_LISTED_KEYS = 8


@dataclass(frozen=True)
class WeightsInfo:
    """Provenance of loaded weights; export records it in every artifact's metadata."""

    source: str  # what the user passed: a path or a pretrained tag
    path: str  # the file or directory read
    format: str  # official | timm | transformers
    sha256: str
    entry: str | None  # wrapper key inside a training checkpoint (model, model_ema, ...)
    num_classes: int | None
    labels: tuple[str, ...] | None  # class names the checkpoint carries (transformers id2label)
    pretrained_tag: str | None = None
    url: str | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["labels"] = list(self.labels) if self.labels else None
        return data


@dataclass
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    architecture: Architecture
    info: WeightsInfo
    image_size: int | None = None  # resolution the weights were trained at, when known


def load_checkpoint(
    weights: str | os.PathLike[str], *, variant: str | None = None, ema: bool = False, progress: bool = True
) -> Checkpoint:
    """Read weights from a path, or download a pretrained tag for `variant`, into the official layout."""
    tag = url = None
    image_size = None
    if isinstance(weights, str) and is_pretrained_tag(weights) and not Path(weights).exists():
        if variant is None:
            raise InvalidOptionError(f"pretrained weights {weights!r} need a variant (e.g. --variant tiny)")
        entry = find_pretrained(variant, weights)
        tag, url, image_size = entry.tag, entry.url, entry.image_size
        path = fetch_pretrained(entry, progress=progress)
    else:
        path = Path(weights)
    raw = read_checkpoint(path, ema=ema)
    require_finite(raw.state_dict, str(path))
    source_format = detect_format(raw.state_dict)
    state_dict = to_official(raw.state_dict, source_format)
    architecture = infer_architecture(state_dict)
    if image_size is None:
        image_size = raw.image_size or raw.hf_config.get("image_size")
        image_size = image_size if isinstance(image_size, int) else None
    info = WeightsInfo(
        source=str(weights),
        path=str(path),
        format=source_format,
        sha256=raw.sha256,
        entry=raw.entry,
        num_classes=architecture.num_classes,
        labels=tuple(raw.labels) if raw.labels else None,
        pretrained_tag=tag,
        url=url,
    )
    return Checkpoint(state_dict, architecture, info, image_size)


def require_finite(state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Name the first tensor holding NaN or Inf at load: later it would surface as a baffling export, fold
    or validation failure far from its cause."""
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~tensor.isfinite()).sum())
            if bad:
                raise CheckpointError(
                    f"weights {source}: tensor {name!r} holds {bad} non-finite value(s) (NaN or Inf) of "
                    f"{tensor.numel()}: the checkpoint is damaged or diverged in training"
                )


def _listed(kind: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    more = f" (+{len(keys) - MAX_LISTED_KEYS} more)" if len(keys) > MAX_LISTED_KEYS else ""
    return f"{len(keys)} {kind}: {shown}{more}"


def load_state_dict_strict(model: nn.Module, state_dict: dict, source: str) -> None:
    """Load every tensor or fail with one error listing missing keys, unexpected keys and shape mismatches."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    problems = [
        _listed(kind, keys)
        for kind, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatches", mismatched))
        if keys
    ]
    if problems:
        raise CheckpointError(f"weights {source} do not fit the model: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=True)
