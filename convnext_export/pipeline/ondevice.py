"""On the target device: TensorRT engines from a bundle's ONNX files, with no torch needed.

`convnext-export build --onnx bundle/convnext_tiny.fp32.onnx --fp16 --int8` builds an engine per ONNX
(its own precision plus the siblings asked for), validates each against the bundle's FP32 ONNX on ONNX
Runtime where it is installed, and records them in the bundle's manifest.

The bundle is verified first (every file against its manifest, and the signature when a public key is given)
and refused when it fails, unless verification is explicitly skipped, which the manifest then records. Engines
are built in a locked staging folder beside the bundle, then moved in and the manifest replaced (each an atomic
rename), so a killed build leaves the bundle as it was. The manifest changes, so an existing signature no longer
holds: it is removed, with a warning saying to sign the bundle again.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from convnext_export._atomic import atomic_path
from convnext_export.contract import ENGINE_PRECISION, artifact_name, engine_name, split_artifact_name
from convnext_export.errors import InvalidOptionError
from convnext_export.export.metadata import onnx_metadata
from convnext_export.pipeline.bundle import (
    BundleVerificationError,
    StagingFolder,
    moved,
    remove_abandoned,
    verify_bundle,
)
from convnext_export.pipeline.inputs import evaluation_data
from convnext_export.pipeline.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    load_manifest,
    record_artifact,
    write_manifest,
)
from convnext_export.pipeline.request import BuildRequest, Progress
from convnext_export.pipeline.results import ArtifactResult, BuildResult
from convnext_export.pipeline.stages import engine_stage
from convnext_export.trt.settings import EngineSettings

if TYPE_CHECKING:
    from convnext_export.contract import ArtifactMetadata

_log = logging.getLogger(__name__)
SKIP_FLAG = "--no-verify-bundle"


def bundle_onnx_files(
    onnx_path: Path, metadata: ArtifactMetadata | None, precisions: tuple[str, ...]
) -> list[tuple[str, Path]]:
    """The given ONNX plus the precision siblings asked for (`<stem>.fp16.onnx`, `<stem>.int8-trt.onnx`)."""
    if metadata is None:
        raise InvalidOptionError(f"{onnx_path} has no convnext-export metadata: export it with convnext-export")
    own = metadata.precision
    stem = (split_artifact_name(onnx_path.name) or (onnx_path.stem, ""))[0]
    files = [(own, onnx_path)]
    for precision in precisions:
        label = "int8-trt" if precision == "int8" else precision
        sibling = onnx_path.with_name(artifact_name(stem, label))
        if label == own:
            continue
        if not sibling.is_file():
            raise InvalidOptionError(
                f"no {label} ONNX beside {onnx_path.name} ({sibling.name}): make it with "
                f"`convnext-export quantize {onnx_path.name} --precision {precision}`"
            )
        files.append((label, sibling))
    return files


def build_from_onnx(
    onnx_path: Path,
    precisions: tuple[str, ...],
    request: BuildRequest,
    progress: Progress | None = None,
    *,
    verify: bool = True,
    public_key: Path | None = None,
) -> BuildResult:
    """Engines for an existing bundle's ONNX files, validated against its FP32 ONNX where ONNX Runtime exists.

    `verify=False` builds from a bundle that fails verification (recorded in the manifest); `public_key` also
    requires the bundle's manifest signature by that key. A folder without a manifest is not a bundle: its
    engines are written beside the ONNX and no manifest is made."""
    step = progress or (lambda _: None)
    onnx_path = Path(os.path.abspath(onnx_path))
    bundle = onnx_path.parent
    _check_output_dir(request, bundle)
    metadata = onnx_metadata(onnx_path)
    files = bundle_onnx_files(onnx_path, metadata, precisions)
    is_bundle = os.path.lexists(bundle / MANIFEST_NAME)
    if not is_bundle:
        if public_key is not None:
            raise InvalidOptionError(f"{bundle} is not a bundle (no {MANIFEST_NAME}): there is no signature to check")
        _log.warning("%s is not a bundle (no %s): engines go beside the ONNX, no manifest", bundle, MANIFEST_NAME)
        return _build_engines(bundle, bundle, files, metadata, request, step)
    check = _verification(bundle, verify, public_key, step)
    remove_abandoned(bundle)
    staging = StagingFolder(bundle)
    try:
        staged = [(precision, _link_into(path, staging.path)) for precision, path in files]
        _link_cached_engines(files, bundle, staging.path)
        fp32 = _link_into(onnx_path.with_name(artifact_name(_stem(onnx_path), "fp32")), staging.path)
        result = _build_engines(staging.path, bundle, staged, metadata, request, step, fp32)
        if result.engines:
            step("adding the engines to the bundle manifest")
            add_engines_to_manifest(bundle, staging.path, result.engines, check)
    finally:
        staging.close()
    return _moved_engines(result, staging.path, bundle)


def _check_output_dir(request: BuildRequest, bundle: Path) -> None:
    """Engines go into the bundle that holds the ONNX: an --output-dir elsewhere is refused, not half-honoured."""
    if request.output_dir is not None and Path(request.output_dir).resolve() != bundle.resolve():
        raise InvalidOptionError(
            f"--output-dir {request.output_dir} with --onnx: engines are added to the bundle holding the ONNX "
            f"({bundle}); leave --output-dir out or pass that folder"
        )


def _verification(bundle: Path, verify: bool, public_key: Path | None, step: Progress) -> dict:
    """Verify the bundle (refusing it, one line per problem, when it fails), or record that this was skipped."""
    if not verify:
        if public_key is not None:
            raise InvalidOptionError(f"--public-key checks the bundle's signature: it cannot go with {SKIP_FLAG}")
        load_manifest(bundle)  # the engines are recorded in it: a malformed one fails now, not after the build
        _log.warning("bundle verification skipped (%s): %s is built from without checking its files", SKIP_FLAG, bundle)
        return {"verification": f"skipped ({SKIP_FLAG})", "signature": "not checked"}
    step("verifying the bundle against its manifest")
    result = verify_bundle(bundle, public_key)
    if not result.ok:
        for problem in result.problems:
            _log.error("bundle %s: %s", bundle, problem)
        raise BundleVerificationError(
            f"bundle {bundle} fails verification ({len(result.problems)} problem{'s' * (len(result.problems) > 1)}, "
            f"listed above): not building "
            f"from it ({SKIP_FLAG} overrides)",
            result.problems,
        )
    if result.signature_key:
        signature = f"verified with key {result.signature_key}"
    else:
        signature = "present, not checked (no public key given)" if result.signed else "unsigned"
    return {"verification": f"passed ({result.checked} files)", "signature": signature}


def _build_engines(
    work: Path,
    bundle: Path,
    files: list[tuple[str, Path]],
    metadata: ArtifactMetadata,
    request: BuildRequest,
    step: Progress,
    fp32: Path | None = None,
) -> BuildResult:
    """Build (or record as skipped) an engine per ONNX in `files`, written beside them in `work`."""
    reference = fp32 if fp32 is not None and fp32.is_file() and importlib.util.find_spec("onnxruntime") else None
    _, evaluation = evaluation_data(replace(request, precisions=("fp32",), calib=None), metadata, step)
    artifacts = [ArtifactResult(precision, path, "onnx", None) for precision, path in files]
    settings = request.engine or EngineSettings()
    engines, skipped, _ = engine_stage(
        artifacts, reference, evaluation, settings, request.batch_sizes, step, request.trt_version
    )
    return BuildResult(bundle, [], False, bundle / MANIFEST_NAME, metadata, None, engines, skipped)


def _stem(onnx_path: Path) -> str:
    return (split_artifact_name(onnx_path.name) or (onnx_path.stem, ""))[0]


def _link_into(path: Path, folder: Path) -> Path:
    """`path` made available in `folder` under its name: a hard link (the same bytes, no copy), else a copy."""
    target = folder / path.name
    if not path.is_file() or target.exists():
        return target
    try:
        os.link(path, target)
    except OSError:
        shutil.copy2(path, target)
    return target


def _link_cached_engines(files: list[tuple[str, Path]], bundle: Path, staging: Path) -> None:
    """The bundle's engines (and sidecars) for these ONNX files, so the builder reuses one that is up to date."""
    for precision, path in files:
        if precision in ENGINE_PRECISION:
            plan = bundle / engine_name(_stem(path), precision)
            _link_into(plan, staging)
            _link_into(plan.with_name(plan.name + ".json"), staging)


def add_engines_to_manifest(bundle: Path, staging: Path, engines: list[ArtifactResult], check: dict) -> None:
    """Move the engines (and their sidecars) from `staging` into the bundle and record them in its manifest,
    replacing older entries of the same names. An existing signature is removed first: it covered the old
    manifest."""
    manifest = load_manifest(bundle)
    records, paths = [], []
    for engine in engines:
        records.append(record_artifact(staging, engine.path, "engine", engine.precision))
        paths.append(engine.path)
        sidecar = engine.path.with_name(engine.path.name + ".json")
        if sidecar.is_file():
            records.append(record_artifact(staging, sidecar, "engine-metadata"))
            paths.append(sidecar)
    check = {**check, "previous_signature_removed": os.path.lexists(bundle / SIGNATURE_NAME)}
    if check["previous_signature_removed"]:
        (bundle / SIGNATURE_NAME).unlink()
        _log.warning(
            "%s changed (engines added), so its signature was removed: sign it again with "
            "`convnext-export bundle sign %s --key KEY`",
            MANIFEST_NAME,
            bundle,
        )
    for path in paths:
        _move_into(path, bundle / path.name)
    new = {r.path for r in records}
    kept = [r for r in manifest.records if r.path not in new]
    write_manifest(bundle, kept + records, **{**manifest.sections, "device_build": check})


def _move_into(source: Path, target: Path) -> None:
    """Rename `source` onto `target` (atomic); across filesystems, copy to a temporary name and rename that."""
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        with atomic_path(target) as tmp:
            shutil.copy2(source, tmp)


def _moved_engines(result: BuildResult, staging: Path, bundle: Path) -> BuildResult:
    for engine in result.engines:
        engine.path = moved(engine.path, staging, bundle)
        engine.details = moved(engine.details, staging, bundle)
    return result
