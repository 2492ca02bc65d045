"""The TensorRT API conformance machinery, shared by tests/trt/test_api_conformance.py and
scripts/trt_api_report.py:

- NVIDIA's bindings fetched by scripts/fetch_trt_bindings.sh DEST (CONVNEXT_EXPORT_TRT_BINDINGS=DEST), and each
  release's API dumped from them in its own process (tests/trt/_dump_api.py), cached in DEST;
- the names the project touches, found by running its TensorRT code paths (builds of every precision and option,
  failures, the runner with CUDA graphs, DLA and version-compatible engines, the layer profile, inspect) against the
  recording stand-in of each builder generation (tests/trt/_standin.py) and keeping every use it recorded; a name the
  project starts to use is checked without anyone listing it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests._paths import ROOT
from tests.trt._api import MODULE, Api, Use

ENV = "CONVNEXT_EXPORT_TRT_BINDINGS"
DUMPER = ROOT / "tests" / "trt" / "_dump_api.py"
STANDIN_OF = {"8": "8.6", "10": "10", "11": "11"}  # the stand-in release line that runs each generation's paths


@dataclass(frozen=True)
class Release:
    version: str
    generation: str
    python_tag: str
    pythonpath: str
    ld_library_path: str


def bindings_dir() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value) if value else None


def releases() -> tuple[list[Release], str | None]:
    """The fetched releases for this Python, or ([], why not) in one line."""
    dest = bindings_dir()
    if dest is None:
        return [], f"{ENV} is not set (scripts/fetch_trt_bindings.sh DEST fetches NVIDIA's bindings; then {ENV}=DEST)"
    listing = dest / "releases.txt"
    if not listing.is_file():
        return [], f"{listing} does not exist: run scripts/fetch_trt_bindings.sh {dest}"
    found = [Release(*line.split()) for line in listing.read_text().splitlines() if line.strip()]
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    if not found or any(r.python_tag != tag for r in found):
        return [], f"{listing} lists bindings for {sorted({r.python_tag for r in found})}, not this Python ({tag})"
    return found, None


def _release_env(release: Release) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = release.pythonpath
    env["LD_LIBRARY_PATH"] = release.ld_library_path + os.pathsep + env.get("LD_LIBRARY_PATH", "")
    return env


def load_api(release: Release) -> Api:
    """The release's API, dumped from its bindings once per dumper version (the dump is cached in DEST)."""
    digest = hashlib.sha256(DUMPER.read_bytes()).hexdigest()[:12]
    out = bindings_dir() / f"api-{release.version}-{release.python_tag}-{digest}.json"
    if not out.is_file():
        tmp = out.with_suffix(".partial")
        done = subprocess.run(
            [sys.executable, str(DUMPER), str(tmp)], env=_release_env(release), capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"dumping TensorRT {release.version} failed: {done.stderr.strip()[-2000:]}")
        tmp.replace(out)
    return Api.load(out)


def run_with_bindings(release: Release, code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh process where `import tensorrt` is the release's real bindings and the project imports."""
    env = _release_env(release)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), release.pythonpath])
    prelude = "import sys, tensorrt_bindings; sys.modules['tensorrt'] = tensorrt_bindings\n"
    return subprocess.run([sys.executable, "-c", prelude + code], env=env, capture_output=True, text=True, cwd=ROOT)


# --- the project's TensorRT code paths, on the recording stand-in ---------------------------------------------------


Scenario = Callable[[Callable[..., Any], dict, Path, str], None]


def _build(install: Callable[..., Any], onnx: dict, out: Path, generation: str) -> None:
    """Every precision and option the builder has, and its failure paths."""
    from convnext_export.trt.builder import build_engine
    from convnext_export.trt.errors import EngineBuildError
    from convnext_export.trt.settings import EngineSettings
    from tests.trt._helpers import calibration_set, dla_settings

    release = STANDIN_OF[generation]
    cache = out / "timing.cache"
    for artifact in ("fp32", "fp16", "int8-trt"):
        install(release)
        build_engine(onnx[artifact], out / f"{artifact}.plan", EngineSettings(timing_cache=cache))
    install(release)
    build_engine(
        onnx["fp16"],
        out / "options.plan",
        EngineSettings(opt_level=5, version_compatible=True, hardware_compatible=True, tf32=True),
    )
    install(release)
    build_engine(onnx["static"], out / "static.plan", EngineSettings().with_batch(2))
    install(release, dla_cores=2, dla_ops=("Conv",))
    build_engine(onnx["static"], out / "dla.plan", dla_settings(1, batch=2), precision="fp16")
    install(release, timing_cache_mismatch=True)
    build_engine(onnx["fp16"], out / "recache.plan", EngineSettings(timing_cache=cache))
    install(release)
    try:
        build_engine(onnx["fp32"], out / "calibrated.plan", EngineSettings(opt_batch=2), calibration=calibration_set(4))
    except EngineBuildError:
        assert generation == "11", "implicit INT8 calibration is refused on TensorRT 11 only"
    for option in ("parse_fails", "build_fails"):
        install(release, **{option: True})
        with suppress(EngineBuildError):
            build_engine(onnx["fp16"], out / f"{option}.plan")


def _run(install: Callable[..., Any], onnx: dict, out: Path, generation: str) -> None:
    """The runner on the engines built above: every batch size, CUDA graphs, GPU compute time, DLA and version-
    compatible engines, the per-layer profile, and `inspect` reading an engine through TensorRT."""
    import numpy as np

    from convnext_export.evaluation.latency.layers import layer_profile_trt
    from convnext_export.runners.trt_runner import TrtRunner
    from convnext_export.trt.env import tensorrt_status
    from convnext_export.trt.layers import describe_engine, layers_path

    install(STANDIN_OF[generation], dla_cores=2)
    tensorrt_status()
    images = np.zeros((4, 3, 64, 64), np.float32)
    for name, graph in (("fp16.plan", False), ("fp16.plan", True), ("options.plan", False), ("dla.plan", False)):
        with TrtRunner(out / name, cuda_graph=graph) as runner:
            low, high = runner.batch_range
            for batch in sorted({low, high}):
                runner.infer(images[:batch])
            runner.compute_only(images[:low])
    layer_profile_trt(out / "fp16.plan", 2, iterations=2)
    layers_path(out / "fp16.plan").unlink()
    describe_engine(out / "fp16.plan")


SCENARIOS: tuple[Scenario, ...] = (_build, _run)


@contextmanager
def _installer() -> Iterator[Callable[..., Any]]:
    from tests.trt._helpers import install_standins

    with pytest.MonkeyPatch.context() as patch:
        modules: list[Any] = []

        def install(release: str, **options: Any) -> Any:
            trt, rt = install_standins(patch, release, **options)
            modules.append(trt)
            return trt, rt

        install.modules = modules  # type: ignore[attr-defined]
        yield install


def uses_by_generation(work: Path, onnx: dict) -> dict[str, set[Use]]:
    """Every use of a TensorRT name the project's code paths make, per builder generation."""
    found: dict[str, set[Use]] = {}
    for generation in STANDIN_OF:
        folder = work / f"generation-{generation}"
        folder.mkdir(parents=True, exist_ok=True)
        with _installer() as install:
            for scenario in SCENARIOS:
                scenario(install, onnx, folder, generation)
            found[generation] = {use for trt in install.modules for use in trt.uses}
    return found


def problems(api: Api, uses: set[Use]) -> list[str]:
    """Each use the release would refuse, with why."""
    return [f"{use}: {why}" for use in sorted(uses) if (why := api.check(use))]


# --- the table of names checked ---------------------------------------------------------------------------------


def describe_kind(api: Api, use: Use) -> str | None:
    """What a used name is in `api`: "method", "property (rw)", "enum member", "class" ...; None where absent."""
    if use.owner == MODULE:
        return api.top_level(use.member)
    if api.top_level(use.owner) is None:
        return None
    found = api.member(use.owner, use.member)
    if found is None:
        return None
    kind, entry = found
    if kind == "property":
        return "property (rw)" if entry["settable"] else "property (ro)"
    return {"enum_member": "enum member", "static_method": "static method"}.get(kind, kind)


def table(apis: dict[str, Api], generations: dict[str, str], uses: dict[str, set[Use]]) -> list[str]:
    """Markdown: one row per name the project touches, one column per release (cells: what the name is there, and
    whether the use is accepted; "absent" rows are probes that must find nothing; "—": the release's generation
    does not touch the name)."""
    versions = list(apis)
    names: dict[tuple[str, str], set[str]] = {}
    for used in uses.values():
        for use in used:
            names.setdefault((use.owner, use.member), set()).add(use.action)
    rows = ["| TensorRT name | " + " | ".join(versions) + " |", "|---|" + "---|" * len(versions)]
    for owner, member in sorted(names):
        label = member if owner == MODULE else f"{owner}.{member}"
        cells = []
        for version in versions:
            api, used = apis[version], [u for u in uses[generations[version]] if (u.owner, u.member) == (owner, member)]
            if not used:
                cells.append("—")
                continue
            refused = [why for use in used if (why := api.check(use))]
            kind = describe_kind(api, used[0])
            deprecated = owner in api.enums and member in api.enums[api.canon(owner)].get("deprecated", [])
            cell = "absent" if kind is None else kind + (" (deprecated)" if deprecated else "")
            cells.append(f"✗ {refused[0]}" if refused else f"{cell} ✓")
        rows.append(f"| `{label}` | " + " | ".join(cells) + " |")
    return rows
