"""The bundle (`pipeline.bundle`): a folder is exactly its manifest, and a build replaces it only when complete.

- Verification: every way to make a folder differ from its manifest (a changed, missing, added or unsafe file)
  is one problem line naming the file, and nothing outside the folder is ever opened.
- Replacement: a build writes a fresh staging folder and swaps it in; nothing of an older or killed run survives,
  a folder holding user files is refused before anything is built, and a killed run's leftovers are invisible to
  `bundle verify` and removed by the next run (while a live build's are left alone).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import convnext_export.pipeline.bundle as bundle_module
from convnext_export.pipeline.bundle import (
    MAX_UNLISTED_SHOWN,
    STAGING_MARK,
    BundleError,
    StagingFolder,
    bundle_relative,
    fresh_bundle,
    remove_abandoned,
    verify_bundle,
)
from convnext_export.pipeline.manifest import MANIFEST_NAME, record_artifact, write_manifest
from tests._paths import ROOT


def make_bundle(folder: Path) -> Path:
    """A small bundle: two files at the top, one in a subfolder, and the manifest over them."""
    (folder / "sub").mkdir(parents=True)
    files = {"a.fp32.onnx": b"onnx bytes" * 10, "labels.txt": b"zero\none\n", "sub/config.pbtxt": b"name: 'x'\n"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    write_manifest(folder, [record_artifact(folder, folder / name, "x") for name in files])
    return folder


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "bundle")


def _edit_manifest(folder: Path, change: Callable[[list], None]) -> None:
    document = json.loads((folder / MANIFEST_NAME).read_text())
    change(document["artifacts"])
    (folder / MANIFEST_NAME).write_text(json.dumps(document))


def _entry(path: str) -> dict:
    return {"path": path, "sha256": "0" * 64, "size": 1, "stage": "x"}


def _flip_byte(folder: Path) -> None:
    data = bytearray((folder / "a.fp32.onnx").read_bytes())
    data[3] ^= 0xFF
    (folder / "a.fp32.onnx").write_bytes(bytes(data))


def _link_listed_file_outside(folder: Path) -> None:
    (folder / "labels.txt").unlink()
    (folder / "labels.txt").symlink_to(folder.parent / "outside.txt")


# damage -> the one problem line it must give (each case breaks exactly one thing)
TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "changed bytes": (_flip_byte, "sha256 differs: a.fp32.onnx"),
    "appended": (
        lambda f: (f / "labels.txt").write_bytes(b"zero\none\ntwo\n"),
        "size differs: labels.txt (manifest 9 bytes, file 13)",
    ),
    "deleted": (lambda f: (f / "sub" / "config.pbtxt").unlink(), "missing: sub/config.pbtxt"),
    "added script": (lambda f: (f / "evil.sh").write_text("rm -rf /\n"), "unlisted: evil.sh (not in the manifest)"),
    "stray precision": (lambda f: (f / "a.fp16.onnx").write_bytes(b"x"), "unlisted: a.fp16.onnx"),
    "partial of a killed run": (lambda f: (f / ".a.fp32.onnx.x1.partial").touch(), "unlisted: .a.fp32.onnx.x1.partial"),
    "file in a subfolder": (lambda f: (f / "sub" / "extra").touch(), "unlisted: sub/extra"),
    "empty folder": (lambda f: (f / "empty").mkdir(), "unlisted: empty/"),
    "symlink out": (lambda f: (f / "hostname").symlink_to("/etc/hostname"), "unlisted: hostname"),
    "listed file linked out": (
        _link_listed_file_outside,
        "unsafe path: labels.txt (a symlink leading outside the bundle): not read",
    ),
    "listed path is a folder": (
        lambda f: ((f / "labels.txt").unlink(), (f / "labels.txt").mkdir()),
        "not a regular file: labels.txt",
    ),
    "listed path is a fifo": (lambda f: ((f / "labels.txt").unlink(), os.mkfifo(f / "labels.txt")), "not a regular"),
    "absolute entry": (lambda f: _edit_manifest(f, lambda a: a.append(_entry("/etc/hostname"))), "(an absolute path)"),
    "dot-dot entry": (
        lambda f: _edit_manifest(f, lambda a: a.append(_entry("../../../../etc/passwd"))),
        "unsafe path: ../../../../etc/passwd (leaves the bundle through ..): not read",
    ),
    "manifest lists itself": (
        lambda f: _edit_manifest(f, lambda a: a.append(_entry(MANIFEST_NAME))),
        "unsafe path: manifest.json (the manifest cannot list itself)",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_each_tampering_is_one_line_naming_the_file(bundle: Path, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (bundle.parent / "outside.txt").write_bytes(b"zero\none\n")  # same bytes as labels.txt: a link to it would match
    damage, expected = TAMPERING[case]
    assert verify_bundle(bundle).ok
    damage(bundle)
    opened = []
    real = bundle_module.sha256_of
    monkeypatch.setattr(bundle_module, "sha256_of", lambda paths: opened.extend(paths) or real(paths))
    result = verify_bundle(bundle)
    assert len(result.problems) == 1 and expected in result.problems[0], result.problems
    root = bundle.resolve()
    assert opened and all(Path(p).resolve().is_relative_to(root) for p in opened)  # nothing outside was read


def test_a_consistent_edit_of_file_and_hash_passes_without_a_signature(bundle: Path) -> None:
    """What only a signature catches (tests/pipeline/test_signing.py checks that it does)."""
    (bundle / "labels.txt").write_text("evil\n")
    _edit_manifest(bundle, lambda a: a.__setitem__(1, vars(record_artifact(bundle, bundle / "labels.txt", "x"))))
    assert verify_bundle(bundle).ok


def test_a_listed_symlink_inside_the_bundle_is_followed(bundle: Path) -> None:
    (bundle / "labels.txt").unlink()
    (bundle / "labels.txt").symlink_to("sub/config.pbtxt")
    _edit_manifest(bundle, lambda a: a.__setitem__(1, {**a[2], "path": "labels.txt"}))
    assert verify_bundle(bundle).ok


def test_unlisted_files_are_reported_in_bounded_output(bundle: Path) -> None:
    for i in range(MAX_UNLISTED_SHOWN + 50):
        (bundle / f"stray{i:04d}").touch()
    problems = verify_bundle(bundle).problems
    assert len(problems) == MAX_UNLISTED_SHOWN + 1 and problems[-1] == "unlisted: 50 more files not in the manifest"


# --- replacing a bundle ----------------------------------------------------------------------------------------


def _siblings(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


def test_a_build_replaces_the_old_bundle_whole(bundle: Path) -> None:
    (bundle / "latency.csv").write_text("old\n")  # files older versions left unlisted beside a newer manifest
    (bundle / ".a.fp32.onnx.abc.partial").touch()
    (bundle / "a.int8-cpu.onnx").write_bytes(b"stale")
    with fresh_bundle(bundle) as out:
        assert out.parent == bundle.parent and out.name.startswith(f".bundle{STAGING_MARK}")
        assert (bundle / "labels.txt").is_file()  # the old bundle stays whole until the new one is complete
        (out / "labels.txt").write_text("new\n")
        write_manifest(out, [record_artifact(out, out / "labels.txt", "labels")])
    assert sorted(p.name for p in bundle.iterdir()) == ["labels.txt", MANIFEST_NAME]
    assert verify_bundle(bundle).ok and _siblings(bundle) == []
    assert oct(bundle.stat().st_mode & 0o777) == oct(0o777 & ~_umask())  # not mkdtemp's 0700


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@pytest.mark.parametrize("failure", [RuntimeError("stage failed"), KeyboardInterrupt()])
def test_a_failed_build_leaves_the_old_bundle_and_nothing_else(bundle: Path, failure: BaseException) -> None:
    before = sorted(p.name for p in bundle.rglob("*"))
    with pytest.raises(type(failure)), fresh_bundle(bundle) as out:
        (out / "a.fp32.onnx").write_bytes(b"half")
        raise failure
    assert sorted(p.name for p in bundle.rglob("*")) == before and verify_bundle(bundle).ok
    assert _siblings(bundle) == []


@pytest.mark.parametrize(
    ("prepare", "expected"),
    [
        (
            lambda t: (t.mkdir(), (t / "notes.txt").write_text("mine")),
            "not a bundle (no manifest.json) and is not empty (notes.txt)",
        ),
        (lambda t: (t.mkdir(), (t / "w.fp32.onnx").write_text("mine")), "not a bundle"),  # an `export` output
        (lambda t: (make_bundle(t), (t / "weights.pth").write_text("mine")), "its manifest does not list"),
        (lambda t: (make_bundle(t), (t / "calib").mkdir(), (t / "calib" / "1.png").touch()), "calib/1.png"),
        (lambda t: (make_bundle(t), (t / MANIFEST_NAME).write_text("{")), "its manifest cannot be read"),
        (lambda t: t.write_text("a file"), "is a file, not a folder"),
    ],
)
def test_a_folder_with_user_files_is_refused_before_anything_is_written(
    tmp_path: Path, prepare: Callable[[Path], None], expected: str
) -> None:
    target = tmp_path / "out"
    prepare(target)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(BundleError) as raised, fresh_bundle(target):
        pytest.fail("the build must not start")
    assert expected in str(raised.value) and "\n" not in str(raised.value) and raised.value.exit_code == 2
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_empty_and_absent_folders_and_leftovers_only_are_replaced(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "leftovers").mkdir()
    (tmp_path / "leftovers" / ".x.onnx.123.partial").touch()
    (tmp_path / "leftovers" / ".export-abc").mkdir()
    for name in ("empty", "absent", "leftovers"):
        with fresh_bundle(tmp_path / name) as out:
            (out / "f").touch()
        assert [p.name for p in (tmp_path / name).iterdir()] == ["f"]


def test_a_symlinked_output_folder_keeps_its_link(bundle: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(bundle)
    with fresh_bundle(link) as out:
        (out / "new").touch()
    assert link.is_symlink() and (link / "new").is_file() and [p.name for p in bundle.iterdir()] == ["new"]


def test_the_build_refuses_to_replace_the_current_folder(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(bundle / "sub")
    with pytest.raises(BundleError, match="current folder is inside it"), fresh_bundle(bundle):
        pytest.fail("the build must not start")


_KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from convnext_export.pipeline.bundle import fresh_bundle
    with fresh_bundle(Path(sys.argv[1])) as out:
        (out / "a.fp32.onnx").write_bytes(b"half an onnx")
        (out / ".report.json.x.partial").touch()
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_killed_run_leaves_nothing_the_next_run_trusts(bundle: Path) -> None:
    before = (bundle / "a.fp32.onnx").read_bytes()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(bundle)], env=env, cwd=ROOT)
    assert done.returncode == -signal.SIGKILL
    (leftover,) = _siblings(bundle)
    assert STAGING_MARK in leftover and (bundle.parent / leftover / "a.fp32.onnx").is_file()
    assert verify_bundle(bundle).ok and (bundle / "a.fp32.onnx").read_bytes() == before  # the old bundle, intact
    with fresh_bundle(bundle) as out:
        assert _siblings(bundle) == [out.name]  # the dead run's folder is gone; only this run's is there
        (out / "new").touch()
    assert _siblings(bundle) == [] and [p.name for p in bundle.iterdir()] == ["new"]


def test_a_running_build_keeps_its_staging_folder(bundle: Path) -> None:
    running = StagingFolder(bundle)  # held (locked) by this process, as by another build
    try:
        assert remove_abandoned(bundle) == [] and running.path.is_dir()
    finally:
        running.close()
    assert not running.path.exists()


def test_reports_keep_paths_relative_to_the_bundle(tmp_path: Path) -> None:
    staging = tmp_path / ".b.partial-1"
    document = {"engine_path": str(staging / "m.plan"), "rows": [{"artifact": str(staging / "m.onnx")}], "n": 1}
    assert bundle_relative(document, staging) == {"engine_path": "m.plan", "rows": [{"artifact": "m.onnx"}], "n": 1}
    assert bundle_relative(str(tmp_path / "calib"), staging) == str(tmp_path / "calib")
