"""Check reports for CI: JSON, a Markdown table ($GITHUB_STEP_SUMMARY) and JUnit XML (test-report UIs)."""

from __future__ import annotations

from dataclasses import asdict

from convnext_export.evaluation.check.results import EAGER, SUITE, CheckResult


def to_json(result: CheckResult) -> dict:
    return {
        "passed": result.passed,
        "dataset": result.dataset,
        "model": result.model,
        "thresholds": asdict(result.thresholds),
        "batch_size": result.batch_size,
        "system": result.system,
        "eager_cache": result.eager_cache,
        "figures": [{k: v for k, v in asdict(f).items() if k != "correct"} for f in result.figures],
        "gates": [asdict(g) for g in result.gates],
        "failures": result.failures,
        "notes": result.notes,
    }


def figure_status(result: CheckResult, name: str) -> str:
    if any(f.name == name and f.informational for f in result.figures):
        return "info"
    return "FAIL" if any(g.figure == name and not g.passed for g in result.gates) else "pass"


def to_markdown(result: CheckResult) -> str:
    """A table for $GITHUB_STEP_SUMMARY, then the failures and notes."""
    d = result.dataset
    lines = [
        f"### {SUITE}: {'PASS' if result.passed else 'FAIL'}",
        "",
        f"Dataset `{d['path']}`: {d['images']} images, {len(d['classes'])} classes. "
        f"CPU int8 class {result.system.get('isa')}, onnxruntime {result.system.get('onnxruntime')}.",
        "",
        "| artifact | top-1 | top-5 | agreement | drop | status |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for f in result.figures:
        drop = "-" if f.name == EAGER else f"{f.drop:.2f} pt"
        name = f.name.replace("|", "\\|")
        status = figure_status(result, f.name)
        lines.append(f"| {name} | {f.top1:.2f}% | {f.top5:.2f}% | {100 * f.agreement:.2f}% | {drop} | {status} |")
    for title, items in (("Failures", result.failures), ("Notes", result.notes)):
        if items:
            lines += ["", f"**{title}**", "", *(f"- {item}" for item in items)]
    return "\n".join(lines) + "\n"


def to_junit_xml(result: CheckResult) -> str:
    """One testsuite; a testcase per figure (its scores) and per gate (a <failure> when it failed)."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name=SUITE)
    suite = ET.SubElement(
        root,
        "testsuite",
        name=SUITE,
        tests=str(len(result.figures) + len(result.gates)),
        failures=str(len(result.failures)),
        errors="0",
        skipped="0",
        time=f"{sum(f.seconds for f in result.figures):.3f}",
    )
    for f in result.figures:
        case = ET.SubElement(suite, "testcase", classname=SUITE, name=f"{f.name}: accuracy", time=f"{f.seconds:.3f}")
        scores = f"top-1 {f.top1:.2f}%, top-5 {f.top5:.2f}%, agreement {f.agreement:.4f}, drop {f.drop:.2f} points"
        ET.SubElement(case, "system-out").text = scores
        for g in (g for g in result.gates if g.figure == f.name):
            case = ET.SubElement(suite, "testcase", classname=SUITE, name=f"{g.figure}: {g.metric}", time="0")
            if not g.passed:
                ET.SubElement(case, "failure", message=g.message, type=g.metric).text = g.message
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
