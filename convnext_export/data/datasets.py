"""Labelled image folders (ImageFolder layout): classes, files in a stable order, and digests a baseline is tied to.

One sub-folder per class, sorted names as torchvision's ImageFolder numbers them, or a labels file that fixes
the order; images go through the model's evaluation preprocessing.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convnext_export.data.labels import read_labels_file
from convnext_export.data.preprocess import IMAGE_EXTENSIONS, PreprocessConfig, find_images, preprocess_batch
from convnext_export.errors import ConvNeXtExportError, ImageError, InvalidOptionError


class DatasetError(ConvNeXtExportError):
    """A labelled image folder that is missing, laid out wrongly, or does not fit the model."""


@dataclass
class Dataset:
    inputs: np.ndarray  # float32 NCHW, the model's evaluation preprocessing
    targets: np.ndarray  # int64 class index per image
    classes: list[str]  # index -> name
    files: list[Path]
    root: Path
    sha256: str = ""  # relative paths + contents: what a baseline is tied to
    files_sha256: str = ""  # relative paths only: tells "other files" from "same files, other contents"

    def info(self) -> dict:
        return {
            "path": os.fspath(self.root),
            "images": len(self.files),
            "classes": self.classes,
            "sha256": self.sha256,
            "files_sha256": self.files_sha256,
        }


def _is_image(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def _class_folders(root: Path) -> list[Path]:
    """The class sub-folders (sorted by name, as torchvision's ImageFolder), or a one-line DatasetError."""
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder {os.fspath(root)!r} {'is not a directory' if root.exists() else 'does not exist'}"
        )
    entries = sorted(root.iterdir())
    loose = [p.name for p in entries if _is_image(p)]
    if loose:
        raise DatasetError(
            f"dataset folder {os.fspath(root)!r} holds {len(loose)} image(s) directly (e.g. {loose[0]}): "
            "expected one sub-folder per class (ImageFolder layout: <root>/<class>/<image>)"
        )
    folders = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
    if not folders:
        raise DatasetError(f"dataset folder {os.fspath(root)!r} has no class folders (<root>/<class>/<image>)")
    return folders


def _class_index(folders: list[Path], labels_file: str | os.PathLike[str] | None) -> tuple[list[str], dict[str, int]]:
    """Classes in index order and folder name -> index: sorted names, or the labels file's line order."""
    if labels_file is None:
        classes = [f.name for f in folders]
        return classes, {name: i for i, name in enumerate(classes)}

    classes = read_labels_file(labels_file)
    index = {}
    for i, label in enumerate(classes):
        index.setdefault(label, i)
    if len(index) != len(classes):
        raise DatasetError(f"labels file {os.fspath(labels_file)!r} names a class twice")
    unknown = [f.name for f in folders if f.name not in index]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise DatasetError(
            f"class folder(s) {shown} are not labels in {os.fspath(labels_file)!r} ({len(classes)} labels, "
            f"e.g. {classes[0]!r}): name each folder by its label"
        )
    return classes, index


def _spread(count: int, limit: int | None) -> list[int]:
    """`limit` indices spread evenly over `count` sorted files, so every class stays represented."""
    if limit is None or limit >= count:
        return list(range(count))
    if limit < 1:
        raise InvalidOptionError(f"limit must be a positive integer, got {limit}")
    return sorted({int(i) for i in np.linspace(0, count - 1, limit).round()})


def dataset_digests(root: Path, files: list[Path]) -> tuple[str, str]:
    """(sha256 over relative paths and contents, sha256 over relative paths only): location-independent."""
    names, full = hashlib.sha256(), hashlib.sha256()
    for path in files:
        rel = path.relative_to(root).as_posix().encode()
        names.update(rel + b"\0")
        full.update(rel + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return full.hexdigest(), names.hexdigest()


def load_dataset(
    root: str | os.PathLike[str],
    preprocess: PreprocessConfig,
    *,
    labels_file: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> Dataset:
    """An ImageFolder tree (one sub-folder per class) read with the model's evaluation preprocessing."""
    root = Path(root)
    folders = _class_folders(root)
    classes, index = _class_index(folders, labels_file)
    files, targets = [], []
    for folder in folders:
        found = find_images(folder)
        if not found:
            raise DatasetError(
                f"class folder {os.fspath(folder)!r} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        files += found
        targets += [index[folder.name]] * len(found)
    keep = _spread(len(files), limit)
    files, targets = [files[i] for i in keep], np.asarray([targets[i] for i in keep], dtype=np.int64)
    try:
        inputs = preprocess_batch(files, preprocess)
    except ImageError as exc:
        raise DatasetError(str(exc)) from None
    sha, files_sha = dataset_digests(root, files)
    return Dataset(inputs, targets, classes, files, root, sha, files_sha)


def check_classes(dataset: Dataset, num_classes: int | None, model_labels: list[str] | None = None) -> None:
    """The dataset's classes against the model's head: same count, and not the model's labels reordered."""
    if num_classes is None:
        raise DatasetError("the model has no classifier head (features only): check needs class scores")
    if len(dataset.classes) != num_classes:
        raise DatasetError(
            f"dataset {os.fspath(dataset.root)!r} has {len(dataset.classes)} classes, the model has {num_classes}"
            + ("" if len(dataset.classes) > num_classes else ": pass --labels with all the model's labels")
        )
    if model_labels and sorted(model_labels) == sorted(dataset.classes) and list(model_labels) != dataset.classes:
        raise DatasetError(
            "the class folders are the model's labels in another order: sorted folder names would misnumber "
            "the classes; pass --labels with the model's labels in class order (labels.txt of a build)"
        )
