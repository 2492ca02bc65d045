"""Labelled image folders (ImageFolder layout): classes, files in a stable order, the digests a baseline and the
eager cache are tied to, and preprocessed batches streamed in bounded memory.

One sub-folder per class. Without a labels file the classes are the sorted folder names, numbered as
torchvision's ImageFolder numbers them; with one, each folder is named by a label of the file and its class
index is that label's line. Scanning reads no image: images are read, in parallel with whatever consumes them,
by `Dataset.batches`, a few batches ahead, so memory does not grow with the number of images.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from convnext_export.data.labels import read_labels_file
from convnext_export.data.preprocess import IMAGE_EXTENSIONS, PreprocessConfig, find_images, preprocess_image
from convnext_export.errors import ConvNeXtExportError, ImageError, InvalidOptionError

T = TypeVar("T")
R = TypeVar("R")


class DatasetError(ConvNeXtExportError):
    """A labelled image folder that is missing, laid out wrongly, or does not fit the model."""


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's share), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@dataclass
class Dataset:
    targets: np.ndarray  # int64 class index per image
    classes: list[str]  # index -> name
    files: list[Path]
    root: Path
    preprocess: PreprocessConfig  # the model's evaluation preprocessing, applied as images stream
    labels_file: Path | None = None  # where the class order came from (None: sorted folder names)
    _digests: tuple[str, str] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def sha256(self) -> str:
        """Relative paths + contents: what a baseline and the eager cache are tied to (read once, on first use)."""
        return self.digests()[0]

    @property
    def files_sha256(self) -> str:
        """Relative paths only: tells "other files" from "same files, other contents"."""
        return self.digests()[1]

    def digests(self) -> tuple[str, str]:
        if self._digests is None:
            self._digests = dataset_digests(self.root, self.files)
        return self._digests

    def info(self) -> dict:
        return {
            "path": os.fspath(self.root),
            "images": len(self.files),
            "classes": self.classes,
            "sha256": self.sha256,
            "files_sha256": self.files_sha256,
        }

    def batches(self, batch_size: int, *, workers: int | None = None, prefetch: int | None = None) -> BatchStream:
        """The images preprocessed, `batch_size` at a time in file order (the last batch may be shorter)."""
        return BatchStream(self.files, self.preprocess, batch_size, workers=workers, prefetch=prefetch)


class BatchStream:
    """Preprocessed float32 NCHW batches of a file list, in order, made by a thread pool while the consumer
    works on the previous ones (Pillow and numpy release the GIL while decoding, resizing and normalising).

    At most `prefetch` batches are being made or waiting beyond the one the consumer holds, so memory is
    bounded by batch size and prefetch, never by the number of images. `peak_live` records the most batches
    that were alive at once (allocated and not yet given back by asking for the next), for tests and benches.
    """

    def __init__(
        self,
        files: list[Path],
        config: PreprocessConfig,
        batch_size: int,
        *,
        workers: int | None = None,
        prefetch: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise InvalidOptionError(f"batch size must be a positive integer, got {batch_size}")
        self.files, self.config, self.batch_size = files, config, batch_size
        self.workers = workers or available_cores()
        # Enough batches ahead to keep every worker busy (two images each), and never fewer than two.
        self.prefetch = prefetch or max(2, -(-2 * self.workers // batch_size))
        self.live = 0
        self.peak_live = 0

    def __len__(self) -> int:
        return -(-len(self.files) // self.batch_size)

    def _fill(self, batch: np.ndarray, row: int, path: Path) -> None:
        preprocess_image(path, self.config, out=batch[row])

    def _submit(self, pool: ThreadPoolExecutor, start: int) -> tuple[np.ndarray, list[Future]]:
        paths = self.files[start : start + self.batch_size]
        height, width = self.config.image_size
        batch = np.empty((len(paths), 3, height, width), dtype=np.float32)
        self.live += 1
        self.peak_live = max(self.peak_live, self.live)
        return batch, [pool.submit(self._fill, batch, row, path) for row, path in enumerate(paths)]

    def __iter__(self) -> Iterator[np.ndarray]:
        starts = iter(range(0, len(self.files), self.batch_size))
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="convnext-preprocess")
        pending: deque[tuple[np.ndarray, list[Future]]] = deque()
        try:
            for start in starts:
                pending.append(self._submit(pool, start))
                if len(pending) >= self.prefetch:
                    break
            while pending:
                batch, futures = pending.popleft()
                for future in futures:
                    _image_result(future)
                start = next(starts, None)
                if start is not None:
                    pending.append(self._submit(pool, start))
                yield batch
                del batch, futures  # the consumer asked for the next batch: this one is given back
                self.live -= 1
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self.live = 0


def _image_result(future: Future) -> None:
    """A worker's result; an unreadable image is a one-line DatasetError naming the file."""
    try:
        future.result()
    except ImageError as exc:
        raise DatasetError(str(exc)) from None


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, window: int) -> Iterator[R]:
    """`fn` over `items` on a thread pool, results in order, at most `window` submitted and unread at a time
    (Executor.map would submit every item at once: a future per image of the whole dataset)."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="convnext-dataset")
    pending: deque[Future] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _is_image(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def _class_folders(root: Path) -> list[Path]:
    """The class sub-folders (sorted by name, as torchvision's ImageFolder), or a one-line DatasetError."""
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder {os.fspath(root)!r} {'is not a directory' if root.exists() else 'does not exist'}"
        )
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise DatasetError(f"cannot list dataset folder {os.fspath(root)!r}: {exc.strerror or exc}") from None
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


def _shown(names: list[str], most: int = 5) -> str:
    return ", ".join(repr(n) for n in names[:most]) + (f", ... ({len(names)} in all)" if len(names) > most else "")


def _check_numbered_folders(root: Path, names: list[str]) -> None:
    """Folders named by number are ambiguous: sorted names (torchvision) put '10' before '2', numbers do not.
    Rather than guess which numbering the model was trained with, ask for a labels file that says."""
    if not all(name.isdecimal() for name in names):
        return
    numeric = sorted(names, key=int)
    if numeric != names:
        first = next(i for i, (a, b) in enumerate(zip(names, numeric, strict=True)) if a != b)
        raise DatasetError(
            f"the class folders of {os.fspath(root)!r} are numbers, and sorted names (torchvision's class order) "
            f"put {names[first]!r} at class {first} where the numbers put {numeric[first]!r}: pass --labels with "
            "the folder names in class order (e.g. `seq 0 N-1 > labels.txt` if folder names are class indices)"
        )


def _class_index(
    root: Path, folders: list[Path], labels_file: str | os.PathLike[str] | None
) -> tuple[list[str], dict[str, int]]:
    """Classes in index order and folder name -> index: sorted names, or the labels file's line order, with every
    folder named by one of its labels (labels without a folder are fine: a dataset may cover some classes)."""
    names = [f.name for f in folders]
    if labels_file is None:
        _check_numbered_folders(root, names)
        return names, {name: i for i, name in enumerate(names)}

    classes = read_labels_file(labels_file)
    index: dict[str, int] = {}
    for i, label in enumerate(classes):
        if label in index:
            lines = f"lines {index[label] + 1} and {i + 1}"
            raise DatasetError(f"labels file {os.fspath(labels_file)!r} names {label!r} twice ({lines})")
        index[label] = i
    unknown = [name for name in names if name not in index]
    if unknown:
        hint = "name each folder by its label (exact, case-sensitive)"
        if all(name.isdecimal() for name in unknown) and not any(name in index for name in names):
            hint = "folders are named by label, not by class index: pass a labels file of the folder names in order"
        raise DatasetError(
            f"class folder(s) {_shown(unknown)} of {os.fspath(root)!r} are not labels in {os.fspath(labels_file)!r} "
            f"({len(classes)} labels, e.g. {classes[0]!r}): {hint}"
        )
    return classes, index


def _spread(count: int, limit: int | None) -> list[int]:
    """`limit` indices spread evenly over `count` sorted files, so every class stays represented."""
    if limit is None or limit >= count:
        return list(range(count))
    if limit < 1:
        raise InvalidOptionError(f"limit must be a positive integer, got {limit}")
    return sorted({int(i) for i in np.linspace(0, count - 1, limit).round()})


def _file_sha256(path: Path) -> bytes:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError as exc:
        raise DatasetError(f"cannot read image {os.fspath(path)!r}: {exc.strerror or exc}") from None


def dataset_digests(root: Path, files: list[Path], workers: int | None = None) -> tuple[str, str]:
    """(sha256 over relative paths and contents, sha256 over relative paths only): location-independent.

    Contents, not sizes and mtimes: a CI checkout gives every file a new mtime (git keeps none), so a stat
    key would miss on every run, and an edit that keeps the size within the mtime's resolution would hit.
    Hashing runs on a thread pool (reads and sha256 release the GIL) and costs far less than decoding."""
    names, full = hashlib.sha256(), hashlib.sha256()
    workers = workers or available_cores()
    for path, digest in zip(files, ordered_map(_file_sha256, files, workers, 4 * workers), strict=True):
        rel = path.relative_to(root).as_posix().encode()
        names.update(rel + b"\0")
        full.update(rel + b"\0" + digest)
    return full.hexdigest(), names.hexdigest()


def load_dataset(
    root: str | os.PathLike[str],
    preprocess: PreprocessConfig,
    *,
    labels_file: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> Dataset:
    """An ImageFolder tree (one sub-folder per class), scanned: files, classes and targets. No image is read
    here; `Dataset.batches` reads them with the model's evaluation preprocessing."""
    root = Path(root)
    folders = _class_folders(root)
    classes, index = _class_index(root, folders, labels_file)
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
    labels = None if labels_file is None else Path(labels_file)
    return Dataset(targets, classes, files, root, preprocess, labels)


def check_classes(dataset: Dataset, num_classes: int | None, model_labels: list[str] | None = None) -> None:
    """The dataset's classes against the model's head: same count, and not the model's labels reordered (sorted
    folder names, or a labels file, that would misnumber every class)."""
    if num_classes is None:
        raise DatasetError("the model has no classifier head (features only): check needs class scores")
    if len(dataset.classes) != num_classes:
        raise DatasetError(
            f"dataset {os.fspath(dataset.root)!r} has {len(dataset.classes)} classes, the model has {num_classes}"
            + ("" if len(dataset.classes) > num_classes else ": pass --labels with all the model's labels")
        )
    if not model_labels or sorted(model_labels) != sorted(dataset.classes) or list(model_labels) == dataset.classes:
        return
    first = next(i for i, (a, b) in enumerate(zip(dataset.classes, model_labels, strict=True)) if a != b)
    where = f"class {first} is {dataset.classes[first]!r} here and {model_labels[first]!r} in the model"
    if dataset.labels_file is not None:
        raise DatasetError(
            f"labels file {os.fspath(dataset.labels_file)!r} lists the model's labels in another order ({where}): "
            "every class would be misnumbered; pass the model's labels in class order (labels.txt of a build)"
        )
    raise DatasetError(
        f"the class folders are the model's labels in another order ({where}): sorted folder names would misnumber "
        "the classes; pass --labels with the model's labels in class order (labels.txt of a build)"
    )
