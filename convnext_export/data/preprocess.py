"""The official ConvNeXt evaluation transform, in Pillow + numpy only.

This reproduces ``build_transform(is_train=False)`` from facebookresearch/ConvNeXt ``datasets.py`` as
torchvision runs it on PIL images, bit for bit, without importing torch (so it runs on a Jetson that has
only numpy and Pillow):

* input size >= 384: ``Resize((size, size), BICUBIC)`` -- a warp to a square, no crop;
* below 384: ``Resize(int(size / crop_pct), BICUBIC)`` on the shorter side (the longer side truncated with
  ``int``), then ``CenterCrop(size)`` (offsets ``int(round(margin / 2))``), ``ToTensor`` and ``Normalize``.

Non-square targets ``(H, W)`` generalise this: below 384 (``min(H, W) < 384``) the image is scaled, keeping
its aspect ratio, just enough to cover ``(int(H / crop_pct), int(W / crop_pct))`` -- the binding side gets
its target exactly and the other is truncated as torchvision does -- then the centre ``H x W`` is cut out.
At ``min(H, W) >= 384`` the image is warped to ``(H, W)``. A square target gives the torchvision rule.

An artifact exported with ``--fold-normalization`` normalises its own input (``normalization_folded``): it gets
the cropped RGB pixels as float32 in 0-255, before ``ToTensor``'s scaling and ``Normalize``.
"""

from __future__ import annotations

import numbers
import os
import struct
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from convnext_export.contract import IMAGENET_MEAN, IMAGENET_STD, PIXEL_MAX
from convnext_export.errors import ImageError, InvalidOptionError

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


DEFAULT_CROP_PCT = 224 / 256  # the official eval crop ratio below 384


WARP_THRESHOLD = 384  # the official transform warps instead of cropping from this size up


_Resampling = getattr(Image, "Resampling", Image)  # Pillow < 9.1 (old Jetson images): Image.BICUBIC


_RESAMPLE = {
    "bicubic": _Resampling.BICUBIC,
    "bilinear": _Resampling.BILINEAR,
    "nearest": _Resampling.NEAREST,
    "lanczos": _Resampling.LANCZOS,
}


# What Pillow raises on broken files varies by plugin; all of them mean "this file is not a usable image".
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_size(image_size: object) -> tuple[int, int]:
    if _is_int(image_size):
        image_size = (image_size, image_size)
    if not isinstance(image_size, Sequence) or len(image_size) != 2 or not all(map(_is_int, image_size)):
        raise InvalidOptionError(f"image_size must be an int or (height, width) ints, got {image_size!r}")
    height, width = int(image_size[0]), int(image_size[1])
    if height <= 0 or width <= 0:
        raise InvalidOptionError(f"image_size must be positive, got {(height, width)}")
    return height, width


def _check_triple(name: str, values: object, positive: bool) -> tuple[float, float, float]:
    try:
        triple = tuple(float(v) for v in values)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise InvalidOptionError(f"{name} must be 3 numbers, got {values!r}") from None
    if len(triple) != 3 or not all(np.isfinite(triple)):
        raise InvalidOptionError(f"{name} must be 3 finite numbers, got {values!r}")
    if positive and min(triple) <= 0:
        raise InvalidOptionError(f"{name} values must be > 0, got {values!r}")
    return triple  # type: ignore[return-value]


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything needed to turn a picture into the network input; stored with exported models."""

    image_size: tuple[int, int]  # (height, width) of the network input
    crop_pct: float  # fraction of the resized image kept by the centre crop; unused when warp=True
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    warp: bool = False  # True: resize straight to image_size, no crop (official behaviour at >= 384)
    # True: the network applies mean and std itself (folded into its stem: export --fold-normalization), so the
    # input is the RGB pixels as float32 in 0-255; mean and std still record the normalisation it applies.
    normalization_folded: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise lists from JSON into tuples once, here
        set_(self, "image_size", _check_size(self.image_size))
        if isinstance(self.crop_pct, bool) or not isinstance(self.crop_pct, numbers.Real):
            raise InvalidOptionError(f"crop_pct must be a number in (0, 1], got {self.crop_pct!r}")
        if not 0.0 < self.crop_pct <= 1.0:
            raise InvalidOptionError(f"crop_pct must be in (0, 1], got {self.crop_pct!r}")
        set_(self, "crop_pct", float(self.crop_pct))
        if self.interpolation not in _RESAMPLE:
            raise InvalidOptionError(
                f"unknown interpolation {self.interpolation!r}; valid: {', '.join(sorted(_RESAMPLE))}"
            )
        set_(self, "mean", _check_triple("mean", self.mean, positive=False))
        set_(self, "std", _check_triple("std", self.std, positive=True))
        set_(self, "warp", bool(self.warp))
        set_(self, "normalization_folded", bool(self.normalization_folded))

    def to_dict(self) -> dict:
        """JSON-friendly form (lists, not tuples), e.g. for ONNX metadata."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error so typos do not pass silently."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidOptionError(f"unknown preprocess config keys: {', '.join(sorted(unknown))}")
        return cls(**d)

    def resize_geometry(self, width: int, height: int) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
        """(resized (w, h), crop box (left, top, right, bottom)) for a source image of that size."""
        if not (_is_int(width) and _is_int(height)) or width <= 0 or height <= 0:
            raise InvalidOptionError(f"image width/height must be positive ints, got {width}x{height}")
        out_h, out_w = self.image_size
        if self.warp:
            return (out_w, out_h), (0, 0, out_w, out_h)
        target_h, target_w = int(out_h / self.crop_pct), int(out_w / self.crop_pct)
        # The side needing the larger scale binds; on a tie (w <= h) width binds, like torchvision.
        if target_w * height >= target_h * width:
            new_w, new_h = target_w, int(target_w * height / width)
        else:
            new_w, new_h = int(target_h * width / height), target_h
        left = int(round((new_w - out_w) / 2.0))
        top = int(round((new_h - out_h) / 2.0))
        return (new_w, new_h), (left, top, left + out_w, top + out_h)


def eval_config(
    image_size: int | tuple[int, int], crop_pct: float | None = None, interpolation: str = "bicubic"
) -> PreprocessConfig:
    """The official eval transform for this input size (crop_pct 0.875 below 384, warp at >= 384).

    An explicit ``crop_pct`` at >= 384 is honoured with a resize + centre crop instead of the warp (the
    official script ignores it there; silently dropping a user's option would be worse).
    """
    size = _check_size(image_size)
    if crop_pct is None and min(size) >= WARP_THRESHOLD:
        return PreprocessConfig(size, 1.0, interpolation, warp=True)
    return PreprocessConfig(size, DEFAULT_CROP_PCT if crop_pct is None else crop_pct, interpolation)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with 8 bits per channel. High-bit-depth greyscale (16-bit PNG/TIFF: Pillow modes I;16*, I) is scaled
    from its 16-bit range and float images (F) from [0, 1], or from their own range when they exceed it; a plain
    convert("RGB") would clip them, turning almost every pixel of a 16-bit scan white."""
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image if image.mode == "RGB" else image.convert("RGB")
    values = np.asarray(image, dtype=np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and high <= 65535):
        low, high = 0.0, 65535.0
    elif image.mode == "F" and low >= 0 and high <= 1:
        low, high = 0.0, 1.0
    scaled = (values - low) / ((high - low) or 1.0) * 255.0
    return Image.fromarray(np.rint(scaled).clip(0, 255).astype(np.uint8), "L").convert("RGB")


def load_image(path: str | os.PathLike, *, exif_transpose: bool = False) -> Image.Image:
    """Open, fully decode and convert to RGB, so broken files fail here with :class:`ImageError`.

    EXIF orientation is ignored by default because the training pipelines ignore it too.
    """
    try:
        with Image.open(path) as im:
            im.load()  # force decoding: truncated files only fail once pixels are read
            if exif_transpose:
                im = ImageOps.exif_transpose(im)
            return to_rgb(im)
    except Image.UnidentifiedImageError:
        reason = "not a recognised image format"
    except _DECODE_ERRORS as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    reason = " ".join(str(reason).split())  # the CLI prints errors as one line
    raise ImageError(f"cannot read image {os.fspath(path)!r}: {reason}")


def preprocess_image(
    image: Image.Image | str | os.PathLike, config: PreprocessConfig, out: np.ndarray | None = None
) -> np.ndarray:
    """One image (PIL or path) to a float32 (3, H, W) C-contiguous array, as the network expects; into `out`
    (a batch row) when given, so a batch is filled without another copy."""
    if not isinstance(image, Image.Image):
        image = load_image(image)
    elif image.mode != "RGB":
        image = to_rgb(image)
    (new_w, new_h), (left, top, right, bottom) = config.resize_geometry(*image.size)
    # Exactly torchvision's call on PIL images: no box, no reducing_gap.
    resized = image.resize((new_w, new_h), _RESAMPLE[config.interpolation])
    planes = resized.crop((left, top, right, bottom)).split()  # R, G, B: each plane converts contiguously
    x = np.empty((3, bottom - top, right - left), np.float32) if out is None else out
    for channel, plane in enumerate(planes):
        x[channel] = np.asarray(plane, dtype=np.uint8)
    if not config.normalization_folded:  # else the network normalises: it takes the 0-255 pixels
        normalize_planes(x, config)
    return x


def normalize_planes(planes: np.ndarray, config: PreprocessConfig) -> None:
    """ToTensor's scaling then Normalize, in place on float32 (3, H, W) RGB planes in 0-255: float32 arithmetic in
    torchvision's operation order, so results match it bit for bit (model.normalization does the same in torch).
    Whole channel planes, because numpy runs them several times faster than a last axis of 3."""
    planes /= np.float32(PIXEL_MAX)
    planes -= np.asarray(config.mean, np.float32)[:, None, None]
    planes /= np.asarray(config.std, np.float32)[:, None, None]


def preprocess_batch(images: Sequence[Image.Image | str | os.PathLike], config: PreprocessConfig) -> np.ndarray:
    """Several images to a float32 (N, 3, H, W) batch; an empty sequence gives N = 0."""
    height, width = config.image_size
    batch = np.empty((len(images), 3, height, width), dtype=np.float32)
    for i, image in enumerate(images):
        preprocess_image(image, config, out=batch[i])
    return batch


def find_images(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root``, recursively, sorted for reproducible calibration/eval order.

    Matches :data:`IMAGE_EXTENSIONS` case-insensitively; hidden files and directories (names starting
    with ``.``, e.g. macOS ``._x.jpg`` metadata files) are skipped since they are never real images.
    """
    root = Path(root)
    if not root.is_dir():
        why = "is not a directory" if root.exists() else "does not exist"
        raise ImageError(f"image directory {os.fspath(root)!r} {why}")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath, name))
    return sorted(found)
