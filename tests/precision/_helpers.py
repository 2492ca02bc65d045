"""Shared by the precision tests: accuracy of an ONNX artifact on the digits test images, and the INT8 limit."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from convnext_export.runners import OrtRunner

MAX_DROP = 0.01  # INT8 accuracy may drop at most 1.0 point below FP32


def accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of the ONNX file at `path` on images `x` with labels `y` (ONNX Runtime, batches of 40)."""
    with OrtRunner(path) as runner:
        return float(np.mean(runner.infer_all(x, 40)["logits"].argmax(1) == y))


def modelopt_installed() -> bool:
    return importlib.util.find_spec("modelopt") is not None
