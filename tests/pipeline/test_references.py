"""Polygraphy-ready references of the digits bundle: inputs and eager PyTorch's outputs.

- The files load with Polygraphy's own loaders and are byte for byte what Polygraphy itself saves.
- The printed commands run with Polygraphy's CLI: against the bundle's ONNX files on ONNX Runtime (on a device
  `--model-type engine --trt` replaces `--onnxrt`), where they pass, and they fail on outputs that are off.
- The tolerances are the verdict table's, where Polygraphy can express a row.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from convnext_export.contract import artifact_name, engine_name
from convnext_export.data.preprocess import eval_config
from convnext_export.evaluation.thresholds import thresholds_for
from convnext_export.model.factory import create_model
from convnext_export.pipeline.deployables import bundle_deployables
from convnext_export.pipeline.inputs import load_evaluation
from convnext_export.pipeline.references import (
    INPUTS_NAME,
    OUTPUTS_NAME,
    RUNNER_NAME,
    ReferenceSet,
    eager_references,
    make_references,
    polygraphy_checks,
    polygraphy_report,
    write_references,
)
from convnext_export.runners.backends import open_runner
from convnext_export.trt.settings import EngineSettings
from tests._paths import DIGITS
from tests.pipeline._helpers import STEM, copy_bundle, polygraphy


@pytest.fixture(scope="module")
def eager() -> object:
    with open_runner(create_model(weights=DIGITS / "convnext_digits.safetensors"), "torch") as runner:
        yield runner


@pytest.fixture(scope="module")
def referenced(good: object, eager: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReferenceSet]:
    """The digits bundle with references from its real test images."""
    bundle = copy_bundle(good.output_dir, tmp_path_factory.mktemp("references") / "bundle")
    evaluation, _ = load_evaluation(eval_config(32), samples=4, seed=0, images=DIGITS / "test")
    references = eager_references(eager, evaluation, bundle_deployables(bundle))
    write_references(bundle, references)
    return bundle, references


def test_polygraphy_loads_the_files_as_written(referenced: tuple) -> None:
    pytest.importorskip("polygraphy", reason="Polygraphy is the `[debug]` extra: pip install polygraphy")
    from polygraphy.comparator import RunResults
    from polygraphy.json import load_json

    bundle, references = referenced
    feeds = load_json(bundle / INPUTS_NAME)
    assert len(feeds) == len(references.feeds) == 8  # one sample per iteration: batch 1 is in every profile
    for loaded, written in zip(feeds, references.feeds, strict=True):
        assert list(loaded) == ["images"] and loaded["images"].shape == (1, 3, 32, 32)
        np.testing.assert_array_equal(loaded["images"], written["images"])
    results = RunResults.load(bundle / OUTPUTS_NAME)
    assert list(results.keys()) == [RUNNER_NAME]
    for iteration, written in zip(results[RUNNER_NAME], references.outputs, strict=True):
        assert iteration.runner_name == RUNNER_NAME
        np.testing.assert_array_equal(iteration["logits"], written["logits"])


def test_the_files_are_what_polygraphy_itself_saves(referenced: tuple, tmp_path: Path) -> None:
    pytest.importorskip("polygraphy", reason="Polygraphy is the `[debug]` extra: pip install polygraphy")
    from polygraphy.comparator import RunResults
    from polygraphy.json import save_json

    bundle, references = referenced
    save_json(references.feeds, tmp_path / "inputs.json")
    results = RunResults()
    results.add(references.outputs, runner_name=RUNNER_NAME)
    results.save(tmp_path / "outputs.json")
    assert (tmp_path / "inputs.json").read_bytes() == (bundle / INPUTS_NAME).read_bytes()
    assert (tmp_path / "outputs.json").read_bytes() == (bundle / OUTPUTS_NAME).read_bytes()


def test_references_spread_over_the_real_images(referenced: tuple, eager: object) -> None:
    _, references = referenced
    classes = [int(np.argmax(o["logits"])) for o in references.outputs]
    assert classes[0] == 0 and classes[-1] == 9 and len(set(classes)) >= 6  # sorted class folders, evenly spaced
    assert "images of" in references.source
    noise = np.random.default_rng(0).standard_normal((10, 3, 32, 32), dtype=np.float32)
    fixed = make_references(eager, noise, batch=3, source="noise", count=4)
    assert [f["images"].shape[0] for f in fixed.feeds] == [3, 3]  # a fixed batch: whole iterations of it


def _run_on_onnx(command: str, precision: str) -> list[str]:
    """A printed device command for the engine of `precision`, run on the ONNX it is built from by ONNX Runtime."""
    args = shlex.split(command)
    assert args[:6] == ["polygraphy", "run", engine_name(STEM, precision), "--model-type", "engine", "--trt"]
    return ["run", artifact_name(STEM, precision), "--onnxrt", *args[6:]]


def _option(command: str, name: str) -> str:
    args = shlex.split(command)
    return args[args.index(name) + 1]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8-trt"])
def test_the_printed_commands_pass_on_the_bundle_files(referenced: tuple, precision: str) -> None:
    bundle, references = referenced
    checks = {c.engine: c for c in polygraphy_checks(bundle_deployables(bundle), references)}
    check = checks[engine_name(STEM, precision)]
    for command in check.commands:
        if " debug precision " in command:
            continue
        status, log = polygraphy(*_run_on_onnx(command, precision), cwd=bundle)
        assert status == 0 and "PASSED" in log, log


def test_the_exact_command_fails_on_outputs_just_outside_the_bound(referenced: tuple, tmp_path: Path) -> None:
    bundle, references = referenced
    copy = copy_bundle(bundle, tmp_path / "bundle", fp16=False)
    check = polygraphy_checks(bundle_deployables(copy), references)[0]
    atol = float(_option(check.commands[0], "--atol").split(":")[1])
    shifted = [{"logits": o["logits"] + np.float32(1.5 * atol) * (np.arange(10) == 3)} for o in references.outputs]
    write_references(copy, ReferenceSet(references.feeds, shifted, references.source))
    status, log = polygraphy(*_run_on_onnx(check.commands[0], "fp32"), cwd=copy)
    assert status != 0 and "FAILED" in log


def test_tolerances_come_from_the_verdict_rows(referenced: tuple) -> None:
    bundle, references = referenced
    deployables = bundle_deployables(bundle)
    span = references.output_range("logits")
    for settings, row in ((EngineSettings(), "fp32"), (EngineSettings(tf32=True), "fp32-tf32")):
        fp32 = polygraphy_checks(deployables, references, settings)[0]
        command = fp32.commands[0]
        atol = float(_option(command, "--atol").split(":")[1])
        bound = thresholds_for(row).max_abs_rel * span
        assert fp32.row == row and bound <= atol <= bound * 1.01  # rounded up to 3 digits, never tighter
        assert _option(command, "--rtol") == "0" and _option(command, "--check-error-stat") == "max"
        assert float(_option(command, "--cosine-similarity-threshold")) == thresholds_for(row).min_cosine
    for check in polygraphy_checks(deployables, references)[1:]:
        threshold = float(_option(check.commands[0], "--cosine-similarity-threshold"))
        assert check.row in ("fp16", "int8-trt") and threshold == thresholds_for(check.row).min_cosine


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="with TensorRT it would build engines")
def test_polygraphy_accepts_the_debug_precision_command(referenced: tuple) -> None:
    """Its options parse; it stops only where it needs TensorRT, which this machine lacks."""
    bundle, references = referenced
    int8 = polygraphy_checks(bundle_deployables(bundle), references)[-1]
    command = shlex.split(int8.commands[-1])
    assert command[:4] == ["polygraphy", "debug", "precision", artifact_name(STEM, "int8-trt")]
    status, log = polygraphy(*command[1:], cwd=bundle)
    assert status != 0 and "Unrecognized Options" not in log and "'tensorrt' is required" in log, log


def test_the_report_prints_every_command(referenced: tuple) -> None:
    bundle, references = referenced
    lines = polygraphy_report(references, polygraphy_checks(bundle_deployables(bundle), references))
    assert INPUTS_NAME in lines[0] and OUTPUTS_NAME in lines[0] and "8 iterations of batch 1" in lines[0]
    commands = [line.strip() for line in lines if line.strip().startswith("polygraphy ")]
    assert len(commands) == 1 + 2 + 3  # fp32: one; fp16: cosine, top-1; int8: cosine, top-1, debug precision
    assert all(f"--load-inputs {INPUTS_NAME}" in c for c in commands)
    assert json.loads((bundle / OUTPUTS_NAME).read_text())["polygraphy_class"] == "RunResults"
