"""`bundle verify|sign|keygen` on the deploy bundle built without TensorRT.

- Every file matches its manifest entry; each tampering, path traversal and malformed manifest is one line naming
  the file, with exit 1 for a bundle that does not verify and 2 for a manifest that is not one (no traceback, and
  verification writes nothing).
- `bundle keygen` + `bundle sign` + `bundle verify --public-key` catch a consistent edit of a file and its hash.
How `build` makes the bundle is tested in test_build_cmd.py; the checks themselves in tests/pipeline/.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from convnext_export.pipeline.bundle import verify_bundle
from convnext_export.pipeline.manifest import MANIFEST_NAME, SIGNATURE_NAME, record_artifact
from tests.cli._helpers import WITHOUT_TENSORRT, error_line, invoke
from tests.pipeline._helpers import fake_engine, parse_model_config, sidecar

pytestmark = WITHOUT_TENSORRT

INT8 = "convnext_custom.int8-trt.onnx"


def test_manifest_covers_every_file_and_verifies(deploy_bundle: tuple) -> None:
    out, _ = deploy_bundle
    listed = {r["path"] for r in json.loads((out / "manifest.json").read_text())["artifacts"]}
    assert listed == {p.name for p in out.iterdir()} - {"manifest.json"}
    assert verify_bundle(out).ok
    result = invoke("bundle", "verify", out)
    assert result.exit_code == 0 and "all 17 files match" in result.stdout and "not signed" in result.stdout


@pytest.fixture
def copy(deploy_bundle: tuple, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(deploy_bundle[0], target, symlinks=True)
    return target


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _edit_manifest(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        document = json.loads((folder / MANIFEST_NAME).read_text())
        change(document)
        (folder / MANIFEST_NAME).write_text(json.dumps(document, indent=2))

    return apply


def _flip(folder: Path) -> None:
    data = bytearray((folder / INT8).read_bytes())
    data[-10] ^= 0xFF
    (folder / INT8).write_bytes(bytes(data))


def _entry(path: str) -> dict:
    return {"path": path, "sha256": "0" * 64, "size": 1101684, "stage": "export"}


def _link_out(folder: Path) -> None:
    (folder / "labels.txt").unlink()
    (folder / "labels.txt").symlink_to("/etc/hostname")


def _stringify_size(document: dict) -> None:
    document["artifacts"][0]["size"] = str(document["artifacts"][0]["size"])


# case -> (damage, exit code, the problem lines (stdout, exit 1) or the error line (stderr, exit 2) must hold)
CASES: dict[str, tuple[Callable[[Path], object], int, list[str]]] = {
    "changed bytes": (_flip, 1, [f"sha256 differs: {INT8}"]),
    "deleted": (lambda f: (f / INT8).unlink(), 1, [f"missing: {INT8}"]),
    "truncated": (
        lambda f: (f / "labels.txt").write_text(""),
        1,
        ["size differs: labels.txt (manifest 20 bytes, file 0)"],
    ),
    "added script": (lambda f: (f / "evil.sh").write_text("#!/bin/sh\n"), 1, ["unlisted: evil.sh"]),
    "stray fp16 and a killed run's partial": (
        lambda f: ((f / "x.fp16.onnx").touch(), (f / ".report.json.abc.partial").touch()),
        1,
        ["unlisted: .report.json.abc.partial", "unlisted: x.fp16.onnx"],
    ),
    "listed file linked out": (_link_out, 1, ["unsafe path: labels.txt (a symlink leading outside the bundle)"]),
    "etc/passwd": (
        _edit_manifest(lambda d: d["artifacts"].append(_entry("../../../../etc/passwd"))),
        1,
        ["unsafe path: ../../../../etc/passwd (leaves the bundle through ..): not read"],
    ),
    "etc/hostname": (
        _edit_manifest(lambda d: d["artifacts"].append(_entry("/etc/hostname"))),
        1,
        ["unsafe path: /etc/hostname (an absolute path): not read"],
    ),
    "two problems": (
        lambda f: (_flip(f), (f / "evil.sh").touch()),
        1,
        [f"sha256 differs: {INT8}", "unlisted: evil.sh"],
    ),
    "empty artifact list": (
        _edit_manifest(lambda d: d.__setitem__("artifacts", [])),
        2,
        ["the artifact list is empty"],
    ),
    "size as a string": (_edit_manifest(_stringify_size), 2, ["'size' must be an integer, got string \""]),
    "record missing its hash": (
        _edit_manifest(lambda d: d["artifacts"][0].pop("sha256")),
        2,
        ["'sha256' is missing"],
    ),
    "not JSON": (lambda f: (f / MANIFEST_NAME).write_text("{"), 2, ["is not valid JSON"]),
    "no manifest": (lambda f: (f / MANIFEST_NAME).unlink(), 2, ["manifest.json is missing"]),
}


def _check_reply(result: Result, code: int, expected: list[str]) -> None:
    """The exit code; exit 1: one stdout line per problem, then the summary; exit 2: one error line."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    if code == 2:
        line = error_line(result)
        assert all(e in line for e in expected), line
        return
    lines = result.stdout.strip().splitlines()
    problems, summary = lines[:-1], lines[-1]
    assert len(problems) == len(expected) and all(e in p for e, p in zip(expected, problems, strict=True)), lines
    assert f"{len(expected)} problem" in summary


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_bad_bundle_is_one_line_per_problem(copy: Path, case: str) -> None:
    damage, code, expected = CASES[case]
    damage(copy)
    before = _tree(copy)
    _check_reply(invoke("bundle", "verify", copy), code, expected)
    assert _tree(copy) == before  # verification writes nothing


def test_verify_on_a_folder_that_is_not_a_bundle(tmp_path: Path) -> None:
    result = invoke("bundle", "verify", tmp_path)
    assert result.exit_code == 2 and "manifest.json is missing" in result.stderr


# --- signing ------------------------------------------------------------------------------------------------------


@pytest.fixture
def key_pair(tmp_path: Path) -> tuple[Path, Path]:
    result = invoke("bundle", "keygen", "--output-dir", tmp_path / "keys")
    assert result.exit_code == 0, result.output
    assert "SHA256:" in result.stdout
    return tmp_path / "keys" / "bundle_ed25519", tmp_path / "keys" / "bundle_ed25519.pub"


def test_keygen_sign_verify_catches_a_consistent_edit(copy: Path, key_pair: tuple[Path, Path]) -> None:
    private, public = key_pair
    signed = invoke("bundle", "sign", copy, "--key", private)
    assert signed.exit_code == 0 and (copy / SIGNATURE_NAME).is_file(), signed.output
    reply = invoke("bundle", "verify", copy, "--public-key", public)
    assert reply.exit_code == 0 and "signature verified (key SHA256:" in reply.stdout, reply.output
    (copy / "labels.txt").write_text("evil\n" * 10)  # the file and its hash, edited together
    document = json.loads((copy / MANIFEST_NAME).read_text())
    index = next(i for i, r in enumerate(document["artifacts"]) if r["path"] == "labels.txt")
    document["artifacts"][index] = vars(record_artifact(copy, copy / "labels.txt", "labels"))
    (copy / MANIFEST_NAME).write_text(json.dumps(document, indent=2))
    unchecked = invoke("bundle", "verify", copy)
    assert unchecked.exit_code == 0 and "signature not checked (pass --public-key)" in unchecked.stdout
    _check_reply(invoke("bundle", "verify", copy, "--public-key", public), 1, ["signature does not match"])


def test_verify_with_a_key_needs_a_signature_and_the_right_key(copy: Path, key_pair: tuple[Path, Path]) -> None:
    private, public = key_pair
    _check_reply(invoke("bundle", "verify", copy, "--public-key", public), 1, ["signature missing: manifest.json.sig"])
    assert invoke("bundle", "sign", copy, "--key", private).exit_code == 0
    other = invoke("bundle", "keygen", "-o", copy.parent / "other")
    assert other.exit_code == 0 and (copy.parent / "other.pub").is_file()
    _check_reply(invoke("bundle", "verify", copy, "--public-key", copy.parent / "other.pub"), 1, ["does not match"])


def test_sign_refuses_a_bundle_that_does_not_verify(copy: Path, key_pair: tuple[Path, Path]) -> None:
    (copy / "evil.sh").touch()
    result = invoke("bundle", "sign", copy, "--key", key_pair[0])
    assert result.exit_code == 1 and "unlisted: evil.sh" in result.stdout and "not signed" in result.stdout
    assert not (copy / SIGNATURE_NAME).exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (lambda k, c: ("bundle", "sign", c, "--key", k[1]), "is a public key"),
        (lambda k, c: ("bundle", "verify", c, "--public-key", k[0]), "is a private key"),
        (lambda k, c: ("bundle", "verify", c, "--public-key", c / "absent.pub"), "does not exist"),
        (lambda k, c: ("bundle", "sign", c, "--key", c / "labels.txt"), "is not an OpenSSH or PEM private key"),
        (lambda k, c: ("bundle", "keygen", "--output-dir", k[0].parent), "exists: a key is never overwritten"),
        (lambda k, c: ("bundle", "keygen", "-o", c / "k", "--output-dir", c), "give one of them"),
    ],
)
def test_key_mistakes_are_usage_errors(
    copy: Path, key_pair: tuple[Path, Path], args: Callable[..., tuple], expected: str
) -> None:
    before = _tree(copy)
    assert expected in error_line(invoke(*args(key_pair, copy)))
    assert _tree(copy) == before and sorted(p.name for p in key_pair[0].parent.iterdir()) == [
        "bundle_ed25519",
        "bundle_ed25519.pub",
    ]


# --- bundle triton --------------------------------------------------------------------------------------------


def test_triton_writes_a_repository_that_triton_s_schema_parses(deploy_bundle: tuple, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(deploy_bundle[0], copy)
    fake_engine(copy, "fp16", sidecar(1, 4, 16))  # as build_engine.sh leaves it on the device
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["build"]["max-batch"] == 8
    result = invoke("bundle", "triton", copy, "--output-dir", tmp_path / "repo")
    assert result.exit_code == 0, result.output
    assert "convnext_custom_onnx (onnxruntime_onnx)" in result.stdout
    assert "convnext_custom_fp16_trt (tensorrt_plan)" in result.stdout
    assert "skipped convnext_custom.fp32.plan" in result.stdout and "2 models" in result.stdout
    onnx_config = parse_model_config(tmp_path / "repo" / "convnext_custom_onnx" / "config.pbtxt")
    plan_config = parse_model_config(tmp_path / "repo" / "convnext_custom_fp16_trt" / "config.pbtxt")
    assert onnx_config.max_batch_size == 8  # the build's profile (its manifest), where no sidecar says otherwise
    assert plan_config.max_batch_size == 16  # the engine's own profile
    assert (tmp_path / "repo" / "convnext_custom_fp16_trt" / "1" / "model.plan").is_file()


def test_triton_needs_an_output_dir_and_a_bundle(deploy_bundle: tuple, tmp_path: Path) -> None:
    assert "needs --output-dir" in error_line(invoke("bundle", "triton", deploy_bundle[0]))
    assert "no ONNX artifact" in error_line(invoke("bundle", "triton", tmp_path, "--output-dir", tmp_path / "repo"))
    copy = tmp_path / "bundle"
    shutil.copytree(deploy_bundle[0], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["build"]["min-batch"] = 16  # above its max-batch, 8
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert "1 <= min <= opt <= max" in error_line(invoke("bundle", "triton", copy, "--output-dir", tmp_path / "repo"))
