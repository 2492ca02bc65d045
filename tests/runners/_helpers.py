"""Shared by the runner tests: the image size, and the legacy exporter the runner contract was specified with."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from convnext_export.contract import FEATURE_NAMES, INPUT_NAME, LOGITS_NAME

SIZE = 64


def export_onnx(model: torch.nn.Module, path: Path, *, dynamic: bool = True, batch: int = 2) -> Path:
    """The legacy exporter, as the issue specifies; its DeprecationWarning is expected here."""
    names = list(FEATURE_NAMES) if model.config.features_only else [LOGITS_NAME]
    axes = {n: {0: "batch"} for n in [INPUT_NAME, *names]} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros(batch, 3, SIZE, SIZE),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_axes=axes,
        )
    return path
