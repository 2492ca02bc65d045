"""`check`, the accuracy gate: the digits reference passes against the committed baseline (streamed, with the same
per-image record), a damaged artifact fails with exit 1, the baseline works both ways and is written only when
asked, reports parse, a rerun reads eager from its cache, and bad datasets, labels, baselines, report paths and an
eager model at chance or below its floor are one-line usage errors (exit 2), never the regression code."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import onnx
import pytest
import typer
from onnx import numpy_helper
from typer.testing import CliRunner

from convnext_export.cli.check_cmd import check
from convnext_export.evaluation.check.baseline import decode_correct, encode_correct
from convnext_export.model.reference import ModelRequest
from convnext_export.pipeline.build import build
from convnext_export.pipeline.request import BuildRequest
from tests._paths import DIGITS, ROOT

WEIGHTS = DIGITS / "convnext_digits.safetensors"
TEST_SET = DIGITS / "test"
BASELINE = ROOT / "artifacts" / "baselines" / "digits.json"
ARTIFACTS = ("convnext_custom.fp32.onnx", "convnext_custom.int8-cpu.onnx", "convnext_custom.int8-trt.onnx")

# The command on an app of its own, so these tests do not depend on where the project's CLI registers it.
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command("check")(check)


@app.callback()
def _group() -> None:
    """Keep `check` a sub-command, as in the project's CLI."""


def _check(*args: object):
    return CliRunner().invoke(app, ["check", *(str(a) for a in args)])


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits artifacts, built as scripts/check_digits.sh builds them (pipeline API, CPU stages only)."""
    out = tmp_path_factory.mktemp("digits-bundle")
    request = BuildRequest(
        ModelRequest(weights=str(WEIGHTS)),
        output_dir=out,
        samples=4,
        batch_sizes=(8,),
        precisions=("fp32", "int8"),
        calib=DIGITS / "calib",
        images=TEST_SET,
    )
    build(request)  # the calibration cache is this module's own (tests/conftest.py)
    return out


@pytest.fixture(scope="module")
def damaged(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The FP32 ONNX with seeded noise (one standard deviation) on every weight matrix: loses about 5 points."""
    model = onnx.load(bundle / ARTIFACTS[0])
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype == np.float32 and w.ndim >= 2:
            noisy = w + rng.normal(0.0, float(w.std()), w.shape).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(noisy, init.name))
    path = tmp_path_factory.mktemp("damaged") / ARTIFACTS[0]  # same name: the baseline keys figures by file name
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def gate(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The project's gate: every digits artifact against the committed baseline, with all three reports."""
    out = tmp_path_factory.mktemp("reports")
    reports = ("--json", out / "check.json", "--markdown", out / "check.md", "--junit", out / "check.xml")
    result = _check(*(bundle / a for a in ARTIFACTS), "--dataset", TEST_SET, "--baseline", BASELINE, *reports)
    return result, out


@pytest.fixture(scope="module")
def failing(damaged: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    out = tmp_path_factory.mktemp("failing")
    reports = ("--markdown", out / "check.md", "--junit", out / "check.xml")
    result = _check(damaged, "--dataset", TEST_SET, "--baseline", BASELINE, *reports)
    return result, out


def _baseline_with(tmp_path: Path, name: str, wrong: int) -> Path:
    """The committed baseline, with `wrong` more images recorded as misclassified for figure `name`."""
    data = json.loads(BASELINE.read_text())
    figure = data["figures"][name]
    correct = decode_correct(figure["correct"], data["dataset"]["images"])
    correct[np.flatnonzero(correct)[:wrong]] = False
    figure["correct"], figure["top1"] = encode_correct(correct), round(100 * float(correct.mean()), 4)
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(data))
    return path


# --- the gate on the digits reference ----------------------------------------------------------------------


def test_digits_artifacts_pass_against_the_committed_baseline(gate: tuple) -> None:
    result, out = gate
    assert result.exit_code == 0, result.output
    assert "PASS" in result.stdout
    report = json.loads((out / "check.json").read_text())
    assert report["passed"] and report["failures"] == []
    figures = {f["name"]: f for f in report["figures"]}
    kernels = f"{ARTIFACTS[2]} [ORT kernels]"  # the TensorRT file on ONNX Runtime's integer kernels: shown, not gated
    assert set(figures) == {"eager", *ARTIFACTS, kernels}
    assert figures["eager"]["top1"] == pytest.approx(356 / 360 * 100, abs=1e-3)  # the reference's own 98.89%
    gated = [f for f in figures.values() if not f["informational"]]
    assert len(gated) == 4 and all(f["top1"] >= 98.0 and f["agreement"] >= 0.99 for f in gated)
    assert figures[kernels]["informational"] and not [g for g in report["gates"] if g["figure"] == kernels]
    assert "Q/DQ emulated in float" in figures[ARTIFACTS[2]]["runtime"]
    assert {g["metric"] for g in report["gates"] if g["figure"] == ARTIFACTS[2]} >= {"qdq_rules", "agreement"}
    assert set(report["system"]) == {"isa", "onnxruntime"}
    assert not any("not in the baseline" in note for note in report["notes"])  # every figure was compared


def test_streamed_eager_gets_the_same_images_right_as_the_committed_baseline(bundle: Path, tmp_path: Path) -> None:
    """The baseline was written when check held the whole set in memory: streaming changes no image's verdict."""
    target = tmp_path / "now.json"
    result = _check(bundle / ARTIFACTS[0], "--dataset", TEST_SET, "--baseline", target, "--update-baseline")
    assert result.exit_code == 0, result.output
    now, committed = json.loads(target.read_text()), json.loads(BASELINE.read_text())
    assert now["dataset"]["sha256"] == committed["dataset"]["sha256"]
    for name in ("eager", ARTIFACTS[0]):
        assert now["figures"][name]["correct"] == committed["figures"][name]["correct"], name


def test_markdown_has_the_table(gate: tuple) -> None:
    text = (gate[1] / "check.md").read_text()
    assert "| artifact | top-1 | top-5 | agreement | drop | status |" in text
    assert all(f"| {name} |" in text for name in ARTIFACTS) and "FAIL" not in text


def test_junit_parses_without_failures_when_passing(gate: tuple) -> None:
    root = ET.parse(gate[1] / "check.xml").getroot()
    suites = root.findall("testsuite")
    assert len(suites) == 1 and suites[0].get("name") == "convnext-export check"
    cases = suites[0].findall("testcase")
    assert len(cases) == int(suites[0].get("tests")) > 4 * 2
    assert root.findall(".//failure") == [] and suites[0].get("failures") == "0"


# --- regressions -------------------------------------------------------------------------------------------


def test_damaged_artifact_fails_with_every_failing_figure_listed(failing: tuple) -> None:
    result, _ = failing
    assert result.exit_code == 1, result.output
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL: convnext_custom")]
    assert any("drop vs eager" in line for line in failures)
    assert any("agreement with eager" in line for line in failures)
    assert any("below the baseline" in line for line in failures)


def test_junit_has_a_failure_per_failing_figure(failing: tuple) -> None:
    suite = ET.parse(failing[1] / "check.xml").getroot().find("testsuite")
    failed = [c for c in suite.findall("testcase") if c.find("failure") is not None]
    assert {c.get("name") for c in failed} == {
        f"{ARTIFACTS[0]}: top1_drop",
        f"{ARTIFACTS[0]}: agreement",
        f"{ARTIFACTS[0]}: baseline_top1",
    }
    assert suite.get("failures") == "3"
    assert all(ARTIFACTS[0] in c.find("failure").get("message") for c in failed)
    assert "FAIL" in (failing[1] / "check.md").read_text()


def test_baseline_comparison_is_paired_and_names_the_interval(failing: tuple) -> None:
    """The damaged file against the good baseline: the drop is computed on the same images, with its interval."""
    line = next(x for x in failing[0].stdout.splitlines() if "below the baseline" in x)
    assert re.match(
        rf"FAIL: {re.escape(ARTIFACTS[0])}: top-1 \d+\.\d\d% is \d+\.\d\d points below the baseline's 98\.89% "
        r"\(95% CI \d+\.\d\d to \d+\.\d\d; limit 0\.50\)",
        line,
    ), line


def test_a_few_images_below_the_baseline_decide_nothing(bundle: Path, tmp_path: Path) -> None:
    """A baseline 2 images better (0.56 points, over the 0.5 limit as a point estimate) passes: its interval
    includes no change, so those images are noise, not evidence of a regression."""
    baseline = _baseline_with(tmp_path, ARTIFACTS[0], 0)  # the committed figures
    data = json.loads(baseline.read_text())
    correct = decode_correct(data["figures"][ARTIFACTS[0]]["correct"], 360)
    correct[np.flatnonzero(~correct)[:2]] = True  # the baseline got two more right
    data["figures"][ARTIFACTS[0]] |= {"correct": encode_correct(correct), "top1": round(100 * correct.mean(), 4)}
    baseline.write_text(json.dumps(data))
    result = _check(bundle / ARTIFACTS[0], "--dataset", TEST_SET, "--baseline", baseline)
    assert result.exit_code == 0, result.output


def test_baseline_with_lower_figures_passes_with_an_improvement_note(bundle: Path, tmp_path: Path) -> None:
    baseline = _baseline_with(tmp_path, ARTIFACTS[0], 7)  # 7 images fewer right: 96.94%
    before = baseline.read_bytes()
    result = _check(bundle / ARTIFACTS[0], "--dataset", TEST_SET, "--baseline", baseline)
    assert result.exit_code == 0, result.output
    assert "improved on the baseline's 96.94%" in result.stdout and "--update-baseline" in result.stdout
    assert baseline.read_bytes() == before  # reported, never written without --update-baseline


def test_hand_edited_baseline_figure_is_a_usage_error(bundle: Path, tmp_path: Path) -> None:
    data = json.loads(BASELINE.read_text())
    data["figures"][ARTIFACTS[0]]["top1"] += 2.0  # no longer what its per-image record says
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    line = _one_line_error(_check(bundle / ARTIFACTS[0], "--dataset", TEST_SET, "--baseline", path))
    assert ARTIFACTS[0] in line and "per-image record" in line


def test_latency_is_gated_only_when_measured_and_in_the_baseline(bundle: Path, tmp_path: Path) -> None:
    data = json.loads(BASELINE.read_text())
    data["figures"][ARTIFACTS[0]] |= {"latency_ms": 1e-3, "batch_size": 32}  # no real run is this fast
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(data))
    args = (bundle / ARTIFACTS[0], "--dataset", TEST_SET, "--baseline", baseline)
    assert _check(*args).exit_code == 0  # latency not measured: nothing to compare
    result = _check(*args, "--latency")
    assert result.exit_code == 1, result.output
    assert f"FAIL: {ARTIFACTS[0]}: latency" in result.stdout and "limit 0.001 ms" in result.stdout


# --- --update-baseline ---------------------------------------------------------------------------------------


def test_update_baseline_writes_when_asked(bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "new" / "baseline.json"
    result = _check(bundle / ARTIFACTS[0], "--dataset", TEST_SET, "--baseline", target)
    assert "does not exist" in _one_line_error(result) and not target.exists()
    result = _check(bundle / ARTIFACTS[0], "--dataset", TEST_SET, "--baseline", target, "--update-baseline")
    assert result.exit_code == 0, result.output
    assert f"baseline written to {target}" in result.stderr
    data = json.loads(target.read_text())
    assert set(data["figures"]) == {"eager", ARTIFACTS[0]} and data["model"]["variant"] == "custom"
    assert not list(target.parent.glob("*.partial"))


def test_update_baseline_refuses_to_bless_a_regression(damaged: Path, tmp_path: Path) -> None:
    target = tmp_path / "baseline.json"
    result = _check(damaged, "--dataset", TEST_SET, "--baseline", target, "--update-baseline")
    assert result.exit_code == 1, result.output
    assert "baseline not written" in result.stderr and not target.exists()


def test_update_baseline_keeps_a_baseline_it_would_lower(damaged: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    baseline.write_bytes(BASELINE.read_bytes())
    result = _check(damaged, "--dataset", TEST_SET, "--baseline", baseline, "--update-baseline")
    assert result.exit_code == 1, result.output
    assert "baseline not written" in result.stderr and baseline.read_bytes() == BASELINE.read_bytes()


# --- usage errors (exit 2, one line) ------------------------------------------------------------------------


def _layout(tmp_path: Path, classes: dict[str, int], loose: int = 0) -> Path:
    """A dataset folder made of copies of real digit images: `classes` maps folder -> image count."""
    source = sorted((TEST_SET / "0").glob("*.png"))
    root = tmp_path / "data"
    root.mkdir()
    for name, count in classes.items():
        (root / name).mkdir()
        for image in source[:count]:
            shutil.copy(image, root / name / image.name)
    for image in source[:loose]:
        shutil.copy(image, root / image.name)
    return root


def test_flat_folder_of_images_is_a_usage_error(tmp_path: Path) -> None:
    root = _layout(tmp_path, {}, loose=3)
    assert "holds 3 image(s) directly" in _one_line_error(_check("--dataset", root, "--weights", WEIGHTS))


def test_empty_class_folder_is_a_usage_error(tmp_path: Path) -> None:
    root = _layout(tmp_path, {str(d): 2 for d in range(9)} | {"9": 0})
    line = _one_line_error(_check("--dataset", root, "--weights", WEIGHTS))
    assert "class folder" in line and "/9" in line and "no images" in line


def test_missing_dataset_is_a_usage_error(tmp_path: Path) -> None:
    line = _one_line_error(_check("--dataset", tmp_path / "nowhere", "--weights", WEIGHTS))
    assert "does not exist" in line and "nowhere" in line


def test_folders_not_in_the_labels_file_are_a_usage_error(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]))
    line = _one_line_error(_check("--dataset", TEST_SET, "--weights", WEIGHTS, "--labels", labels))
    assert "not labels in" in line and "'0'" in line


def test_class_count_other_than_the_model_is_a_usage_error(tmp_path: Path) -> None:
    root = _layout(tmp_path, {"0": 2, "1": 2, "2": 2})
    assert "has 3 classes, the model has 10" in _one_line_error(_check("--dataset", root, "--weights", WEIGHTS))


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    root = _layout(tmp_path, {str(d): 1 for d in range(10)})
    (root / "3" / "broken.png").write_bytes(b"not a png")
    line = _one_line_error(_check("--dataset", root, "--weights", WEIGHTS, "--min-images", 1))
    assert "broken.png" in line and "cannot read image" in line


def test_baseline_for_another_dataset_is_a_usage_error(bundle: Path) -> None:
    args = (bundle / ARTIFACTS[0], "--dataset", TEST_SET, "--baseline", BASELINE, "--limit", 100)
    line = _one_line_error(_check(*args))
    assert "was made on dataset 'tests/data/digits/test' (360 images" in line and "(100 images" in line


def test_the_old_comma_separated_artifacts_flag_still_names_files(tmp_path: Path) -> None:
    """`--artifacts a,b` (the old spelling) is an alias of the positional files: both reach the same check."""
    missing = [tmp_path / "a.onnx", tmp_path / "b.onnx"]
    positional = _one_line_error(_check(*missing, "--dataset", TEST_SET))
    alias = _one_line_error(_check("--dataset", TEST_SET, "--artifacts", ",".join(map(str, missing))))
    assert positional == alias and str(missing[0]) in alias


def test_report_paths_that_are_directories_are_refused_before_the_run(tmp_path: Path) -> None:
    for flag in ("--json", "--markdown", "--junit"):
        line = _one_line_error(_check("--dataset", tmp_path / "nowhere", "--weights", WEIGHTS, flag, tmp_path))
        assert f"{flag} {tmp_path} is a directory" in line  # before the dataset is even looked at


# --- eager's cache ------------------------------------------------------------------------------------------


def test_a_rerun_reads_eager_from_the_cache_unless_told_not_to(bundle: Path, tmp_path: Path) -> None:
    def run(*extra: object) -> dict:
        out = tmp_path / "check.json"
        result = _check(bundle / ARTIFACTS[0], "--dataset", TEST_SET, "--json", out, *extra)
        assert result.exit_code == 0, result.output
        return json.loads(out.read_text())

    first, second, forced = run(), run(), run("--recompute-eager")
    assert not first["eager_cache"]["hit"] and second["eager_cache"]["hit"] and not forced["eager_cache"]["hit"]
    assert first["eager_cache"]["path"] == second["eager_cache"]["path"] == forced["eager_cache"]["path"]
    assert any("--recompute-eager" in note for note in second["notes"])
    assert [f["top1"] for f in first["figures"]] == [f["top1"] for f in second["figures"]]


# --- inputs that would fool the gate: exit 2, before any artifact is judged --------------------------------


def _relabelled(tmp_path: Path, folder_of: dict[str, str]) -> Path:
    """The digits test set with the images of class folder d moved to folder_of[d] (a wrongly sorted dataset)."""
    root = tmp_path / "relabelled"
    for digit in sorted(p.name for p in TEST_SET.iterdir()):
        shutil.copytree(TEST_SET / digit, root / folder_of.get(digit, digit), dirs_exist_ok=True)
    return root


def test_a_dataset_whose_folders_hold_other_classes_fails_at_chance(bundle: Path, tmp_path: Path) -> None:
    """Every folder holds the next digit's images: eager gets none right. Artifacts agreeing with eager would
    pass, so check stops at eager with a usage error, never exit 0 nor the regression code."""
    root = _relabelled(tmp_path, {str(d): str((d + 1) % 10) for d in range(10)})
    line = _one_line_error(_check(bundle / ARTIFACTS[0], "--dataset", root))
    assert (
        "eager PyTorch top-1 is 0.00% (0 of 360 images" in line and "not above chance (10.00% for 10 classes)" in line
    )
    assert "the dataset or its labels are wrong, not the export" in line


def test_a_labels_file_that_does_not_fit_the_images_fails_at_chance(bundle: Path, tmp_path: Path) -> None:
    """Folders named by other names than the model's labels: the names decide nothing, the images do."""
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    root = _relabelled(tmp_path, {str(d): names[d] for d in range(10)})
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(reversed(names)) + "\n")  # the right names, in the wrong order
    line = _one_line_error(_check(bundle / ARTIFACTS[0], "--dataset", root, "--labels", labels))
    assert "not above chance" in line and "--labels lists the model's labels in class order" in line
    labels.write_text("\n".join(names) + "\n")
    assert _check(bundle / ARTIFACTS[0], "--dataset", root, "--labels", labels).exit_code == 0


def test_the_models_labels_in_another_order_are_refused_before_any_image(bundle: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("1\n0\n2\n3\n4\n5\n6\n7\n8\n9\n")  # the 0%-top-1 pass, two classes swapped
    line = _one_line_error(_check(bundle / ARTIFACTS[0], "--dataset", TEST_SET, "--labels", labels))
    assert "lists the model's labels in another order (class 0 is '1' here and '0' in the model)" in line


def test_eager_below_the_users_floor_is_a_usage_error(bundle: Path, tmp_path: Path) -> None:
    """Two folders swapped: eager scores about 80%, well above chance; only a floor (or a baseline) sees it."""
    root = _relabelled(tmp_path, {"0": "1", "1": "0"})
    assert _check(bundle / ARTIFACTS[0], "--dataset", root).exit_code == 0
    line = _one_line_error(_check(bundle / ARTIFACTS[0], "--dataset", root, "--min-eager-top1", 95))
    assert "below --min-eager-top1 95.00%" in line and "wrong, not the export" in line
    assert _check(bundle / ARTIFACTS[0], "--dataset", TEST_SET, "--min-eager-top1", 98).exit_code == 0  # 98.89%


def test_an_artifact_of_another_input_size_is_refused_before_any_image(bundle: Path, tmp_path: Path) -> None:
    """Every image of this dataset is broken: reading any would be the error. The size mismatch comes first."""
    root = tmp_path / "broken"
    for digit in range(10):
        (root / str(digit)).mkdir(parents=True)
        for i in range(5):
            (root / str(digit) / f"{i}.png").write_bytes(b"not a png")
    wide = onnx.load(bundle / ARTIFACTS[0])
    for dim in wide.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.dim_value = 64
    onnx.save(wide, tmp_path / "wide.fp32.onnx")
    line = _one_line_error(_check(bundle / ARTIFACTS[0], tmp_path / "wide.fp32.onnx", "--dataset", root))
    assert "wide.fp32.onnx takes 3x64x64 input, the dataset is preprocessed to 3x32x32" in line
