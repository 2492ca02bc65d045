"""Bad and hostile input on every command, as a careful user and an attacker would try it.

Each case asserts what the issue asks of every mistake: the exit code of its kind (usage 2, I/O or resource 4),
exactly one line on stderr (`-q`: no progress lines), no traceback, no file left in the output folder, and the
inputs unchanged. The cases are data: a new command adds its rows here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from convnext_export import _resources
from tests._paths import DIGITS
from tests.cli._helpers import invoke

USAGE, RESOURCE = 2, 4
WEIGHTS = DIGITS / "convnext_digits.safetensors"
CALIB = DIGITS / "calib"
TEST_SET = DIGITS / "test"


@dataclass
class Inputs:
    """The files the cases point at, made once: valid ones, damaged ones, and an output folder per case."""

    root: Path
    fp32: Path  # the digits model's FP32 ONNX (with metadata)
    int8: Path  # its TensorRT INT8 ONNX
    foreign: Path  # an ONNX file without our metadata
    garbage: Path  # bytes that are no ONNX
    bad_json_metadata: Path  # our metadata key holding text that is not JSON
    bad_type_metadata: Path  # our metadata with an image size that is not one
    text: Path  # a text file with an image/weights suffix
    image: Path  # a real digit scan
    truncated_image: Path
    empty_dir: Path
    not_images_dir: Path
    nan_weights: Path
    out: Path = Path()  # set per case: where outputs may go (must stay empty)


def _with_metadata(source: Path, target: Path, key: str, value: str) -> Path:
    model = onnx.load(source)
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
    onnx.save(model, target)
    return target


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, digits: dict) -> Inputs:
    root = tmp_path_factory.mktemp("bad-inputs")
    fp32 = Path(shutil.copy(digits["fp32"], root / "convnext_custom.fp32.onnx"))
    int8 = Path(shutil.copy(digits["dir"] / "digits.int8-trt.onnx", root / "convnext_custom.int8-trt.onnx"))
    foreign = root / "foreign.onnx"
    model = onnx.load(fp32)
    del model.metadata_props[:]
    onnx.save(model, foreign)
    (root / "garbage.onnx").write_bytes(b"\x00\x01 not an onnx file \xff" * 40)
    (root / "notes.png").write_text("this is text, not a picture\n")
    image = Path(shutil.copy(sorted((TEST_SET / "3").iterdir())[0], root / "three.png"))
    (root / "truncated.png").write_bytes(image.read_bytes()[:60])
    (root / "empty").mkdir()
    (root / "documents").mkdir()
    (root / "documents" / "readme.txt").write_text("no images here\n")
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(WEIGHTS)
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] = state[first].clone()
    state[first].view(-1)[0] = float("nan")
    save_file(state, root / "nan.safetensors")
    assert torch.isnan(state[first]).any()
    return Inputs(
        root=root,
        fp32=fp32,
        int8=int8,
        foreign=foreign,
        garbage=root / "garbage.onnx",
        bad_json_metadata=_with_metadata(fp32, root / "badjson.fp32.onnx", "convnext_export.image_size", "{[oops"),
        bad_type_metadata=_with_metadata(fp32, root / "badtype.fp32.onnx", "convnext_export.image_size", '"big"'),
        text=root / "notes.png",
        image=image,
        truncated_image=root / "truncated.png",
        empty_dir=root / "empty",
        not_images_dir=root / "documents",
        nan_weights=root / "nan.safetensors",
    )


@dataclass
class Case:
    id: str
    args: Callable[[Inputs], list[object]]
    message: str  # a substring of the one error line
    code: int = USAGE
    memory: int | None = None  # bytes "available": resource cases


def _c(id: str, args: Callable[[Inputs], list[object]], message: str, code: int = USAGE, **kw: object) -> Case:
    return Case(id, args, message, code, **kw)


MiB = 1024**2
RANDOM = ["--variant", "test", "--random-init", "--image-size", "32"]

CASES = [
    # --- global and parsing ---------------------------------------------------------------------------------------
    _c("unknown-command", lambda i: ["exprot"], "No such command 'exprot'"),
    _c("unknown-option", lambda i: ["build", "--fp61"], "No such option: --fp61"),
    _c("value-out-of-range", lambda i: ["infer", i.fp32, i.image, "--top-k", "0"], "Invalid value for '--top-k'"),
    _c("not-a-number", lambda i: ["build", "--samples", "many"], "Invalid value for '--samples'"),
    _c("missing-argument", lambda i: ["infer"], "Missing argument 'artifact'"),
    _c("verbose-and-quiet", lambda i: ["-v", "-q", "variants"], "--verbose and --quiet exclude each other"),
    # --- models ---------------------------------------------------------------------------------------------------
    _c("info-unknown-variant", lambda i: ["info", "--variant", "giant"], "unknown variant 'giant'"),
    _c("info-image-size-zero", lambda i: ["info", "--variant", "tiny", "--image-size", "0"], "image size"),
    _c("info-weights-missing", lambda i: ["info", "--weights", i.root / "none.pth"], "none.pth"),
    # --- export ---------------------------------------------------------------------------------------------------
    _c("export-no-weights", lambda i: ["export", "--variant", "test", "-o", i.out / "m.onnx"], "no weights given"),
    _c(
        "export-weights-and-random",
        lambda i: ["export", *RANDOM, "--weights", WEIGHTS, "-o", i.out / "m.onnx"],
        "exclude each other",
    ),
    _c("export-weights-text", lambda i: ["export", "--weights", i.text, "-o", i.out / "m.onnx"], "notes.png"),
    _c(
        "export-weights-missing", lambda i: ["export", "--weights", i.root / "no.pth", "-o", i.out / "m.onnx"], "no.pth"
    ),
    _c("export-nan-weights", lambda i: ["export", "--weights", i.nan_weights, "-o", i.out / "m.onnx"], "non-finite"),
    _c(
        "export-size-not-multiple",
        lambda i: ["export", "--variant", "test", "--random-init", "--image-size", "33", "-o", i.out / "m.onnx"],
        "33",
    ),
    _c("export-size-text", lambda i: [*_export(i), "--image-size", "big"], "image size"),
    _c("export-batch-zero", lambda i: [*_export(i), "--batch", "0"], "batch"),
    _c("export-batch-text", lambda i: [*_export(i), "--batch", "lots"], "batch"),
    _c("export-opset-9", lambda i: [*_export(i), "--opset", "9"], "opset"),
    _c("export-num-classes-misfit", lambda i: ["export", "--weights", WEIGHTS, "--num-classes", "5"], "--reset-head"),
    _c("export-output-is-folder", lambda i: ["export", *RANDOM, "-o", i.out], "is a directory"),
    _c("export-output-is-weights", lambda i: ["export", "--weights", i.nan_weights, "-o", i.nan_weights], "an input"),
    _c("export-read-only-fs", lambda i: ["export", *RANDOM, "-o", "/proc/convnext.onnx"], "cannot write", RESOURCE),
    _c("export-no-memory", lambda i: ["export", *RANDOM, "-o", i.out / "m.onnx"], "GiB", RESOURCE, memory=MiB),
    # --- inspect --------------------------------------------------------------------------------------------------
    _c("inspect-missing", lambda i: ["inspect", i.root / "none.onnx"], "no such file"),
    _c("inspect-folder", lambda i: ["inspect", i.empty_dir], "is a directory"),
    _c("inspect-garbage", lambda i: ["inspect", i.garbage], "not a valid ONNX model"),
    _c("inspect-trt-7", lambda i: ["inspect", i.fp32, "--trt-version", "7"], "unknown TensorRT version '7'"),
    _c("inspect-json-folder", lambda i: ["inspect", i.fp32, "--json", i.out], "is a directory"),
    # --- validate -------------------------------------------------------------------------------------------------
    _c("validate-missing", lambda i: ["validate", i.root / "none.onnx"], "no such file"),
    _c("validate-garbage", lambda i: ["validate", i.garbage], "not a valid ONNX model"),
    _c("validate-foreign", lambda i: ["validate", i.foreign], "no convnext-export metadata"),
    _c("validate-metadata-not-json", lambda i: ["validate", i.bad_json_metadata], "not valid JSON"),
    _c("validate-metadata-wrong-type", lambda i: ["validate", i.bad_type_metadata], "invalid value"),
    _c("validate-batch-zero", lambda i: ["validate", i.fp32, "--batch-sizes", "0"], "not a positive integer"),
    _c("validate-batch-text", lambda i: ["validate", i.fp32, "--batch-sizes", "1,x"], "not a positive integer"),
    _c("validate-images-missing", lambda i: ["validate", i.fp32, "--images", i.root / "nowhere"], "nowhere"),
    _c("validate-images-empty", lambda i: ["validate", i.fp32, "--images", i.empty_dir], "empty"),
    _c("validate-judge-as-int4", lambda i: ["validate", i.fp32, "--judge-as", "int4"], "int4"),
    _c("validate-json-folder", lambda i: ["validate", i.fp32, "--samples", "2", "--json", i.out], "is a directory"),
    _c("validate-huge-batch", lambda i: ["validate", i.fp32, "--batch-sizes", "100000000"], "GiB", RESOURCE),
    # --- calibrate and quantize -----------------------------------------------------------------------------------
    _c("calibrate-missing-model", lambda i: ["calibrate", i.root / "none.onnx", "--calib", CALIB], "none.onnx"),
    _c("calibrate-no-calib", lambda i: ["calibrate", i.fp32], "calib"),
    _c("quantize-no-calib", lambda i: ["quantize", i.fp32, "-o", i.out / "q.onnx"], "needs calibration images"),
    _c("quantize-calib-missing", lambda i: [*_quantize(i), "--calib", i.root / "nowhere"], "nowhere"),
    _c("quantize-calib-empty", lambda i: [*_quantize(i), "--calib", i.empty_dir], "empty"),
    _c("quantize-calib-no-images", lambda i: [*_quantize(i), "--calib", i.not_images_dir], "documents"),
    _c("quantize-precision-int4", lambda i: [*_quantize(i), "--precision", "int4", "--calib", CALIB], "int4"),
    _c(
        "quantize-target-contradiction",
        lambda i: [*_quantize(i), "--precision", "fp16", "--target", "cpu"],
        "applies to INT8 only",
    ),
    _c("quantize-output-is-input", lambda i: ["quantize", i.fp32, "--precision", "fp16", "-o", i.fp32], "an input"),
    _c("quantize-already-int8", lambda i: ["quantize", i.int8, "--calib", CALIB, "-o", i.out / "q.onnx"], "already"),
    _c("quantize-calib-method", lambda i: [*_quantize(i), "--calib", CALIB, "--calib-method", "magic"], "magic"),
    _c("quantize-accuracy-target", lambda i: [*_quantize(i), "--calib", CALIB, "--accuracy-target", "vibes"], "vibes"),
    _c("quantize-modelopt-missing", lambda i: [*_quantize(i), "--calib", CALIB, "--quantizer", "modelopt"], "modelopt"),
    _c(
        "quantize-foreign", lambda i: ["quantize", i.foreign, "--precision", "fp16", "-o", i.out / "q.onnx"], "metadata"
    ),
    # --- infer ----------------------------------------------------------------------------------------------------
    _c("infer-missing-artifact", lambda i: ["infer", i.root / "none.onnx", i.image], "none.onnx"),
    _c("infer-missing-image", lambda i: ["infer", i.fp32, i.root / "none.png"], "none.png"),
    _c("infer-text-image", lambda i: ["infer", i.fp32, i.text], "not a recognised image format"),
    _c("infer-truncated-image", lambda i: ["infer", i.fp32, i.truncated_image], "truncated.png"),
    _c("infer-unknown-backend", lambda i: ["infer", i.fp32, i.image, "--backend", "cuda"], "unknown backend 'cuda'"),
    _c("infer-trt-on-onnx", lambda i: ["infer", i.fp32, i.image, "--backend", "trt"], "trt runs TensorRT engines"),
    _c("infer-labels-missing", lambda i: ["infer", i.fp32, i.image, "--labels", i.root / "none.txt"], "none.txt"),
    # --- profile --------------------------------------------------------------------------------------------------
    _c("profile-missing", lambda i: ["profile", i.root / "none.onnx", "--output-dir", i.out], "no such file"),
    _c("profile-unknown-backend", lambda i: [*_profile(i), "--backends", "gpu"], "unknown backend 'gpu'"),
    _c("profile-batch-text", lambda i: [*_profile(i), "--batch-sizes", "one"], "not a positive integer"),
    _c("profile-warmup-both", lambda i: [*_profile(i), "--warmup", "2", "--warmup-seconds", "1"], "exclude each"),
    _c("profile-huge-batch", lambda i: [*_profile(i), "--batch-sizes", "10000000"], "GiB", RESOURCE),
    _c("profile-output-is-file", lambda i: ["profile", i.fp32, "--output-dir", i.fp32], "is a file, not a directory"),
    # --- build ----------------------------------------------------------------------------------------------------
    _c("build-int8-no-calib", lambda i: [*_build(i), "--int8"], "needs calibration images"),
    _c("build-precision-unknown", lambda i: [*_build(i), "--precision", "fp8"], "fp8"),
    _c("build-trt-version-9", lambda i: [*_build(i), "--trt-version", "9"], "unknown TensorRT version '9'"),
    _c("build-bad-batch-profile", lambda i: [*_build(i), "--min-batch", "4", "--max-batch", "2"], "min <= opt <= max"),
    _c("build-dla-dynamic", lambda i: [*_build(i), "--dla-core", "0"], "DLA does not support dynamic shapes"),
    _c("build-images-missing", lambda i: [*_build(i), "--images", i.root / "nowhere"], "nowhere"),
    _c("build-config-missing", lambda i: [*_build(i), "--config", i.root / "none.toml"], "none.toml"),
    _c("build-config-and-manifest", lambda i: [*_build(i), "--config", i.text, "--from-manifest", i.text], "exclude"),
    _c("build-onnx-foreign", lambda i: ["build", "--onnx", i.foreign], "no convnext-export metadata"),
    # --- check ----------------------------------------------------------------------------------------------------
    _c("check-no-dataset", lambda i: ["check", i.fp32], "--dataset"),
    _c("check-dataset-missing", lambda i: ["check", i.fp32, "--dataset", i.root / "nowhere"], "nowhere"),
    _c("check-dataset-empty", lambda i: ["check", i.fp32, "--dataset", i.empty_dir], "empty"),
    _c("check-artifact-missing", lambda i: ["check", i.root / "none.onnx", "--dataset", TEST_SET], "none.onnx"),
    _c("check-artifact-garbage", lambda i: ["check", i.garbage, "--dataset", TEST_SET], "not a valid ONNX model"),
    _c("check-labels-missing", lambda i: [*_check(i), "--labels", i.root / "none.txt"], "none.txt"),
    _c("check-agreement-above-one", lambda i: [*_check(i), "--min-agreement", "2"], "--min-agreement"),
    _c("check-baseline-folder", lambda i: [*_check(i), "--baseline", i.out, "--update-baseline"], "directory"),
    _c("check-baseline-not-json", lambda i: [*_check(i), "--baseline", i.text], "notes.png"),
    # --- bundle ---------------------------------------------------------------------------------------------------
    _c("bundle-verify-missing", lambda i: ["bundle", "verify", i.root / "nowhere"], "nowhere"),
    _c("bundle-verify-not-a-bundle", lambda i: ["bundle", "verify", i.empty_dir], "manifest"),
    _c(
        "bundle-verify-key-missing",
        lambda i: ["bundle", "verify", i.empty_dir, "--public-key", i.root / "k.pub"],
        "k.pub",
    ),
    _c("bundle-sign-key-missing", lambda i: ["bundle", "sign", i.empty_dir, "--key", i.root / "key"], "key"),
    _c("bundle-sign-key-is-text", lambda i: ["bundle", "sign", i.empty_dir, "--key", i.text], "notes.png"),
    _c("bundle-keygen-dir-is-file", lambda i: ["bundle", "keygen", "--output-dir", i.fp32], "fp32"),
    _c("bundle-triton-no-output-dir", lambda i: ["bundle", "triton", i.empty_dir], "needs --output-dir"),
    _c("bundle-triton-no-onnx", lambda i: ["bundle", "triton", i.empty_dir, "--output-dir", i.out / "r"], "no ONNX"),
    _c(
        "build-image-beyond-memory",
        lambda i: ["build", "--variant", "tiny", "--random-init", "--image-size", "2048", "--output-dir", i.out],
        "use a smaller --image-size",
        RESOURCE,
        memory=1024 * MiB,
    ),
]


def _export(i: Inputs) -> list[object]:
    return ["export", "--variant", "test", "--random-init", "-o", i.out / "m.onnx"]


def _quantize(i: Inputs) -> list[object]:
    return ["quantize", i.fp32, "-o", i.out / "q.onnx"]


def _check(i: Inputs) -> list[object]:
    return ["check", i.fp32, "--dataset", TEST_SET]


def _profile(i: Inputs) -> list[object]:
    return ["profile", i.fp32, "--iterations", "1", "--output-dir", i.out]


def _build(i: Inputs) -> list[object]:
    return ["build", *RANDOM, "--output-dir", i.out]


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_mistake_is_one_line_with_its_exit_code_and_leaves_nothing_behind(
    case: Case, inputs: Inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs.out = tmp_path / "out"
    inputs.out.mkdir()
    if case.memory is not None:
        monkeypatch.setattr(_resources, "available_memory", lambda: case.memory)
    before = _digest(inputs.root)
    result = invoke("-q", *case.args(inputs)) if case.id != "verbose-and-quiet" else invoke(*case.args(inputs))
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == case.code, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert case.message in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert list(inputs.out.iterdir()) == [], "a failed command left files behind"
    assert _digest(inputs.root) == before, "a failed command changed its inputs"


def test_the_table_covers_every_command_and_enough_cases() -> None:
    from tests.test_structure import registered_commands

    words = [[str(a) for a in c.args(_placeholder()) if not str(a).startswith("-")] for c in CASES]
    covered = {
        command for command in registered_commands() for run in words if run[: len(command.split())] == command.split()
    }
    assert len(CASES) >= 60
    assert registered_commands() - {"variants"} <= covered, sorted(registered_commands() - covered)


def _placeholder() -> Inputs:
    p = Path("/placeholder")
    return Inputs(p, p, p, p, p, p, p, p, p, p, p, p, p, p)


def test_sixteen_bit_calibration_images_are_not_white(tmp_path: Path) -> None:
    """The silent-damage case of the issue: a 16-bit scan used for calibration keeps its contrast."""
    from convnext_export.data.preprocess import eval_config, preprocess_image

    Image.fromarray(np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 64).save(tmp_path / "scan.png")
    x = preprocess_image(tmp_path / "scan.png", eval_config(32))
    assert x.std() > 0.5  # a clipped (white) image would be nearly constant
    json.dumps(x.shape)
