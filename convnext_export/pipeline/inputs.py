"""What every artifact is judged on: seeded noise (the FP32 exactness check) and real images, and where the
images came from (--images, the held-out half of --calib), with in-sample overlap reported."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convnext_export.data.preprocess import PreprocessConfig, preprocess_batch
from convnext_export.errors import InvalidOptionError
from convnext_export.evaluation.thresholds import THRESHOLDS
from convnext_export.evaluation.validate import RANDOM_SET, image_files, random_inputs
from convnext_export.pipeline.request import BuildRequest, Progress
from convnext_export.precision.calibration import load_calibration_set, load_calibration_split

if TYPE_CHECKING:
    from convnext_export.contract import ArtifactMetadata
    from convnext_export.evaluation.validate import ValidationResult
    from convnext_export.precision.calibration import CalibrationSet


HELD_OUT = "held-out calibration images"


RANDOM_WEIGHTS = "random weights: accuracy verdicts on an untrained model carry no information"


NO_IMAGES = "no real images were given: reduced precision is judged on real images only (pass --images)"


@dataclass
class Evaluation:
    """What every artifact is judged on: seeded noise (the FP32 exactness check) and real images (every
    precision), with where the images came from. Reduced precision is never gated on noise."""

    noise: np.ndarray
    images: np.ndarray | None = None
    images_name: str = "images"
    description: dict = field(default_factory=dict)  # source, images, held_out, in_sample, overlap, note
    informational: str | None = None  # why no verdict here may decide an exit code (random weights)

    @property
    def fp32_sets(self) -> dict[str, np.ndarray]:
        return {RANDOM_SET: self.noise, **({self.images_name: self.images} if self.images is not None else {})}

    @property
    def sets(self) -> dict[str, np.ndarray]:
        """Reduced precision: the real images; without any, noise as information only."""
        return {self.images_name: self.images} if self.images is not None else {RANDOM_SET: self.noise}

    @property
    def judged_inputs(self) -> np.ndarray:
        return self.images if self.images is not None else self.noise

    def describe(self, validation: ValidationResult) -> None:
        """Attach where the images came from; mark verdicts that carry no information as such."""
        validation.evaluation = dict(self.description)
        statistical = validation.thresholds.statistical
        reason = self.informational if statistical else None
        if statistical and self.images is None:
            reason = reason or NO_IMAGES
        validation.informational = reason


def describe_images(files: list[str], source: str, held_out: bool, calibration: CalibrationSet | None) -> dict:
    """The evaluation record: how many images, from where, and whether calibration saw any of them."""
    used = {os.path.realpath(s) for s in calibration.sources} if calibration is not None else set()
    overlap = sum(os.path.realpath(f) in used for f in files)
    if held_out:
        note = f"held out: every other file of {source} (sorted), never used for calibration"
    elif overlap:
        note = f"IN-SAMPLE: {overlap} of {len(files)} evaluation images were also calibration images"
    else:
        note = "disjoint from the calibration images"
    return {
        "source": source,
        "images": len(files),
        "held_out": held_out,
        "in_sample": overlap > 0,
        "overlap": overlap,
        "note": note,
    }


def evaluation_data(
    request: BuildRequest, metadata: ArtifactMetadata, step: Progress
) -> tuple[CalibrationSet | None, Evaluation]:
    """Calibration data (INT8) and the evaluation set: --images, else the held-out half of --calib when INT8
    calibrates on the rest, else all of --calib (FP16 only)."""

    preprocess = PreprocessConfig.from_dict(metadata.preprocessing)
    int8 = bool(request.int8_targets)
    held_out = request.calib is not None and int8 and request.images is None
    calibration = None
    if request.calib is not None and int8 and not held_out:
        step(f"reading calibration data from {request.calib}")
        calibration = load_calibration_set(
            request.calib, preprocess, samples=request.calib_samples, seed=request.model.seed
        )
    elif held_out:
        step(f"reading calibration data from {request.calib} (every other file held out for evaluation)")
    evaluation, split = load_evaluation(
        preprocess,
        samples=request.samples,
        seed=request.model.seed,
        images=request.images,
        calib=request.calib if request.precisions != ("fp32",) else None,
        held_out=held_out,
        eval_samples=request.eval_samples,
        calib_samples=request.calib_samples,
        calibration=calibration,
        random_init=request.model.random_init,
    )
    return calibration or split, evaluation


def load_evaluation(
    preprocess: PreprocessConfig,
    *,
    samples: int,
    seed: int,
    images: Path | None = None,
    calib: Path | None = None,
    held_out: bool = False,
    eval_samples: int | None = None,
    calib_samples: int | None = None,
    calibration: CalibrationSet | None = None,
    random_init: bool = False,
) -> tuple[Evaluation, CalibrationSet | None]:
    """The evaluation set (and, with `held_out`, the calibration part of the split): `images` if given; else
    the held-out half of `calib` (`held_out`), or all of it (nothing calibrates on it); and `samples` seeded
    noise images for the FP32 exactness check. `calibration` marks images it also holds as in-sample."""

    noise = random_inputs(
        samples, preprocess.image_size, seed=seed, normalization_folded=preprocess.normalization_folded
    )
    evaluation = Evaluation(noise, informational=RANDOM_WEIGHTS if random_init else None)
    split = None
    if images is not None:
        files = [os.fspath(f) for f in image_files(images)]
        evaluation.images = preprocess_batch(files, preprocess)
        evaluation.description = describe_images(files, os.fspath(images), False, calibration)
    elif calib is not None and held_out:
        split, held = load_calibration_split(
            calib, preprocess, samples=calib_samples, eval_samples=eval_samples, seed=seed
        )
        evaluation.images, evaluation.images_name = held.inputs, HELD_OUT
        evaluation.description = describe_images(held.sources, held.source, True, None)
    elif calib is not None:
        judged = load_calibration_set(calib, preprocess, samples=eval_samples, seed=seed)
        evaluation.images = judged.inputs
        evaluation.description = describe_images(judged.sources, judged.source, False, None)
    return evaluation, split


def require_enough_images(precisions: tuple[str, ...], evaluation: Evaluation) -> None:
    """A trained model's reduced-precision verdicts need real images, enough to mean something: a usage error
    before any quantization otherwise (random weights: the verdicts are information only anyway)."""

    reduced = [p for p in precisions if p != "fp32"]
    if not reduced or evaluation.informational is not None:
        return
    needed = max(THRESHOLDS["fp16" if p == "fp16" else "int8-trt"].min_samples for p in reduced)  # int8: either row
    found = 0 if evaluation.images is None else len(evaluation.images)
    if found < needed:
        where = evaluation.description.get("source") or "none given"
        raise InvalidOptionError(
            f"{'/'.join(reduced)} is judged on real images and needs at least {needed}; found {found} ({where}): "
            "pass --images DIR with held-out images (or a larger --calib folder, half of which is held out)"
        )
