"""Class labels: the ImageNet-1k names shipped with the package, or a checkpoint's own."""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path

from convnext_export.errors import InvalidOptionError

IMAGENET1K_CLASSES = 1000


@functools.cache
def imagenet1k_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in class-index order (see convnext_export/data/README.md)."""
    text = resources.files("convnext_export.data").joinpath("imagenet1k_labels.txt").read_text("utf-8")
    return tuple(text.splitlines())


def default_labels(num_classes: int | None, checkpoint_labels: list[str] | tuple[str, ...] | None) -> list[str] | None:
    """Labels to record for a model: the checkpoint's own when it has them, ImageNet names for a 1000-way
    head, otherwise none (a custom head's class names must come from the user or the checkpoint)."""
    if checkpoint_labels:
        return list(checkpoint_labels)
    if num_classes == IMAGENET1K_CLASSES:
        return list(imagenet1k_labels())
    return None


def read_labels_file(path: str | os.PathLike[str], num_classes: int | None = None) -> list[str]:
    """One label per line; blank lines are an error because they would shift every later class."""
    path = Path(path)
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidOptionError(f"cannot read labels file {path}: {exc}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if any(not line.strip() for line in lines):
        raise InvalidOptionError(f"labels file {path} has blank lines; write one label per line")
    if num_classes is not None and len(lines) != num_classes:
        raise InvalidOptionError(f"labels file {path} has {len(lines)} labels, the model has {num_classes} classes")
    return lines
