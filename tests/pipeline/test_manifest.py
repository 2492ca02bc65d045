"""The manifest (`pipeline.manifest`): records hold plain relative paths inside the bundle, and reading refuses every
malformed document with one line naming the manifest and the first problem, never a KeyError/TypeError traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from convnext_export.errors import ConvNeXtExportError
from convnext_export.pipeline.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    ManifestError,
    ManifestReadError,
    load_manifest,
    record_artifact,
    unsafe_path_reason,
    write_manifest,
)


def _bundle(folder: Path) -> Path:
    """Two small files, one in a subfolder (as a Triton model repository has), and their manifest."""
    (folder / "sub").mkdir(parents=True)
    (folder / "a.onnx").write_bytes(b"onnx bytes")
    (folder / "sub" / "b.txt").write_text("b\n")
    write_manifest(
        folder,
        [record_artifact(folder, folder / "a.onnx", "export"), record_artifact(folder, folder / "sub" / "b.txt", "x")],
    )
    return folder


def test_records_are_relative_posix_paths_and_read_back(tmp_path: Path) -> None:
    manifest = load_manifest(_bundle(tmp_path))
    assert [r.path for r in manifest.records] == ["a.onnx", "sub/b.txt"]
    assert manifest.records[0].size == len(b"onnx bytes") and len(manifest.records[0].sha256) == 64
    assert manifest.raw == (tmp_path / MANIFEST_NAME).read_bytes()  # the exact bytes a signature covers
    assert "toolkit" not in manifest.sections


def test_a_file_outside_the_build_dir_cannot_be_recorded(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    (tmp_path / "bundle").mkdir()
    with pytest.raises(ValueError, match="leaves the bundle"):
        record_artifact(tmp_path / "bundle", outside, "x")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("a.onnx", None),
        ("model_repository/convnext/1/model.plan", None),
        ("", "empty"),
        ("/etc/hostname", "absolute"),
        ("C:/Windows/win.ini", "absolute"),
        ("\\\\server\\share", "absolute"),
        ("../../../../etc/passwd", "leaves the bundle"),
        ("sub/../../x", "leaves the bundle"),
        ("./a.onnx", "not a plain relative path"),
        ("sub//a.onnx", "not a plain relative path"),
        ("sub\\a.onnx", "not a plain relative path"),
        ("a\x00b", "NUL"),
        ("manifest.json", "cannot list itself"),
        ("manifest.json.sig", "cannot list itself"),
    ],
)
def test_unsafe_paths_are_named(path: str, reason: str | None) -> None:
    found = unsafe_path_reason(path)
    assert found is None if reason is None else reason in found


def _edit(change: Callable[[dict], object], *, replace: bool = False) -> Callable[[Path], None]:
    """Apply `change` to the manifest's document in place (or write what it returns, with `replace`)."""

    def apply(manifest: Path) -> None:
        document = json.loads(manifest.read_text())
        result = change(document)
        manifest.write_text(json.dumps(result if replace else document))

    return apply


def _set(field: str, value: object) -> Callable[[Path], None]:
    return _edit(lambda d: d["artifacts"][0].__setitem__(field, value))


MALFORMED = {
    "not json": (lambda m: m.write_text("{not json"), "is not valid JSON"),
    "not utf-8": (lambda m: m.write_bytes(b"\xff\xfe{}"), "is not valid JSON"),
    "an array": (_edit(lambda d: [d], replace=True), "not an object"),
    "no artifacts": (_edit(lambda d: d.pop("artifacts")), "no artifact list"),
    "artifacts not a list": (_edit(lambda d: d.__setitem__("artifacts", {})), "no artifact list"),
    "empty artifacts": (_edit(lambda d: d.__setitem__("artifacts", [])), "the artifact list is empty"),
    "record not an object": (_edit(lambda d: d["artifacts"].__setitem__(0, "a.onnx")), "not an object"),
    "size as a string": (_set("size", "10"), "'size' must be an integer, got string \"10\""),
    "size a boolean": (_set("size", True), "'size' must be an integer, got boolean"),
    "size negative": (_set("size", -1), "'size' is negative"),
    "size a float": (_set("size", 10.0), "'size' must be an integer"),
    "sha256 not hex": (_set("sha256", "z" * 64), "'sha256' is not 64 lowercase hex digits"),
    "sha256 a number": (_set("sha256", 1), "'sha256' must be a string"),
    "path a list": (_set("path", ["a.onnx"]), "'path' must be a string"),
    "precision a number": (_set("precision", 16), "'precision' must be a string or null"),
    "settings a list": (_set("settings", []), "'settings' must be an object"),
    "path missing": (_edit(lambda d: d["artifacts"][0].pop("path")), "'path' is missing"),
    "sha256 missing": (_edit(lambda d: d["artifacts"][0].pop("sha256")), "(a.onnx): 'sha256' is missing"),
    "listed twice": (_edit(lambda d: d["artifacts"].append(d["artifacts"][0])), "a.onnx is listed 2 times"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_manifest_is_one_line_naming_it(tmp_path: Path, case: str) -> None:
    damage, expected = MALFORMED[case]
    manifest = _bundle(tmp_path) / MANIFEST_NAME
    damage(manifest)
    with pytest.raises(ManifestError) as raised:
        load_manifest(tmp_path)
    message = str(raised.value)
    assert expected in message and str(manifest) in message and "\n" not in message
    assert raised.value.exit_code == 2


def test_unknown_record_keys_of_newer_writers_are_read(tmp_path: Path) -> None:
    _set("role", "triton-config")(_bundle(tmp_path) / MANIFEST_NAME)
    assert load_manifest(tmp_path).records[0].path == "a.onnx"


def test_not_a_bundle_and_unreadable_manifests(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="manifest.json is missing"):
        load_manifest(tmp_path)
    with pytest.raises(ManifestError, match="not a folder"):
        load_manifest(tmp_path / "absent")
    (tmp_path / MANIFEST_NAME).mkdir()
    with pytest.raises(ManifestError, match="not a regular file"):
        load_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).rmdir()
    (tmp_path / MANIFEST_NAME).symlink_to(MANIFEST_NAME)  # a loop: cannot be read at all
    with pytest.raises(ManifestReadError) as raised:
        load_manifest(tmp_path)
    assert raised.value.exit_code == 4 and "cannot read" in str(raised.value)


def test_a_manifest_symlinked_out_of_the_bundle_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"artifacts": [{"path": "x", "sha256": "0" * 64, "size": 1, "stage": "x"}]}))
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / MANIFEST_NAME).symlink_to(secret)
    with pytest.raises(ConvNeXtExportError, match="symlink leading outside the bundle"):
        load_manifest(tmp_path / "bundle")


def test_an_oversized_manifest_is_refused_before_it_is_read(tmp_path: Path) -> None:
    with open(tmp_path / MANIFEST_NAME, "wb") as f:
        f.truncate(MAX_MANIFEST_BYTES + 1)  # sparse: nothing is written, and nothing may be read
    with pytest.raises(ManifestError, match="not a manifest"):
        load_manifest(tmp_path)
