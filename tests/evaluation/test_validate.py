"""validate_runner: an exact export passes, an altered one fails readably; batching, padding and the inputs."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from PIL import Image

from convnext_export.contract import INPUT_NAME, LOGITS_NAME
from convnext_export.data.preprocess import eval_config
from convnext_export.errors import ImageError, InvalidOptionError
from convnext_export.evaluation.thresholds import thresholds_for
from convnext_export.evaluation.validate import (
    ValidationError,
    image_inputs,
    parse_batch_sizes,
    random_inputs,
    validate_runner,
)
from convnext_export.model.factory import create_model
from convnext_export.runners import OrtRunner, Runner, TorchRunner

SIZE = 64


# --- validate_runner --------------------------------------------------------------------------------------


def export_onnx(model: torch.nn.Module, path: Path, *, dynamic: bool = True) -> Path:
    axes = {INPUT_NAME: {0: "batch"}, LOGITS_NAME: {0: "batch"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros(2, 3, SIZE, SIZE),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=[INPUT_NAME],
            output_names=[LOGITS_NAME],
            dynamic_axes=axes,
        )
    return path


@pytest.fixture(scope="module")
def reference() -> TorchRunner:
    torch.manual_seed(0)
    return TorchRunner(create_model("test", num_classes=10))


@pytest.fixture(scope="module")
def exact_onnx(reference: TorchRunner, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(reference.model, tmp_path_factory.mktemp("onnx") / "test.onnx")


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    return {"random": random_inputs(5, (SIZE, SIZE), seed=0)}


def test_an_exact_export_passes(reference: TorchRunner, exact_onnx: Path, inputs: dict) -> None:
    result = validate_runner(reference, OrtRunner(exact_onnx), inputs, batch_sizes=[1, 4], artifact="test.onnx")
    assert result.passed, result.failure_summary()
    assert result.failures == [] and result.failure_summary() == ""
    assert [(r["inputs"], r["output"], r["batch_size"], r["status"]) for r in result.rows] == [
        ("random", LOGITS_NAME, 1, "passed"),
        ("random", LOGITS_NAME, 4, "passed"),
    ]
    assert all(r["samples"] == 5 for r in result.rows)  # 5 samples at batch 4: two chunks, one padded
    report = result.to_dict()
    json.dumps(report, allow_nan=False)
    assert report["passed"] and report["artifact"] == "test.onnx" and report["reference"] == "torch-cpu"
    result.raise_for_failures()  # no error


def test_altered_weights_fail_with_readable_lines(reference: TorchRunner, exact_onnx: Path, tmp_path: Path) -> None:
    # A uniform +0.05 on the head would cancel out (LayerNorm'd features sum to ~0): perturb with noise.
    graph = onnx.load(str(exact_onnx))
    weight = next(i for i in graph.graph.initializer if i.name == "head.weight")
    array = numpy_helper.to_array(weight)
    noise = 0.05 * np.random.default_rng(0).standard_normal(array.shape).astype(np.float32)
    weight.CopyFrom(numpy_helper.from_array(array + noise, weight.name))
    onnx.save(graph, str(tmp_path / "altered.onnx"))
    inputs = {"random": random_inputs(4, SIZE, seed=1)}
    altered = OrtRunner(tmp_path / "altered.onnx")
    result = validate_runner(reference, altered, inputs, batch_sizes="2")
    assert not result.passed
    lines = "\n".join(result.failures)
    assert re.search(r"^logits @ batch 2 \(random\): cosine -?[0-9.]+ < 0\.99999$", lines, re.M), lines
    assert re.search(r"^logits @ batch 2 \(random\): max_abs_rel [0-9.]+ > 0\.0001$", lines, re.M), lines
    summary = result.failure_summary()
    assert "\n" not in summary and all(f in summary for f in result.failures)
    with pytest.raises(ValidationError, match="failed validation against torch-cpu"):
        result.raise_for_failures()
    # The same artifact under looser, user-given thresholds passes: thresholds apply per row.
    loose = thresholds_for("fp32", min_cosine=-1.0, min_top1_agreement=0.0, min_top5_agreement=0.0, max_abs_rel=10.0)
    assert validate_runner(reference, altered, inputs, batch_sizes=[2], thresholds=loose).passed


def test_static_batch_artifacts_record_other_sizes_as_skipped(
    reference: TorchRunner, tmp_path: Path, inputs: dict
) -> None:
    static = OrtRunner(export_onnx(reference.model, tmp_path / "static.onnx", dynamic=False))
    result = validate_runner(reference, static, inputs, batch_sizes=[1, 8])
    assert result.passed, result.failure_summary()
    by_size = {r["batch_size"]: r for r in result.rows}
    assert set(by_size) == {1, 2, 8}  # the static batch 2 is validated even though not requested
    assert by_size[2]["status"] == "passed" and by_size[2]["samples"] == 5
    assert by_size[1]["status"] == by_size[8]["status"] == "skipped"
    assert "static batch of 2" in by_size[1]["reason"] and len(result.skipped) == 2


class Affine(Runner):
    """A numpy runner (y = scale * mean over pixels) that records the batch sizes it was given."""

    def __init__(self, name: str, scale: float = 1.0, outputs: tuple[str, ...] = (LOGITS_NAME,)) -> None:
        self.name, self.scale, self.input_name, self.output_names = name, scale, INPUT_NAME, outputs
        self.seen: list[int] = []

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.seen.append(len(batch))
        logits = self.scale * batch.mean(axis=(2, 3))
        return {name: logits + i for i, name in enumerate(self.output_names)}

    def _release(self) -> None:
        pass


def test_padding_runs_exact_batches_and_keeps_only_real_samples() -> None:
    samples = random_inputs(5, (4, 4), seed=3)
    ref, cand = Affine("ref"), Affine("cand")
    result = validate_runner(ref, cand, {"random": samples}, batch_sizes=[4, 8], classification=False)
    assert result.passed and cand.seen == [4, 4, 8]  # 5 samples: 4 + (1 padded to 4); then 5 padded to 8
    assert [r["samples"] for r in result.rows] == [5, 5]
    outputs = cand.infer_all(samples, 4)[LOGITS_NAME]
    np.testing.assert_array_equal(outputs, samples.mean(axis=(2, 3)))


def test_an_output_on_one_side_only_is_a_failure() -> None:
    samples = {"images": random_inputs(2, (4, 4))}
    result = validate_runner(Affine("ref"), Affine("cand", outputs=("other",)), samples, batch_sizes=[1])
    assert result.failures == [
        "logits @ batch 1 (images): missing from candidate (it has: other)",
        "other @ batch 1 (images): missing from reference (it has: logits)",
    ]


def test_validate_runner_refuses_bad_inputs() -> None:
    with pytest.raises(InvalidOptionError, match="no input sets"):
        validate_runner(Affine("a"), Affine("b"), {}, batch_sizes=[1])
    with pytest.raises(InvalidOptionError, match="non-empty NCHW"):
        validate_runner(Affine("a"), Affine("b"), {"x": np.zeros((0, 3, 4, 4))}, batch_sizes=[1])


# --- inputs -----------------------------------------------------------------------------------------------


def test_random_inputs_are_seeded_standard_normal() -> None:
    a, b = random_inputs(8, (32, 48), seed=7), random_inputs(8, (32, 48), seed=7)
    assert a.shape == (8, 3, 32, 48) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, random_inputs(8, (32, 48), seed=8))
    assert abs(a.mean()) < 0.05 and abs(a.std() - 1) < 0.05
    with pytest.raises(InvalidOptionError):
        random_inputs(0, SIZE)


def test_image_inputs_preprocess_a_folder(tmp_path: Path) -> None:
    for i, color in enumerate(["red", "blue"]):
        Image.new("RGB", (80 + 10 * i, 70), color).save(tmp_path / f"{i}.png")
    config = eval_config(SIZE)
    batch = image_inputs(tmp_path, config)
    assert batch.shape == (2, 3, SIZE, SIZE) and batch.dtype == np.float32
    assert batch[0, 0].mean() > batch[1, 0].mean()  # sorted order: red first
    assert image_inputs(tmp_path, config, limit=1).shape[0] == 1


def test_image_inputs_from_an_empty_folder_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no images found in") as info:
        image_inputs(tmp_path, eval_config(SIZE))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("text", "expected"), [("1,8", [1, 8]), (" 4 ", [4]), ("8, 1, 8", [8, 1]), ([2, 16], [2, 16])])
def test_parse_batch_sizes(text: object, expected: list[int]) -> None:
    assert parse_batch_sizes(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "1,,8", "0", "-1", "x", "1.5", [0], [True]])
def test_parse_batch_sizes_errors(text: object) -> None:
    with pytest.raises(InvalidOptionError, match="batch sizes"):
        parse_batch_sizes(text)  # type: ignore[arg-type]


def test_noise_for_a_model_that_normalises_itself_is_in_pixel_units() -> None:
    pixels = random_inputs(4, (16, 16), seed=2, normalization_folded=True)
    assert pixels.dtype == np.float32 and pixels.min() >= 0 and pixels.max() <= 255 and pixels.std() > 50
