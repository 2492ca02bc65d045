"""Inference on image files: labels and probabilities from any artifact, preprocessed as it records.

The artifact says how to read an image (its preprocessing metadata) and what the classes are called
(labels recorded at export: the checkpoint's own, or ImageNet-1k names for a 1000-way head).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convnext_export.data.labels import read_labels_file
from convnext_export.data.preprocess import PreprocessConfig, eval_config, preprocess_batch
from convnext_export.errors import InvalidOptionError
from convnext_export.export.metadata import artifact_metadata
from convnext_export.runners.backends import open_runner

if TYPE_CHECKING:
    from convnext_export.contract import ArtifactMetadata


@dataclass
class Prediction:
    image: str
    top: list[tuple[str, float]]  # (label, probability), most likely first

    def to_dict(self) -> dict:
        return {**asdict(self), "top": [{"label": label, "probability": p} for label, p in self.top]}


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)  # stable for large logits
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def top_k(probabilities: np.ndarray, labels: list[str], k: int) -> list[list[tuple[str, float]]]:
    """The k most likely (label, probability) pairs per row."""
    order = np.argsort(-probabilities, axis=1)[:, :k]
    return [[(labels[i], float(row[i])) for i in idx] for row, idx in zip(probabilities, order, strict=True)]


def class_names(metadata: ArtifactMetadata | None, labels_file: str | os.PathLike[str] | None) -> list[str] | None:

    classes = getattr(metadata, "num_classes", None)
    if labels_file is not None:
        return read_labels_file(labels_file, classes)
    return list(metadata.labels) if metadata is not None and metadata.labels else None


def predict(
    artifact: str | os.PathLike[str],
    images: list[str | os.PathLike[str]],
    *,
    top: int = 5,
    labels_file: str | os.PathLike[str] | None = None,
    backend: str = "auto",
) -> list[Prediction]:
    """Top-`top` labels and probabilities for each image, through the artifact's own preprocessing."""

    artifact = Path(artifact)
    metadata = artifact_metadata(artifact)
    if metadata is not None and (metadata.features or metadata.num_classes is None):
        raise InvalidOptionError(f"{artifact.name} returns features, not class scores: infer needs a classifier")
    if metadata is None and labels_file is None:
        raise InvalidOptionError(f"{artifact.name} records no preprocessing or labels: pass --labels")
    preprocess = PreprocessConfig.from_dict(metadata.preprocessing) if metadata else eval_config(224)
    batch = preprocess_batch(list(images), preprocess)
    with open_runner(artifact, backend) as runner:
        logits = runner.infer_all(batch, runner.static_batch or min(len(batch), 8))[runner.output_names[0]]
    names = class_names(metadata, labels_file) or [str(i) for i in range(logits.shape[1])]
    if len(names) != logits.shape[1]:
        raise InvalidOptionError(f"{len(names)} labels for a model with {logits.shape[1]} classes")
    ranked = top_k(softmax(logits), names, min(top, logits.shape[1]))
    return [Prediction(str(image), pairs) for image, pairs in zip(images, ranked, strict=True)]
