"""The deployment files every bundle carries: DeepStream's nvinfer configurations and labels, and the Polygraphy
references with the commands that check each engine on the device against eager.

The build calls `write_deploy_files` once its ONNX files (and engines, where built) are in the folder and while
the eager model is still open, then records the returned files in the manifest and prints the notes. (The Triton
model repository is written on the serving machine, after the engines exist: `bundle triton`.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from convnext_export.pipeline.deepstream import write_deepstream
from convnext_export.pipeline.deployables import bundle_deployables, bundle_metadata
from convnext_export.pipeline.references import eager_references, polygraphy_checks, polygraphy_report, write_references

if TYPE_CHECKING:
    from convnext_export.pipeline.inputs import Evaluation
    from convnext_export.runners.base import Runner
    from convnext_export.trt.settings import EngineSettings


@dataclass
class DeployFiles:
    records: list[tuple[Path, str]] = field(default_factory=list)  # (file, manifest stage)
    notes: list[str] = field(default_factory=list)  # lines for the build report


def write_deploy_files(
    out: Path, settings: EngineSettings, eager: Runner | None, evaluation: Evaluation | None
) -> DeployFiles:
    """DeepStream files for the bundle in `out`; with `eager` and `evaluation`, the Polygraphy references too."""
    deployables = bundle_deployables(out, settings)
    deepstream = write_deepstream(out, deployables, bundle_metadata(deployables))
    files = DeployFiles([(p, "deepstream") for p in deepstream.paths], list(deepstream.notes))
    if eager is not None and evaluation is not None:
        references = eager_references(eager, evaluation, deployables)
        files.records += [(p, "references") for p in write_references(out, references)]
        files.notes += polygraphy_report(references, polygraphy_checks(deployables, references, settings))
    return files
