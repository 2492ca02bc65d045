"""Reading weights files safely: tensors only, never arbitrary pickled code.

Accepted: `.pth`, `.pt`, `.bin`, `.ckpt` (torch zip or legacy pickle, read with `weights_only=True`),
`.safetensors`, and a transformers model directory (config.json + model.safetensors or
pytorch_model.bin, sharded or not). Training checkpoints that wrap the weights (`model`, `model_ema`,
`state_dict`, `module.` prefixes) are unwrapped here.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from convnext_export._files import sha256_of
from convnext_export.errors import CheckpointError

if TYPE_CHECKING:
    import torch

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# Entries that hold the weights inside a training checkpoint, in order of preference.
WRAPPER_KEYS = ("model", "state_dict", "model_ema", "state_dict_ema", "module")
EMA_WRAPPER_KEYS = ("model_ema", "state_dict_ema")
STRIPPED_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class RawCheckpoint:
    """Tensors as found in the file (not yet renamed), plus what the file says about them."""

    state_dict: dict[str, torch.Tensor]
    path: Path
    sha256: str
    entry: str | None = None
    labels: list[str] | None = None
    hf_config: dict = field(default_factory=dict)
    image_size: int | None = None  # the resolution the weights were trained at, when the file records it


def read_checkpoint(path: str | os.PathLike[str], *, ema: bool = False) -> RawCheckpoint:
    """Load the tensors of a weights file or transformers directory; one clear error for any bad input."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"weights not found: {path}")
    if path.is_dir():
        if ema:
            raise CheckpointError(f"{path} is a transformers directory, which has no EMA weights; drop --ema")
        return _read_hf_directory(path)
    files = [path]
    labels, image_size = None, None
    if path.suffix == SAFETENSORS_SUFFIX:
        tensors = _load_safetensors(path)
        labels, image_size = _safetensors_annotations(path)
    elif path.suffix in TORCH_SUFFIXES:
        tensors = _load_torch(path)
    else:
        accepted = ", ".join((*TORCH_SUFFIXES, SAFETENSORS_SUFFIX))
        raise CheckpointError(
            f"{path}: unsupported weights file type {path.suffix!r}; accepted: {accepted}"
            " or a transformers model directory"
        )
    state_dict, entry = unwrap_state_dict(tensors, path, ema=ema)
    return RawCheckpoint(state_dict, path, sha256_of(files), entry, labels, image_size=image_size)


def _safetensors_annotations(path: Path) -> tuple[list[str] | None, int | None]:
    """Class labels and training image size from the safetensors header, when the writer stored them
    (convnext_export.train.save_checkpoint does: "labels", and "image_size" inside "model_options")."""
    from safetensors import safe_open

    with safe_open(path, "pt") as handle:
        metadata = handle.metadata() or {}
    labels = _json_field(metadata, "labels")
    options = _json_field(metadata, "model_options")
    image_size = options.get("image_size") if isinstance(options, dict) else None
    valid_labels = isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)
    return (labels if valid_labels else None), (image_size if isinstance(image_size, int) else None)


def _json_field(metadata: dict[str, str], key: str) -> object:
    try:
        return json.loads(metadata[key]) if key in metadata else None
    except json.JSONDecodeError:
        return None


LFS_POINTER_PREFIX = b"version https://git-lfs"


def _load_torch(path: Path) -> object:
    import torch

    with open(path, "rb") as f:
        if f.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX:
            raise CheckpointError(f"{path} is a Git LFS pointer, not the weights; fetch them with `git lfs pull`")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # Only "Unsupported global" means real pickled objects; other unpickler errors mean garbage bytes.
        if "unsupported global" in str(exc).lower():
            raise CheckpointError(
                f"refused to load {path}: it holds pickled Python objects beyond tensors, which could run "
                "code; convert it to safetensors in a trusted environment"
            ) from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint or is corrupt") from None
    except Exception as exc:  # torch's unpickler raises KeyError, IndexError... on garbage
        raise CheckpointError(f"{path} is not a PyTorch checkpoint or is truncated ({_first_line(exc)})") from None


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a valid safetensors file ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _is_tensor_dict(obj: object) -> bool:
    import torch

    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def unwrap_state_dict(obj: object, path: Path, *, ema: bool = False) -> tuple[dict, str | None]:
    """Find the tensor dict inside a training checkpoint and strip DDP / torch.compile prefixes."""
    entry = None
    if isinstance(obj, dict) and not _is_tensor_dict(obj):
        order = EMA_WRAPPER_KEYS + WRAPPER_KEYS if ema else WRAPPER_KEYS
        entry = next((k for k in order if _is_tensor_dict(obj.get(k))), None)
        if entry is None:
            keys = ", ".join(map(str, list(obj)[:8]))
            raise CheckpointError(
                f"{path} holds no weights: no tensor dict at the top or under "
                f"{', '.join(WRAPPER_KEYS)} (top-level keys: {keys})"
            )
        if ema and entry not in EMA_WRAPPER_KEYS:
            raise CheckpointError(f"{path} has no EMA weights (model_ema); drop --ema to load {entry!r}")
        obj = obj[entry]
    if not _is_tensor_dict(obj):
        raise CheckpointError(f"{path} holds no weights (expected a dict of tensors)")
    if ema and entry is None:
        raise CheckpointError(f"{path} is a bare state dict without EMA weights (model_ema); drop --ema")
    return strip_prefixes(obj), entry  # type: ignore[arg-type]


def strip_prefixes(state_dict: dict) -> dict:
    """Remove prefixes that wrappers add to every key (DistributedDataParallel, torch.compile)."""
    changed = True
    while changed:
        changed = False
        for prefix in STRIPPED_PREFIXES:
            if all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
                changed = True
    return state_dict


def _read_hf_directory(path: Path) -> RawCheckpoint:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{path} is a directory but not a transformers model (no config.json)")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_path} is not valid JSON ({exc})") from None
    files = _hf_weight_files(path)
    state_dict: dict = {}
    for file in files:
        tensors = _load_safetensors(file) if file.suffix == SAFETENSORS_SUFFIX else _load_torch(file)
        state_dict.update(unwrap_state_dict(tensors, file)[0])
    return RawCheckpoint(state_dict, path, sha256_of(files), None, labels_from_hf_config(config), config)


def _hf_weight_files(path: Path) -> list[Path]:
    """The weight file(s) of a transformers directory, preferring safetensors, following shard indexes."""
    for name in HF_WEIGHT_FILES:
        candidate = path / name
        if not candidate.is_file():
            continue
        if not name.endswith(".index.json"):
            return [candidate]
        try:
            shards = sorted(set(json.loads(candidate.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError) as exc:
            raise CheckpointError(f"{candidate} is not a valid shard index ({exc})") from None
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            raise CheckpointError(f"{path} is missing weight shards: {', '.join(missing)}")
        return [path / s for s in shards]
    raise CheckpointError(f"{path} has config.json but no weights ({' or '.join(HF_WEIGHT_FILES[::2])})")


def labels_from_hf_config(config: dict) -> list[str] | None:
    """Class names from `id2label`, unless they are transformers' placeholder LABEL_n names."""
    id2label = config.get("id2label") or {}
    try:
        labels = [id2label[k] for k in sorted(id2label, key=int)]
    except (ValueError, TypeError):
        return None
    if not labels or all(label == f"LABEL_{i}" for i, label in enumerate(labels)):
        return None
    return labels
