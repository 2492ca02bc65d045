"""The gate's streaming evaluation (the same predictions as the whole set in memory, in bounded memory), the eager
cache as run_check uses it, the artifact input checks made before any image is read, and the floors on eager's own
accuracy (chance, judged by its Wilson interval, and the user's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from convnext_export import create_model
from convnext_export.contract import LOGITS_NAME
from convnext_export.data import datasets
from convnext_export.data.datasets import Dataset, DatasetError, load_dataset
from convnext_export.data.preprocess import eval_config, preprocess_batch
from convnext_export.errors import InputSizeError
from convnext_export.evaluation.check import gate
from convnext_export.evaluation.check.gate import check_artifact_inputs, predict, reference_accuracy, run_check
from convnext_export.evaluation.check.results import CheckThresholds, Predictions, ReferenceAccuracyError
from convnext_export.runners.base import Runner
from convnext_export.runners.ort_runner import OrtRunner
from convnext_export.runners.torch_runner import TorchRunner
from tests._paths import DIGITS

WEIGHTS = DIGITS / "convnext_digits.safetensors"


@pytest.fixture(scope="module")
def model():
    return create_model(weights=WEIGHTS)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return load_dataset(DIGITS / "test", eval_config(32), limit=100)


class StaticRunner(Runner):
    """Logits that encode each image's mean pixel, at a static batch of 7: shows padding and row order."""

    name, input_name, output_names = "static", "x", (LOGITS_NAME,)
    input_shape = (7, 3, 32, 32)

    def __init__(self) -> None:
        self.batches = 0

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.batches += 1
        classes = (np.abs(batch.mean(axis=(1, 2, 3))) * 1000).astype(int) % 10  # each row on its own
        return {LOGITS_NAME: np.eye(10, dtype=np.float32)[classes]}

    def _release(self) -> None:
        pass


# --- streaming ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_streaming_predictions_are_those_of_the_whole_set_in_memory(
    backend: str, model, dataset: Dataset, digits_onnx: Path
) -> None:
    """What check computed before it streamed: every image preprocessed into one array, run in batches of 32."""
    runner = TorchRunner(model) if backend == "torch" else OrtRunner(digits_onnx)
    with runner:
        logits = runner.infer_all(preprocess_batch(dataset.files, dataset.preprocess), 32)[LOGITS_NAME]
        streamed = predict(runner, dataset, 32)
    np.testing.assert_array_equal(streamed.top1, logits.argmax(1))
    top5 = np.sort(np.argsort(-logits, axis=1)[:, :5], axis=1)
    np.testing.assert_array_equal(np.sort(streamed.topk, axis=1), top5)


def test_a_static_batch_is_padded_and_the_padding_dropped(dataset: Dataset) -> None:
    runner = StaticRunner()
    streamed = predict(runner, dataset, 32)  # the artifact's static 7 wins over the batch size asked for
    whole = runner.infer_all(preprocess_batch(dataset.files, dataset.preprocess), 7)[LOGITS_NAME]
    assert runner.batches == 2 * 15 and len(streamed.top1) == 100  # 100 images: 15 batches, the last padded
    np.testing.assert_array_equal(streamed.top1, whole.argmax(1))


def test_prediction_streams_in_bounded_memory(dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    """However many batches, the pipeline never holds more than the stream's prefetch + the one being run."""
    streams = []
    batches = Dataset.batches

    def recorded(self, *args, **kwargs):
        streams.append(batches(self, *args, **kwargs))
        return streams[-1]

    monkeypatch.setattr(Dataset, "batches", recorded)
    predict(StaticRunner(), dataset, 1, workers=2)
    (stream,) = streams
    assert len(stream) == 15 and stream.prefetch == 2
    assert stream.peak_live == stream.prefetch + 1


def test_a_head_of_another_size_is_a_dataset_error(dataset: Dataset) -> None:
    small = Dataset(dataset.targets, dataset.classes[:5], dataset.files, dataset.root, dataset.preprocess)
    with pytest.raises(DatasetError, match="returns outputs of shape"):
        predict(StaticRunner(), small, 7)


# --- before any image is read ---------------------------------------------------------------------------------


def _resized(source: Path, out: Path, size: int | None = None, classes: int | None = None) -> Path:
    model = onnx.load(source)
    if size is not None:
        for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
            dim.dim_value = size
    if classes is not None:
        model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = classes
    onnx.save(model, out)
    return out


def test_an_artifact_of_another_input_size_is_refused_before_any_image_is_read(
    dataset: Dataset, digits_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reading(*args: object) -> None:
        raise AssertionError("an image was read")

    monkeypatch.setattr(datasets, "preprocess_image", no_reading)
    monkeypatch.setattr(datasets, "_file_sha256", no_reading)
    wide = _resized(digits_onnx, tmp_path / "wide.onnx", size=64)
    with pytest.raises(InputSizeError, match=r"wide.onnx takes 3x64x64 input, the dataset is preprocessed to 3x32x32"):
        check_artifact_inputs([digits_onnx, wide], dataset)
    with pytest.raises(DatasetError, match="scores 7 classes"):
        check_artifact_inputs([_resized(digits_onnx, tmp_path / "seven.onnx", classes=7)], dataset)
    check_artifact_inputs([digits_onnx], dataset)  # the right file passes


# --- eager's own accuracy -------------------------------------------------------------------------------------


def _scored(right: int, count: int, classes: int, labels_file: Path | None = None) -> tuple[Predictions, Dataset]:
    targets = np.arange(count) % classes
    top1 = np.where(np.arange(count) < right, targets, (targets + 1) % classes).astype(np.int32)
    names = [f"c{i}" for i in range(classes)]
    data = Dataset(targets, names, [Path(f"{i}.png") for i in range(count)], Path("d"), eval_config(32), labels_file)
    return Predictions(top1, top1[:, None]), data


@pytest.mark.parametrize(
    ("right", "count", "classes", "fails"),
    [
        (0, 360, 10, True),  # the labels in the wrong order: 0% top-1
        (36, 360, 10, True),  # exactly chance
        (9, 50, 10, True),  # 18% of 50: its interval (9.8%-31%) still reaches chance
        (10, 50, 10, False),  # 20% of 50: low end 11.2%, above chance; a small set is not failed by noise
        (0, 50, 1000, True),  # 0 of 50 on 1000 classes: nothing shows eager beats 0.1%
        (1, 50, 1000, False),  # 1 of 50 does (low end 0.35%)
    ],
)
def test_eager_must_be_shown_to_beat_chance(right: int, count: int, classes: int, fails: bool) -> None:
    predictions, data = _scored(right, count, classes)
    if fails:
        with pytest.raises(ReferenceAccuracyError, match=r"not above chance .*the dataset or its labels are wrong"):
            reference_accuracy(predictions, data, CheckThresholds(), trained=True)
    else:
        assert reference_accuracy(predictions, data, CheckThresholds(), trained=True) == []


def test_the_message_points_at_the_labels_file_when_one_was_given() -> None:
    predictions, data = _scored(0, 100, 10, labels_file=Path("labels.txt"))
    with pytest.raises(ReferenceAccuracyError, match="--labels lists the model's labels in class order"):
        reference_accuracy(predictions, data, CheckThresholds(), trained=True)


def test_an_untrained_model_is_not_held_to_chance_but_to_the_users_floor() -> None:
    predictions, data = _scored(0, 100, 10)
    (note,) = reference_accuracy(predictions, data, CheckThresholds(), trained=False)
    assert "untrained" in note
    with pytest.raises(ReferenceAccuracyError, match="below --min-eager-top1 50.00%"):
        reference_accuracy(predictions, data, CheckThresholds(min_eager_top1=50), trained=False)


def test_the_user_floor_is_judged_by_the_high_end_of_the_interval() -> None:
    predictions, data = _scored(90, 100, 10)  # 90%, 95% CI 82.6%-94.5%
    assert reference_accuracy(predictions, data, CheckThresholds(min_eager_top1=94), trained=True) == []
    with pytest.raises(ReferenceAccuracyError, match=r"top-1 is 90.00% \(90 of 100 images; 95% CI 82.\d\d-94.\d\d%\)"):
        reference_accuracy(predictions, data, CheckThresholds(min_eager_top1=95), trained=True)


# --- the eager cache in a check ---------------------------------------------------------------------------------


@pytest.fixture
def torch_runs(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every eager run of the gate, recorded."""
    runs: list[object] = []
    opened = gate.open_runner

    def counting(artifact, *args, **kwargs):
        if not isinstance(artifact, (str, Path)):
            runs.append(artifact)
        return opened(artifact, *args, **kwargs)

    monkeypatch.setattr(gate, "open_runner", counting)
    return runs


def test_a_rerun_reads_eager_from_the_cache(model, dataset: Dataset, digits_onnx: Path, tmp_path: Path, torch_runs):
    limits = CheckThresholds(min_images=50)
    first = run_check(dataset, model, [digits_onnx], limits, None, cache_dir=tmp_path)
    assert len(torch_runs) == 1 and not first.eager_cache["hit"] and Path(first.eager_cache["path"]).is_file()
    second = run_check(dataset, model, [digits_onnx], limits, None, cache_dir=tmp_path)
    assert len(torch_runs) == 1 and second.eager_cache == {"path": first.eager_cache["path"], "hit": True}
    assert any("read from the cache" in note for note in second.notes)
    for a, b in zip(first.figures, second.figures, strict=True):  # the same figures, eager's per-image record too
        assert (a.top1, a.top5, a.agreement, a.drop) == (b.top1, b.top5, b.agreement, b.drop)
        np.testing.assert_array_equal(a.correct, b.correct)
    assert second.figures[0].seconds == 0.0  # eager did not run
    third = run_check(dataset, model, [digits_onnx], limits, None, cache_dir=tmp_path, recompute_eager=True)
    assert len(torch_runs) == 2 and not third.eager_cache["hit"]


def test_an_unwritable_cache_costs_time_not_the_verdict(model, dataset: Dataset, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the cache folder should be
    result = run_check(dataset, model, [], CheckThresholds(min_images=50), None, cache_dir=blocked / "check")
    assert result.passed and result.eager_cache["path"] is None
    assert any(note.startswith("eager: not cached") for note in result.notes)
