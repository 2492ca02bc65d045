"""The deploy bundle: a build directory that a Jetson (or any target) can check and rebuild engines from.

Contents: the ONNX files, engines when built, the calibration cache, `labels.txt`, `report.json`,
`build_engine.sh` (rebuilds every engine on the target with trtexec or this CLI: engines are not
portable across GPUs or TensorRT versions) and `manifest.json` (sha256 and size of every file), optionally
signed (`manifest.json.sig`, pipeline/signing.py).

A bundle is exactly its manifest: `verify_bundle` checks every listed file and refuses any file that is not
listed and any listed path that leaves the folder. A build writes a fresh folder and swaps it in when complete
(`fresh_bundle`), so nothing of an older or killed run is left in it. Nothing here imports torch, onnx or
cryptography at import time, so it runs on the device.
"""

from __future__ import annotations

import contextlib
import fnmatch
import itertools
import os
import secrets
import shlex
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from convnext_export._atomic import atomic_path
from convnext_export._files import sha256_of
from convnext_export.contract import split_artifact_name
from convnext_export.errors import ConvNeXtExportError
from convnext_export.pipeline.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    ArtifactRecord,
    Manifest,
    ManifestError,
    load_manifest,
    unsafe_path_reason,
)
from convnext_export.pipeline.signing import (
    fingerprint,
    load_private_key,
    load_public_key,
    sign_manifest,
    signature_problem,
)

try:
    import fcntl
except ImportError:  # Windows: no flock; abandoned staging folders stay (hidden siblings, never trusted)
    fcntl = None

LABELS_NAME = "labels.txt"


BUILD_SCRIPT_NAME = "build_engine.sh"


CALIBRATION_NAME = "calibration.json"


class BundleError(ConvNeXtExportError):
    """A bundle folder that cannot be used as asked: one a build may not replace, for instance."""


class BundleWriteError(BundleError):
    """A bundle file or folder that cannot be written or replaced (an I/O error)."""

    exit_code = 4


@dataclass
class EngineRecipe:
    """How to rebuild one engine on the target: the ONNX it comes from, trtexec's command for each TensorRT
    release it can be built with (their options differ), and this CLI's command."""

    onnx: str  # file name inside the bundle
    engine: str
    trtexec: dict[str, list[str]]  # release (8.5, 8.6, 10, 11) -> command
    ours: list[str]


def write_labels(out: Path, labels: list[str] | None) -> Path | None:
    """One class name per line, in class-index order (what `infer` and user code read)."""
    if not labels:
        return None
    target = out / LABELS_NAME
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(labels) + "\n", encoding="utf-8")
    return target


def copy_calibration_cache(out: Path, cache: str | os.PathLike[str] | None) -> Path | None:
    """The calibration ranges (ONNX Runtime's JSON) travel with the bundle so INT8 can be rebuilt identically."""
    if not cache or not Path(cache).is_file():
        return None
    target = out / CALIBRATION_NAME
    with atomic_path(target) as tmp:
        tmp.write_bytes(Path(cache).read_bytes())
    return target


# How the script reads the TensorRT version on the device, in order: trtexec's banner ("[TensorRT v8601]" on 8.x,
# major*1000+minor*100+patch; "[TensorRT v100300]" on 10.x/11.x, major*10000+minor*100+patch), the tensorrt Python
# module, then the package manager (libnvinfer's Debian version: JetPack installs it that way).
_VERSION_PROBE = r"""trt_version() {
  local v
  v=$("$TRTEXEC" --help 2>/dev/null | sed -n 's/.*\[TensorRT v\([0-9][0-9]*\)\].*/\1/p' | head -n 1) || true
  if [ -n "$v" ]; then
    if [ "${#v}" -ge 6 ]; then echo "$((v / 10000)).$((v / 100 % 100))"; else echo "$((v / 1000)).$((v / 100 % 10))"; fi
    return
  fi
  python3 -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null && return
  dpkg-query -W -f='${Version}\n' 'libnvinfer[0-9]*' 2>/dev/null | head -n 1
}
release_of() {
  case "$1" in 8.5*) echo 8.5 ;; 8.6*) echo 8.6 ;; 10.*) echo 10 ;; 11.*) echo 11 ;; *) echo unknown ;; esac
}"""


def write_build_script(out: Path, recipes: list[EngineRecipe]) -> Path:
    """`build_engine.sh [trtexec|cli]`: rebuild every engine of the bundle on the device it will run on, with the
    trtexec options of the TensorRT found there; exit non-zero when any engine fails or cannot be built."""
    releases = [r for r in ("8.5", "8.6", "10", "11") if all(r in recipe.trtexec for recipe in recipes)]
    lines = [
        "#!/usr/bin/env bash",
        "# Rebuild this bundle's TensorRT engines on the target device (engines are specific to the GPU and the",
        "# TensorRT version). Usage: ./build_engine.sh [trtexec|cli]   (default: trtexec when found)",
        "# trtexec: $TRTEXEC, else on PATH, else /usr/src/tensorrt/bin/trtexec (JetPack). Its options differ",
        f"# by TensorRT release; this bundle has command lines for {', '.join(releases)}.",
        "# Engines trtexec builds are not recorded in manifest.json (`convnext-export bundle verify` lists them as",
        "# unlisted files); the cli route records each engine in the manifest.",
        "set -uo pipefail",
        'cd "$(dirname "$0")"',
        'TRTEXEC="${TRTEXEC:-$(command -v trtexec || true)}"',
        'if [ -z "$TRTEXEC" ] && [ -x /usr/src/tensorrt/bin/trtexec ]; then TRTEXEC=/usr/src/tensorrt/bin/trtexec; fi',
        'mode="${1:-}"',
        'if [ -z "$mode" ]; then if [ -n "$TRTEXEC" ]; then mode=trtexec; else mode=cli; fi; fi',
        "# the ONNX files must be the ones this bundle was built and validated with (needs only coreutils)",
        *(
            f"echo {shlex.quote(sha256_of([out / r.onnx]) + '  ' + r.onnx)} | sha256sum -c --quiet - || exit 1"
            for r in recipes
        ),
        _VERSION_PROBE,
        "failed=0",
        'case "$mode" in',
        "  trtexec)",
        '    if [ -z "$TRTEXEC" ]; then echo "trtexec not found: set TRTEXEC or put trtexec on PATH" >&2; exit 2; fi',
        '    version="$(trt_version)"',
        '    echo "TensorRT ${version:-(version unknown)} ($TRTEXEC)" >&2',
        '    case "$(release_of "$version")" in',
        *_release_blocks(recipes, releases),
        "      *)",
        f'        echo "TensorRT ${{version:-of unknown version}}: commands here are for {", ".join(releases)}" >&2',
        "        exit 2 ;;",
        "    esac",
        "    ;;",
        "  cli)",
        *(f"    {shlex.join(r.ours)} || failed=1" for r in recipes),
        "    ;;",
        '  *) echo "usage: $0 [trtexec|cli]" >&2; exit 2 ;;',
        "esac",
        'if [ "$failed" -ne 0 ]; then echo "some engines were not built" >&2; exit 1; fi',
    ]
    target = out / BUILD_SCRIPT_NAME
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    target.chmod(0o755)
    return target


def _release_blocks(recipes: list[EngineRecipe], releases: list[str]) -> list[str]:
    """One `case` branch per release: its trtexec command for every engine, each failure counted."""
    lines = []
    for release in releases:
        lines.append(f"      {release})")
        lines += [f'        "$TRTEXEC" {shlex.join(r.trtexec[release][1:])} || failed=1' for r in recipes]
        lines.append("        ;;")
    return lines


# --- verification: the folder is exactly its manifest -----------------------------------------------------------

MAX_UNLISTED_SHOWN = 100  # a folder of a million stray files is reported in bounded output
MAX_SIGNATURE_BYTES = 4096


@dataclass
class VerifyResult:
    """What `verify_bundle` found: one line per problem (each naming the file), and the signature's state."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)
    signed: bool = False  # a manifest.json.sig is present
    signature_key: str | None = None  # fingerprint of the public key that verified the signature

    @property
    def ok(self) -> bool:
        return not self.problems


class BundleVerificationError(BundleError):
    """A bundle that fails verification, refused by a command that builds from it (exit 1, as `bundle verify`)."""

    exit_code = 1

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


def verify_bundle(directory: str | os.PathLike[str], public_key: str | os.PathLike[str] | None = None) -> VerifyResult:
    """Check that the folder is exactly its manifest: every listed file present with its size and sha256, no
    file that is not listed (except manifest.json and manifest.json.sig), every listed path a plain relative
    path that stays inside the folder. With `public_key`, the manifest must carry a valid signature by it.

    Nothing outside the folder is read: a path that is absolute, holds `..` or resolves (through a symlink)
    outside is reported and not opened. A missing or malformed manifest raises ManifestError (one line)."""
    key = load_public_key(Path(public_key)) if public_key is not None else None  # a bad key is a usage error: first
    return _verify(Path(directory), key)[0]


def _verify(root: Path, key: object | None) -> tuple[VerifyResult, Manifest]:
    """verify_bundle's checks, and the manifest as read (the bytes a signature covers: read once)."""
    manifest = load_manifest(root)
    base = root.resolve()
    result = VerifyResult(checked=len(manifest.records))
    for record in manifest.records:
        problem = _file_problem(base, record)
        if problem:
            result.problems.append(problem)
    result.problems += _unlisted_problems(base, {r.path for r in manifest.records})
    result.signed = os.path.lexists(base / SIGNATURE_NAME)
    signature = _read_signature(base, result) if result.signed else None
    if key is not None and (signature is not None or not result.signed):  # else: its problem is listed already
        problem = signature_problem(manifest.raw, signature, key)
        if problem:
            result.problems.append(problem)
        else:
            result.signature_key = fingerprint(key)
    return result, manifest


@dataclass
class SignResult:
    problems: list[str]  # the bundle's verification problems: nothing was signed
    signature: Path | None = None
    key: str | None = None  # the signing key's fingerprint


def sign_bundle(directory: str | os.PathLike[str], private_key: str | os.PathLike[str]) -> SignResult:
    """Write manifest.json.sig, the Ed25519 signature of the manifest's bytes, if the bundle verifies (a
    signature vouches for the files, so a bundle that does not match its manifest is not signed)."""
    key = load_private_key(Path(private_key))
    root = Path(directory)
    result, manifest = _verify(root, None)
    if not result.ok:
        return SignResult(result.problems)
    target = root / SIGNATURE_NAME
    try:
        with atomic_path(target) as tmp:
            tmp.write_bytes(sign_manifest(manifest.raw, key))
    except OSError as exc:
        raise BundleWriteError(f"cannot write {target}: {exc.strerror or exc}") from None
    return SignResult([], target, fingerprint(key.public_key()))


def _file_problem(base: Path, record: ArtifactRecord) -> str | None:
    """Why the listed file does not match its record (None: it matches). Never opens a path outside `base`."""
    name = record.path
    reason = unsafe_path_reason(name)
    if reason is not None:
        return f"unsafe path: {name} ({reason}): not read"
    try:
        resolved = (base / name).resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return f"unsafe path: {name} (a symlink loop): not read"
    if not resolved.is_relative_to(base):
        return f"unsafe path: {name} (a symlink leading outside the bundle): not read"
    try:
        info = resolved.stat()
        if not stat.S_ISREG(info.st_mode):
            return f"not a regular file: {name}"
        if info.st_size != record.size:
            return f"size differs: {name} (manifest {record.size} bytes, file {info.st_size})"
        if sha256_of([resolved]) != record.sha256:
            return f"sha256 differs: {name}"
    except FileNotFoundError:
        return f"missing: {name}"
    except OSError as exc:
        return f"unreadable: {name} ({exc.strerror or exc})"
    return None


def _unlisted_problems(base: Path, listed: set[str]) -> list[str]:
    """A line for every file, link or empty folder in the tree that the manifest does not list."""
    entries, unreadable = tree_entries(base)
    # an empty folder on the way to a listed path (or at it) is reported as that path's problem, not here
    on_the_way = {f"{'/'.join(p.split('/')[:i])}/" for p in listed for i in range(1, p.count("/") + 2)}
    known = listed | on_the_way | {MANIFEST_NAME, SIGNATURE_NAME}
    unlisted = [e for e in entries if e not in known]
    lines = [f"unlisted: {name} (not in the manifest)" for name in unlisted[:MAX_UNLISTED_SHOWN]]
    if len(unlisted) > MAX_UNLISTED_SHOWN:
        lines.append(f"unlisted: {len(unlisted) - MAX_UNLISTED_SHOWN} more files not in the manifest")
    return unreadable + lines


def _read_signature(base: Path, result: VerifyResult) -> bytes | None:
    """The bytes of manifest.json.sig when it is a plain file of the folder; a signature file that is a link, a
    folder or oversized is a problem of its own (None), and is not read."""
    path = base / SIGNATURE_NAME
    if path.is_symlink() or not path.is_file():
        result.problems.append(f"unsafe path: {SIGNATURE_NAME} (not a regular file): not read")
        return None
    try:
        if path.stat().st_size > MAX_SIGNATURE_BYTES:
            result.problems.append(f"signature malformed: {SIGNATURE_NAME} is {path.stat().st_size} bytes")
            return None
        return path.read_bytes()
    except OSError as exc:
        result.problems.append(f"unreadable: {SIGNATURE_NAME} ({exc.strerror or exc})")
        return None


# --- replacing a bundle: build in a fresh folder beside it, swap it in when complete ---------------------------
#
# A build writes into `.<name>.partial-<random>` beside the target and renames it onto the target only when every
# file and the manifest are written, so no file of an older or killed run survives in the bundle, and a killed run
# leaves only that hidden sibling, which `bundle verify` never sees. The swap is two renames (the old bundle to
# `.<name>.old-<random>`, the new one onto the name, then the old one removed); a kill between the two leaves no
# bundle at the name (nothing to trust) rather than a mixed one. Each staging folder is locked (flock) while its
# build runs, so the next run removes the leftovers whose owner is gone and leaves a concurrent build alone.

STAGING_MARK = ".partial-"
RETIRED_MARK = ".old-"
# Files a build writes that older versions left beside a newer manifest (stale precisions, latency reports, the
# temporary files of killed runs): a bundle holding only these and its listed files may be replaced.
_BUILD_FILES = {MANIFEST_NAME, SIGNATURE_NAME, LABELS_NAME, BUILD_SCRIPT_NAME, CALIBRATION_NAME}
_BUILD_FILE_PATTERNS = ("latency.*", "*.plan.json", "*.plan.*.calib")
_TEMPORARY_FILES = (".*.partial", ".write-test-*")  # atomic_path's and prepare_output_dir's
_TEMPORARY_FOLDERS = (".export-*",)  # export_stage's scratch folder


def temporary_leftover(name: str) -> bool:
    """Whether `name` (relative, POSIX) is a temporary file or folder of a killed run of this toolkit."""
    first = name.split("/")[0]
    if any(fnmatch.fnmatchcase(first, p) for p in _TEMPORARY_FOLDERS):
        return True
    return "/" not in name and any(fnmatch.fnmatchcase(name, p) for p in _TEMPORARY_FILES)


def written_by_a_build(name: str) -> bool:
    """Whether `name` (relative, POSIX) is a file this toolkit's builds write into a bundle, or a leftover."""
    if temporary_leftover(name):
        return True
    return "/" not in name and (
        name in _BUILD_FILES
        or any(fnmatch.fnmatchcase(name, p) for p in _BUILD_FILE_PATTERNS)
        or split_artifact_name(name) is not None
    )


def check_replaceable(target: Path) -> None:
    """Refuse, in one line, to replace a folder that holds files a build did not write: a folder without a
    manifest that is not empty, or a bundle that holds files its manifest does not list (user files are
    never deleted). Absent or empty folders and bundles of this toolkit may be replaced."""
    if not os.path.lexists(target):
        return
    inside = False
    if not target.is_dir():
        raise BundleError(f"{target} is a file, not a folder: choose another output folder")
    if os.path.ismount(target):
        raise BundleError(f"{target} is a mount point: a build replaces its folder whole, so use a folder inside it")
    with contextlib.suppress(OSError):
        inside = Path.cwd().resolve().is_relative_to(target.resolve())
    if inside:
        raise BundleError(f"a build replaces {target} whole and the current folder is inside it: run it from outside")
    if not os.path.lexists(target / MANIFEST_NAME):
        unreadable: list[str] = []
        foreign = list(itertools.islice((e for e in walk_entries(target, unreadable) if not temporary_leftover(e)), 4))
        if foreign or unreadable:  # a user's folder may be large: the first few files found are enough to say no
            shown = ", ".join(sorted(foreign)[:3]) + (", ..." if len(foreign) > 3 else "") or unreadable[0]
            raise BundleError(
                f"refusing to replace {target}: it is not a bundle (no {MANIFEST_NAME}) and is not empty ({shown}); "
                "choose an empty or new output folder"
            )
        return
    try:
        listed = {r.path for r in load_manifest(target).records}
    except ManifestError as exc:
        raise BundleError(f"refusing to replace {target}: its manifest cannot be read ({exc})") from None
    entries, unreadable = tree_entries(target)
    foreign = [e for e in entries if e not in listed and not written_by_a_build(e)] + unreadable
    if foreign:
        raise BundleError(
            f"refusing to replace bundle {target}: it holds {_some(foreign)} that its manifest does not list "
            "(move them out, or choose another output folder)"
        )


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return f"{len(names)} file{'s' if len(names) != 1 else ''} ({shown}{', ...' if len(names) > 3 else ''})"


def tree_entries(base: Path) -> tuple[list[str], list[str]]:
    """Every file, link and empty folder under `base` (relative POSIX paths, links not followed, an empty
    folder as `name/`), and a line for each folder that could not be read."""
    unreadable: list[str] = []
    return sorted(walk_entries(base, unreadable)), unreadable


def walk_entries(base: Path, unreadable: list[str]) -> Iterator[str]:
    """tree_entries' entries as they are found (a caller may stop early), folders that cannot be read added to
    `unreadable`."""

    def walk_error(exc: OSError) -> None:
        where = os.path.relpath(exc.filename, base) if exc.filename else "?"
        unreadable.append(f"unreadable: {Path(where).as_posix()}/ ({exc.strerror or exc})")

    for folder, dirs, files in os.walk(base, onerror=walk_error):
        here = Path(folder).relative_to(base)
        links = [d for d in dirs if os.path.islink(os.path.join(folder, d))]  # os.walk does not enter them
        if here != Path(".") and not files and not dirs:
            yield here.as_posix() + "/"
        yield from ((here / name).as_posix() for name in [*files, *links])


class StagingFolder:
    """A new, locked, hidden folder beside `target` (`.<name>.partial-<random>`); removed by `close` unless it was
    moved onto the target. The lock is held on the folder itself until `close`."""

    def __init__(self, target: Path) -> None:
        target = Path(os.path.abspath(target))  # "." has no parent to stage beside
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(prefix=f".{target.name}{STAGING_MARK}", dir=target.parent))
        except OSError as exc:
            raise BundleError(f"cannot write to output directory {target}: {exc.strerror or exc}") from None
        os.chmod(self.path, 0o777 & ~_umask())  # mkdtemp makes 0700; the bundle should read like any new folder
        self._lock = _lock_folder(self.path)

    def close(self) -> None:
        if self.path.is_dir() and not self.path.is_symlink():  # gone when it was moved onto the target
            shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def remove_abandoned(target: Path) -> list[Path]:
    """Remove the staging and retired folders of `target` whose build is no longer running (their lock is
    free): what a killed run left. A folder another running build holds is left alone."""
    removed = []
    if fcntl is None or not target.parent.is_dir():
        return removed  # without advisory locks a live build cannot be told from a dead one: leave them
    prefixes = (f".{target.name}{STAGING_MARK}", f".{target.name}{RETIRED_MARK}")
    for entry in sorted(target.parent.iterdir()):
        if not entry.name.startswith(prefixes) or entry.is_symlink() or not entry.is_dir():
            continue
        lock = _lock_folder(entry)
        if lock is None:
            continue  # a build is running there
        try:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        finally:
            os.close(lock)
    return removed


@contextlib.contextmanager
def fresh_bundle(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh folder to build the bundle in; when the block completes, it replaces `target` whole.

    Refused before anything is built: a `target` that holds files a build did not write (check_replaceable).
    On any failure or interruption the fresh folder is removed and `target` is left as it was."""
    target = Path(os.path.abspath(target))
    real = target.resolve()  # a symlinked output folder: replace the folder it points to, keep the link
    check_replaceable(real)
    remove_abandoned(real)
    staging = StagingFolder(real)
    try:
        yield staging.path
        check_replaceable(real)  # again: files may have been put there while the build ran
        replace_folder(staging.path, real)
    finally:
        staging.close()


def replace_folder(new: Path, target: Path) -> None:
    """Put `new` at `target`: the old folder is renamed away first and removed once `new` is in place."""
    retired = target.with_name(f".{target.name}{RETIRED_MARK}{secrets.token_hex(4)}")
    try:
        if os.path.lexists(target):
            os.rename(target, retired)
        try:
            os.rename(new, target)
        except OSError:
            if os.path.lexists(retired):
                os.rename(retired, target)
            raise
    except OSError as exc:
        raise BundleWriteError(f"cannot replace {target}: {exc.strerror or exc}") from None
    shutil.rmtree(retired, ignore_errors=True)


def moved(value: object, old: Path, new: Path) -> object:
    """`value` (a path, a string, or containers of them) with paths under `old` rewritten under `new`."""
    if isinstance(value, Path):
        return new / value.relative_to(old) if value.is_relative_to(old) else value
    if isinstance(value, str) and os.path.isabs(value) and Path(value).is_relative_to(old):
        return str(new / Path(value).relative_to(old))
    if isinstance(value, dict):
        return {k: moved(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [moved(v, old, new) for v in value]
    return value


def bundle_relative(value: object, root: Path) -> object:
    """`value` with absolute paths inside the bundle `root` made relative to it (what a report or manifest keeps:
    the folder is moved to the device, and the build ran in a staging folder)."""
    if isinstance(value, str) and os.path.isabs(value) and Path(value).is_relative_to(root):
        return Path(value).relative_to(root).as_posix()
    if isinstance(value, dict):
        return {k: bundle_relative(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [bundle_relative(v, root) for v in value]
    return value


def _lock_folder(path: Path) -> int | None:
    """An exclusive, non-blocking flock on the folder (its descriptor), or None when another process holds it."""
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
