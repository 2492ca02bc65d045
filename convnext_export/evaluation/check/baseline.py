"""The check baseline: a stored run (figures and per-image correctness) that later runs must not fall below,
compared image by image; tied to one dataset by its digest.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from convnext_export import __version__
from convnext_export._atomic import atomic_path
from convnext_export.data.datasets import Dataset
from convnext_export.errors import ConvNeXtExportError
from convnext_export.evaluation.check.results import (
    BASELINE_SCHEMA,
    EAGER,
    ROUNDING,
    UNITS,
    BaselineError,
    CheckResult,
    CheckThresholds,
    Figure,
    Gate,
)
from convnext_export.evaluation.stats import paired_difference_interval


def baseline_gates(f: Figure, base: dict, t: CheckThresholds, batch_size: int) -> list[Gate]:
    """Top-1 against the baseline's, paired over the same images: fails when even the low end of the drop's
    95% interval exceeds max_top1_drop; latency (artifacts, when both have it) within bounds."""
    before = decode_correct(base["correct"], len(f.correct))
    now = f.correct
    counts = [int(np.sum(a & b)) for a, b in ((before, now), (before, ~now), (~before, now))]
    drop, low, high = paired_difference_interval(*counts, len(now) - sum(counts))
    message = (
        f"{f.name}: top-1 {f.top1:.2f}% is {100 * drop:.2f} points below the baseline's {base['top1']:.2f}% "
        f"(95% CI {100 * low:.2f} to {100 * high:.2f}; limit {t.max_top1_drop:.2f})"
    )
    gates = [
        Gate(
            f.name,
            "baseline_top1",
            round(100 * drop, 4),
            t.max_top1_drop,
            100 * low <= t.max_top1_drop + ROUNDING,
            message,
        )
    ]
    measured = f.latency_ms is not None and bool(base.get("latency_ms")) and base.get("batch_size") == batch_size
    if f.name != EAGER and measured:  # export regressions, not torch's
        limit = base["latency_ms"] * (1 + t.max_latency_regression)
        message = (
            f"{f.name}: latency {f.latency_ms:.3f} ms > limit {limit:.3f} ms (baseline {base['latency_ms']:.3f} ms "
            f"+ {100 * t.max_latency_regression:.0f}%)"
        )
        gates.append(Gate(f.name, "latency", f.latency_ms, limit, f.latency_ms <= limit, message))
    return gates


def compare_baseline(result: CheckResult, baseline: dict) -> None:
    """Each figure against the baseline's: drops fail, improvements and gaps are noted."""
    known, recorded, current = baseline["figures"], baseline.get("model", {}).get("weights_sha256"), result.model
    if recorded and current["weights_sha256"] and recorded != current["weights_sha256"]:
        result.notes.append(
            f"the baseline was made with other weights (sha256 {recorded[:12]}, now "
            f"{current['weights_sha256'][:12]}): figures compared all the same"
        )
    made_on = baseline.get("system", {})
    if made_on.get("isa") and made_on.get("isa") != result.system["isa"]:
        result.notes.append(
            f"the baseline was made on {made_on['isa']}, this CPU is {result.system['isa']}: CPU INT8 figures "
            "come from each machine's own integer kernels (and its own int8-cpu settings)"
        )
    for f in (f for f in result.figures if not f.informational):
        base = known.get(f.name)
        if base is None:
            result.notes.append(f"{f.name}: not in the baseline; run with --update-baseline to add it")
            continue
        result.gates += baseline_gates(f, base, result.thresholds, result.batch_size)
        if f.top1 > base["top1"] + ROUNDING:
            result.notes.append(
                f"{f.name}: top-1 {f.top1:.2f}% improved on the baseline's {base['top1']:.2f}%: "
                "run with --update-baseline to lock it in"
            )
    checked = {f.name for f in result.figures}
    result.notes += [f"{name}: in the baseline but not checked in this run" for name in known if name not in checked]


def encode_correct(correct: np.ndarray) -> str:
    """Per-image correctness as a compact string (base64 of the packed bits, dataset file order)."""
    import base64

    return base64.b64encode(np.packbits(np.asarray(correct, bool)).tobytes()).decode("ascii")


def decode_correct(text: str, n: int) -> np.ndarray:
    import base64

    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), np.uint8))
    return bits[:n].astype(bool)


def _describe(dataset: dict) -> str:
    return f"{dataset.get('path')!r} ({dataset.get('images')} images, sha256 {str(dataset.get('sha256'))[:12]})"


def check_baseline_dataset(baseline: dict, dataset: Dataset, source: str = "the baseline") -> None:
    """A baseline is tied to one dataset (files, contents, classes): figures from another mean nothing here."""
    recorded = baseline["dataset"]
    if recorded.get("sha256") != dataset.sha256 or recorded.get("classes") != dataset.classes:
        raise BaselineError(
            f"{source} was made on dataset {_describe(recorded)}, not on {_describe(dataset.info())}: pass the "
            "baseline for this dataset, or write a new one with --update-baseline --baseline NEW.json"
        )


def load_baseline(path: str | os.PathLike[str]) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"baseline {os.fspath(path)!r} does not exist (write one with --update-baseline)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"cannot read baseline {os.fspath(path)!r}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"baseline {os.fspath(path)!r} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict) or data.get("schema") != BASELINE_SCHEMA:
        raise BaselineError(f"{os.fspath(path)!r} is not a check baseline (schema {BASELINE_SCHEMA!r} expected)")
    figures = data.get("figures")
    if not isinstance(data.get("dataset"), dict) or not isinstance(figures, dict):
        raise BaselineError(f"baseline {os.fspath(path)!r} lacks its dataset or figures section")
    bad = [n for n, f in figures.items() if not _valid_figure(f, data["dataset"].get("images"))]
    if bad:
        raise BaselineError(
            f"baseline {os.fspath(path)!r}: figure {bad[0]!r} lacks a numeric top1 or a per-image record that "
            "matches it (regenerate the baseline with --update-baseline)"
        )
    return data


def _valid_figure(figure: object, images: object) -> bool:
    """A numeric top1 and a per-image correctness record whose accuracy is that top1 (no hand edits)."""
    if not isinstance(figure, dict) or not isinstance(figure.get("top1"), (int, float)):
        return False
    if not isinstance(images, int) or images < 1 or not isinstance(figure.get("correct"), str):
        return False
    try:
        correct = decode_correct(figure["correct"], images)
    except ValueError:
        return False
    return len(correct) == images and abs(100 * correct.mean() - figure["top1"]) < 1e-3


def baseline_document(result: CheckResult) -> dict:

    figures = {}
    for f in (f for f in result.figures if not f.informational):
        figures[f.name] = {
            "top1": f.top1,
            "top5": f.top5,
            "agreement": f.agreement,
            "runtime": f.runtime,
            "correct": encode_correct(f.correct),
        }
        if f.latency_ms is not None:
            figures[f.name] |= {"latency_ms": f.latency_ms, "batch_size": result.batch_size}
    return {
        "schema": BASELINE_SCHEMA,
        "dataset": result.dataset,
        "model": result.model,
        "system": result.system,
        "units": UNITS,
        "figures": figures,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "toolkit_version": __version__,
    }


def write_baseline(result: CheckResult, path: str | os.PathLike[str]) -> Path:
    """Write the baseline atomically; refuses a failing result (a regression is never blessed)."""
    if not result.passed:
        raise ConvNeXtExportError(f"not writing a baseline from a failing check ({len(result.failures)} failures)")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(baseline_document(result), indent=2) + "\n")
    return path
