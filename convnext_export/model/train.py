"""A small, seeded training loop for ConvNeXt: enough to make reference models with real accuracy.

The project trains its own tiny reference networks (e.g. on scikit-learn's handwritten digits) so that
quantized artifacts can be shown to keep accuracy on real images, not only to agree with an untrained
network. This loop follows the ConvNeXt recipe where it matters at this scale: AdamW with weight decay on
weight matrices only (biases, LayerNorm affine and the layer-scale ``gamma`` are left undecayed), and a
per-step cosine learning-rate schedule with optional linear warmup.

Inputs are float32 NCHW arrays already preprocessed exactly as validation and calibration will preprocess
them (:func:`convnext_export.preprocess.preprocess_batch`), so a trained model sees nothing else later.
This module needs torch; nothing else in the package imports it.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convnext_export._atomic import atomic_path

LABELS_METADATA_KEY = "labels"


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run; the defaults are the ConvNeXt recipe's optimiser settings."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 4e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 0
    seed: int = 0
    checkpoint_every: int = 0  # every N epochs to checkpoint_dir; 0: only the final checkpoint
    checkpoint_dir: Path | None = None  # None: no checkpoints are written
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr} and {self.weight_decay}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs), got {self.warmup_epochs}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = Path(self.checkpoint_dir)


@dataclass
class EpochRecord:
    """What one epoch did: the numbers a training log needs to show progress and catch divergence."""

    epoch: int  # 1-based
    lr: float  # learning rate of the epoch's last optimiser step
    train_loss: float  # mean loss over the epoch's samples (label smoothing included)
    train_accuracy: float  # top-1 on the training batches as seen in train mode
    val_accuracy: float | None  # top-1 in eval mode on the validation set, None without one


def cosine_lr(step: int, total_steps: int, base_lr: float, warmup_steps: int = 0) -> float:
    """Learning rate at optimiser step ``step`` (0-based) of ``total_steps``.

    Linear warmup ``base_lr * (step + 1) / warmup_steps`` for the first ``warmup_steps`` steps (so the
    first step is not wasted at lr 0), then half a cosine from ``base_lr`` towards 0:
    ``0.5 * base_lr * (1 + cos(pi * (step - warmup_steps) / (total_steps - warmup_steps)))``.
    """
    if not 0 <= step < total_steps:
        raise ValueError(f"step {step} is outside the schedule of {total_steps} steps")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * progress))


def _no_decay(name: str, parameter: nn.Parameter) -> bool:
    """Biases, norm affine parameters and layer scale: 1-D tensors whose decay only hurts (ConvNeXt, timm)."""
    return parameter.ndim <= 1 or name.endswith("gamma")


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: weight matrices and kernels decay, biases, norms and ``gamma`` do not.

    Decaying a LayerNorm scale or the layer-scale ``gamma`` pulls them towards 0, i.e. towards switching
    a block off, which is not the regularisation intended. Each group also carries the parameter
    ``names`` (optimisers keep extra keys), so the split can be inspected.
    """
    decay: list[tuple[str, nn.Parameter]] = []
    no_decay: list[tuple[str, nn.Parameter]] = []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if _no_decay(name, parameter) else decay).append((name, parameter))
    return [
        {"params": [p for _, p in decay], "names": [n for n, _ in decay], "weight_decay": weight_decay},
        {"params": [p for _, p in no_decay], "names": [n for n, _ in no_decay], "weight_decay": 0.0},
    ]


def _as_tensors(x: np.ndarray, y: np.ndarray, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the arrays once, up front, so a shape mistake fails before the first step, not mid-epoch."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 4:
        raise ValueError(f"{what} images must be NCHW, got shape {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"{what} labels must be a vector of {len(x)} class indices, got shape {y.shape}")
    if len(x) == 0:
        raise ValueError(f"{what} set is empty")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what} labels must be integers, got {y.dtype}")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y.astype(np.int64))


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy in eval mode (drop path and dropout off); the model's previous mode is restored."""
    images, labels = _as_tensors(x, y, "evaluation")
    was_training = model.training
    model.eval()
    correct = 0
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                logits = model(images[start : start + batch_size])
                correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
    finally:
        model.train(was_training)
    return correct / len(images)


def train(
    model: nn.Module,
    train_x: np.ndarray,
    train_y: np.ndarray,
    config: TrainConfig,
    *,
    val_x: np.ndarray | None = None,
    val_y: np.ndarray | None = None,
    progress: Callable[[EpochRecord], None] | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
) -> list[EpochRecord]:
    """Train ``model`` in place and return one record per epoch; the model is left in eval mode.

    ``augment(batch, generator)`` optionally transforms each training batch (e.g. random shifts); it gets
    the run's seeded generator so augmented runs stay reproducible. Validation data is never augmented.

    Seeded: ``torch.manual_seed(config.seed)`` (drop path, dropout) and a separate generator for the
    shuffling order and ``augment``, so the same model, data and config give the same weights on the same machine.
    The model's initial weights are the caller's (seed before ``create_model`` for a reproducible init).
    """
    images, labels = _as_tensors(train_x, train_y, "training")
    if (val_x is None) != (val_y is None):
        raise ValueError("give both val_x and val_y, or neither")
    if val_x is not None:
        _as_tensors(val_x, val_y, "validation")  # a bad validation set fails now, not after the first epoch
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)
    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    total_steps, warmup_steps = config.epochs * steps_per_epoch, config.warmup_epochs * steps_per_epoch

    records: list[EpochRecord] = []
    step = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        loss_sum, correct = 0.0, 0
        for index in torch.randperm(len(images), generator=generator).split(config.batch_size):
            lr = cosine_lr(step, total_steps, config.lr, warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = images[index] if augment is None else augment(images[index], generator)
            logits = model(batch)
            loss = F.cross_entropy(logits, labels[index], label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_sum += float(loss.detach()) * len(index)
            correct += int((logits.detach().argmax(1) == labels[index]).sum())
        model.eval()
        val_accuracy = evaluate(model, val_x, val_y) if val_x is not None else None
        record = EpochRecord(epoch, lr, loss_sum / len(images), correct / len(images), val_accuracy)
        records.append(record)
        _maybe_checkpoint(model, config, epoch)
        if progress is not None:
            progress(record)
    model.eval()
    return records


def _maybe_checkpoint(model: nn.Module, config: TrainConfig, epoch: int) -> None:
    """Write ``epoch_NNN.safetensors`` every ``checkpoint_every`` epochs and always after the last one."""
    if config.checkpoint_dir is None:
        return
    periodic = config.checkpoint_every > 0 and epoch % config.checkpoint_every == 0
    if periodic or epoch == config.epochs:
        save_checkpoint(model, config.checkpoint_dir / f"epoch_{epoch:03d}.safetensors", extra={"epoch": str(epoch)})


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    labels: list[str] | None = None,
    extra: dict[str, str] | None = None,
) -> Path:
    """Write the model's weights as safetensors, atomically, with class labels in the file's metadata.

    safetensors holds tensors only (nothing to unpickle) and its string metadata carries the labels as
    JSON under ``"labels"``, so the weights and their class names travel as one file. ``extra`` adds
    other string entries (e.g. how the file was made).
    """
    from safetensors.torch import save_file

    metadata = dict(extra or {})
    if labels is not None:
        metadata[LABELS_METADATA_KEY] = json.dumps([str(label) for label in labels])
    # save_file refuses shared or non-contiguous storage; clone gives each tensor its own buffer.
    tensors = {name: t.detach().cpu().contiguous().clone() for name, t in model.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        _sort_header(tmp)
    return path


def _sort_header(path: Path) -> None:
    """Rewrite the safetensors JSON header with sorted keys, so equal weights give byte-equal files.

    safetensors writes its metadata from a hash map, in an order that changes from run to run; a file's
    sha256 (recorded in every exported artifact) would then change with nothing else changed. The sorted
    header has the same content, hence the same compact length; it is written over the old one in place,
    padded with spaces as safetensors pads it.
    """
    with open(path, "r+b") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        canonical = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if len(canonical) <= length:  # always, as the content is unchanged; otherwise keep the valid original
            f.seek(8)
            f.write(canonical.ljust(length, b" "))
