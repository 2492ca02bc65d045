"""Calibration data for INT8 quantization: real inputs, preprocessed exactly as at evaluation.

Activation ranges are measured on these tensors, so they must go through the same resize, crop and
normalisation as the images the model will see (DESIGN.md section 3); anything else shifts every range.
NumPy and Pillow only: ONNX Runtime is imported when a reader is built, never on import.

Accepted sources: a directory (read recursively: images with the extensions of
:data:`~convnext_export.preprocess.IMAGE_EXTENSIONS`, plus ``.npy`` / ``.npz`` files), or one ``.npy`` /
``.npz`` file. Arrays hold either preprocessed float inputs ``(N, 3, H, W)`` at the model's input size or
raw uint8 RGB images ``(N, H, W, 3)`` of any size, which get the image transform. Every array inside an
``.npz`` counts. Samples are named ``file`` for images, ``file:i`` for ``.npy`` rows and ``file:key:i``
for ``.npz`` rows.
"""

from __future__ import annotations

import functools
import hashlib
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from convnext_export import _deps
from convnext_export.contract import INPUT_NAME
from convnext_export.data.preprocess import (
    IMAGE_EXTENSIONS,
    PreprocessConfig,
    find_images,
    load_image,
    preprocess_image,
)
from convnext_export.errors import ConvNeXtExportError, ImageError, InvalidOptionError

if TYPE_CHECKING:
    from typing import BinaryIO

ARRAY_EXTENSIONS: frozenset[str] = frozenset({".npy", ".npz"})


SHOWN_SKIPS = 5  # skipped files listed by name in a summary; the count covers all of them


_ARRAY_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile)


Progress = Callable[[int, int], None]


class CalibrationDataError(ConvNeXtExportError, ValueError):
    """Calibration data that is missing, empty, unreadable throughout, or of the wrong shape."""


@dataclass
class CalibrationSet:
    """Preprocessed calibration inputs, where each came from, and what could not be read."""

    inputs: np.ndarray  # float32 (N, 3, H, W), the model's evaluation preprocessing
    sources: list[str]  # name of each sample, in order
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why) for unreadable files
    digest: str = ""  # sha256 of shape + bytes of `inputs`: the "data + preprocessing" cache key part
    source: str = ""  # the folder or file given
    available: int = 0  # candidate samples found before sampling

    def summary(self) -> dict:
        """Counts for reports and manifests (the first few skipped files named, with why)."""
        return {
            "source": self.source,
            "used": len(self.sources),
            "available": self.available,
            "skipped": len(self.skipped),
            "skipped_files": [{"file": f, "reason": r} for f, r in self.skipped[:SHOWN_SKIPS]],
            "shape": list(self.inputs.shape),
            "digest": self.digest,
        }


@dataclass(frozen=True)
class _Candidate:
    """One sample before decoding: an image file, or row `index` of an array (key "" for .npy)."""

    path: Path
    key: str | None = None
    index: int = 0
    raw: bool = False  # array of uint8 images that still need the transform

    @property
    def name(self) -> str:
        if self.key is None:
            return os.fspath(self.path)
        return f"{os.fspath(self.path)}:{self.key + ':' if self.key else ''}{self.index}"


def _find_arrays(root: Path) -> list[Path]:
    """.npy / .npz files under root, skipping hidden names like find_images does."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, n) for n in filenames if not n.startswith(".") and _suffix(n) in ARRAY_EXTENSIONS]
    return found


def _suffix(name: str | os.PathLike) -> str:
    return os.path.splitext(name)[1].lower()


def _read_header(f: BinaryIO) -> tuple[tuple[int, ...], np.dtype]:
    major, _ = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(f)
    return shape, dtype


def _array_headers(path: Path) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    """(key, shape, dtype) of each array in a .npy / .npz, from the headers alone: no data, no pickles."""
    if _suffix(path) == ".npy":
        with open(path, "rb") as f:
            return [("", *_read_header(f))]
    headers = []
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():  # np.savez order
            with archive.open(member) as f:
                headers.append((member.removesuffix(".npy"), *_read_header(f)))
    return headers


def _is_raw(label: str, shape: tuple[int, ...], dtype: np.dtype, size: tuple[int, int]) -> bool:
    """True for uint8 NHWC images, False for float NCHW inputs at `size`; anything else is an error."""
    height, width = size
    if np.issubdtype(dtype, np.floating) and tuple(shape[1:]) == (3, height, width):
        return False
    if dtype == np.uint8 and len(shape) == 4 and shape[3] == 3 and min(shape[1:3], default=0) > 0:
        return True
    raise CalibrationDataError(
        f"{label}: array of shape {tuple(shape)} and dtype {dtype} is not calibration data; expected float32 "
        f"(N, 3, {height}, {width}) preprocessed inputs or uint8 (N, H, W, 3) RGB images"
    )


def _array_candidates(path: Path, size: tuple[int, int]) -> list[_Candidate]:
    try:
        headers = _array_headers(path)
    except _ARRAY_READ_ERRORS as exc:
        raise _unreadable(path, exc) from None
    found = []
    for key, shape, dtype in headers:
        label = os.fspath(path) + (f" [{key}]" if key else "")
        raw = _is_raw(label, shape, dtype, size)
        found += [_Candidate(path, key, i, raw) for i in range(shape[0])]
    return found


def _candidates(root: Path, size: tuple[int, int]) -> tuple[list[_Candidate], list[tuple[str, str]]]:
    """Every sample under root in a stable order, and the array files that could not be read."""
    if not root.exists():
        raise CalibrationDataError(f"calibration data {os.fspath(root)!r} does not exist")
    if root.is_dir():
        files = sorted(find_images(root) + _find_arrays(root))
    elif _suffix(root) in ARRAY_EXTENSIONS | IMAGE_EXTENSIONS:
        files = [root]
    else:
        raise CalibrationDataError(f"calibration data {os.fspath(root)!r} is not a directory or a .npy/.npz file")
    found: list[_Candidate] = []
    skipped: list[tuple[str, str]] = []
    for path in files:
        if _suffix(path) not in ARRAY_EXTENSIONS:
            found.append(_Candidate(path))
            continue
        try:
            found += _array_candidates(path, size)
        except ImageError as exc:
            skipped.append((os.fspath(path), _reason(exc, path)))
    return found, skipped


def _unreadable(path: Path, exc: Exception) -> ImageError:
    return ImageError(f"cannot read array file {os.fspath(path)!r}: {' '.join(str(exc).split()) or type(exc).__name__}")


def _reason(exc: ImageError, path: Path) -> str:
    """The why of a read error, without the 'cannot read ... path:' prefix that the file column repeats."""
    return str(exc).split(f"{os.fspath(path)!r}: ", 1)[-1]


def _open_array(path: Path, key: str) -> np.ndarray:
    """A .npy memory-mapped (rows read on demand) or one .npz member; wrapped in a 1-entry cache per load."""
    if not key:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    with np.load(path, allow_pickle=False) as archive:
        return archive[key]


def _decode(c: _Candidate, config: PreprocessConfig, open_array: Callable[[Path, str], np.ndarray]) -> np.ndarray:
    """One candidate to a float32 (3, H, W) input; ImageError when the file cannot be read."""
    if c.key is None:
        return preprocess_image(load_image(c.path), config)
    try:
        row = np.asarray(open_array(c.path, c.key)[c.index])
    except _ARRAY_READ_ERRORS as exc:
        raise _unreadable(c.path, exc) from None
    if c.raw:
        return preprocess_image(Image.fromarray(np.ascontiguousarray(row)), config)
    if not np.isfinite(row).all():
        raise CalibrationDataError(f"{c.name}: preprocessed input holds NaN or infinite values")
    return row.astype(np.float32)


def _read(
    candidates: list[_Candidate], target: int, seed: int, config: PreprocessConfig, progress: Progress | None
) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Decode `target` samples in a seeded order, replacing unreadable ones with the next candidates."""
    count = len(candidates)
    order = np.arange(count) if target == count else np.random.default_rng(seed).permutation(count)
    inputs = np.empty((target, 3, *config.image_size), dtype=np.float32)
    used: list[int] = []
    skipped: list[tuple[str, str]] = []
    open_array, position = functools.lru_cache(maxsize=1)(_open_array), 0  # candidates come in file order
    while len(used) < target and position < count:
        batch = sorted(order[position : position + target - len(used)].tolist())  # file order within a round
        position += len(batch)
        for i in batch:
            try:
                inputs[len(used)] = _decode(candidates[i], config, open_array)
                used.append(i)
            except ImageError as exc:
                skipped.append((os.fspath(candidates[i].path), _reason(exc, candidates[i].path)))
            if progress is not None:
                progress(len(used) + len(skipped), min(target + len(skipped), count))
    inputs = inputs[: len(used)]
    if used != sorted(used):  # replacements came later: put everything back in candidate order
        inputs, used = inputs[np.argsort(used, kind="stable")], sorted(used)
    return inputs, used, skipped


def inputs_digest(inputs: np.ndarray) -> str:
    """sha256 over shape and float32 little-endian bytes: equal data gives equal keys on any machine."""
    data = np.ascontiguousarray(inputs, dtype="<f4")
    digest = hashlib.sha256(f"float32{tuple(data.shape)}".encode())
    digest.update(memoryview(data).cast("B"))
    return digest.hexdigest()


def load_calibration_set(
    source: str | os.PathLike,
    preprocess: PreprocessConfig,
    *,
    samples: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> CalibrationSet:
    """Read, sample and preprocess calibration data; see the module docstring for what is accepted.

    With ``samples`` below the number available, a seeded subset is chosen before anything is decoded and
    read in file order; unreadable files are skipped, counted, and replaced by the next candidates of the
    same seeded order. ``progress(done, total)`` is called after each file read.
    """
    root = Path(source).expanduser()
    candidates, skipped = _all_candidates(root, preprocess)
    return _load(candidates, skipped, root, preprocess, samples, seed, progress)


def load_calibration_split(
    source: str | os.PathLike,
    preprocess: PreprocessConfig,
    *,
    samples: int | None = None,
    eval_samples: int | None = None,
    seed: int = 0,
) -> tuple[CalibrationSet, CalibrationSet]:
    """(calibration part, held-out evaluation part) of one source, disjoint and deterministic.

    The sorted candidates alternate: even positions calibrate, odd ones are held out, so each part keeps
    every class folder's share and the split depends on the files alone (not on the seed). `samples` and
    `eval_samples` then take seeded subsets of each part as `load_calibration_set` does.
    """
    root = Path(source).expanduser()
    candidates, skipped = _all_candidates(root, preprocess)
    if len(candidates) < 2:
        _load(candidates, skipped, root, preprocess, None, seed, None)  # unreadable data: its own error first
        raise CalibrationDataError(
            f"{os.fspath(root)!r} holds {len(candidates)} sample(s): a held-out split needs at least 2 "
            "(or pass --images with evaluation images)"
        )
    calibration = _load(candidates[0::2], skipped, root, preprocess, samples, seed, None)
    evaluation = _load(candidates[1::2], [], root, preprocess, eval_samples, seed, None)
    return calibration, evaluation


def _all_candidates(root: Path, preprocess: PreprocessConfig) -> tuple[list[_Candidate], list[tuple[str, str]]]:
    candidates, skipped = _candidates(root, preprocess.image_size)
    if not candidates and not skipped:
        kinds = ", ".join(sorted(IMAGE_EXTENSIONS | ARRAY_EXTENSIONS))
        raise CalibrationDataError(f"no calibration samples in {os.fspath(root)!r} (looked for {kinds})")
    return candidates, skipped


def _load(
    candidates: list[_Candidate],
    skipped: list[tuple[str, str]],
    root: Path,
    preprocess: PreprocessConfig,
    samples: int | None,
    seed: int,
    progress: Progress | None,
) -> CalibrationSet:
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise InvalidOptionError(f"calibration samples must be a positive integer, got {samples!r}")
    target = len(candidates) if samples is None else min(samples, len(candidates))
    inputs, used, unreadable = _read(candidates, target, seed, preprocess, progress)
    skipped = [*skipped, *unreadable]
    if not used:
        file, why = skipped[0]
        raise CalibrationDataError(
            f"none of the {len(skipped)} calibration file(s) in {os.fspath(root)!r} could be read "
            f"(first: {file}: {why})"
        )
    return CalibrationSet(
        inputs=inputs,
        sources=[candidates[i].name for i in used],
        skipped=skipped,
        digest=inputs_digest(inputs),
        source=os.fspath(root),
        available=len(candidates),
    )


class _BatchReader:
    """Batches ``{input_name: (B, 3, H, W)}`` of a CalibrationSet, the last one possibly shorter.

    Follows ONNX Runtime's CalibrationDataReader protocol: ``get_next`` returns None at the end,
    ``rewind`` starts over, ``len`` counts batches and ``set_range`` limits them (CalibStridedMinMax).
    """

    def __init__(self, cset: CalibrationSet, input_name: str = INPUT_NAME, batch_size: int = 1) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidOptionError(f"calibration batch size must be a positive integer, got {batch_size!r}")
        self.inputs, self.input_name, self.batch_size = cset.inputs, input_name, batch_size
        self._count = -(-len(cset.inputs) // batch_size)
        self.set_range(0, self._count)

    def __len__(self) -> int:
        return self._count

    def set_range(self, start_index: int, end_index: int) -> None:
        self._start, self._end = max(0, start_index), min(end_index, self._count)
        self._next = self._start

    def rewind(self) -> None:
        self._next = self._start

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._end:
            return None
        begin = self._next * self.batch_size
        self._next += 1
        return {self.input_name: self.inputs[begin : begin + self.batch_size]}


@functools.cache
def _reader_class() -> type:
    """CalibrationReader: the batch reader as a real onnxruntime CalibrationDataReader subclass."""
    quantization = _deps.require("onnxruntime.quantization", "INT8 calibration")

    class CalibrationReader(_BatchReader, quantization.CalibrationDataReader):
        __doc__, __qualname__ = _BatchReader.__doc__, "CalibrationReader"

    return CalibrationReader


def calibration_reader(cset: CalibrationSet, input_name: str = INPUT_NAME, batch_size: int = 1) -> _BatchReader:
    """A CalibrationDataReader over ``cset`` for ``onnxruntime.quantization.quantize_static``."""
    return _reader_class()(cset, input_name, batch_size)


def __getattr__(name: str) -> object:
    """``CalibrationReader`` is built on first access, so importing this module never loads onnxruntime."""
    if name == "CalibrationReader":
        return _reader_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
