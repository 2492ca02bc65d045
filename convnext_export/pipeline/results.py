"""What a build made: every artifact with its verdict and details, the engines it built or skipped, latency."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from convnext_export.contract import ArtifactMetadata
    from convnext_export.evaluation.validate import ValidationResult


@dataclass
class ArtifactResult:
    """One artifact of the bundle with its validation against eager PyTorch and what made it."""

    precision: str  # fp32 | fp16 | int8-trt | int8-cpu, or <precision>-engine
    path: Path
    stage: str
    validation: ValidationResult | None  # None: not validated here (the report says why)
    details: dict = field(default_factory=dict)


@dataclass
class BuildResult:
    output_dir: Path
    artifacts: list[ArtifactResult]
    random_init: bool
    manifest_path: Path
    metadata: ArtifactMetadata
    calibration: dict | None = None
    engines: list[ArtifactResult] = field(default_factory=list)
    skipped_engines: list[EngineSkip] = field(default_factory=list)
    latency: list[dict] = field(default_factory=list)  # per artifact, backend and batch: median/p90/p99 ms
    latency_files: list[Path] = field(default_factory=list)
    evaluation: dict = field(default_factory=dict)  # what the real-image verdicts were judged on
    deploy_files: list[tuple[Path, str]] = field(default_factory=list)  # (file, manifest stage): pipeline.deploy
    deploy_notes: list[str] = field(default_factory=list)  # what the deployment files need on the device

    def artifact(self, precision: str) -> ArtifactResult:
        return next(a for a in [*self.artifacts, *self.engines] if a.precision == precision)

    @property
    def passed(self) -> bool:
        """Every verdict that may decide the exit code passed (random-weight verdicts are information only)."""
        judged = [a.validation for a in [*self.artifacts, *self.engines] if a.validation is not None]
        return all(v.passed for v in judged if v.gates)


@dataclass
class EngineSkip:
    """An engine this machine could not build, why, and the commands that build it on the target."""

    precision: str
    onnx: str
    engine: str
    reason: str
    trtexec: str
    ours: str
