"""Print the TensorRT names the project touches, checked against each release of NVIDIA's bindings, as a Markdown
table (the README's "TensorRT API checked per release"):

    scripts/fetch_trt_bindings.sh /tmp/trt-bindings
    CONVNEXT_EXPORT_TRT_BINDINGS=/tmp/trt-bindings python scripts/trt_api_report.py

The names are those the project's builder, runner, layer profile and inspect use when run against the recording
stand-in of each generation (tests/trt/_conformance.py); each cell says what the name is in that release and whether
the use is accepted (tests/trt/test_api_conformance.py fails on any ✗). Needs the test dependencies (torch exports
the small model the paths run on). Exits 1 when a use is refused, 2 without the bindings.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.trt import _conformance as conformance  # noqa: E402 -- after the repository is on the path
from tests.trt._helpers import make_onnx_files  # noqa: E402


def main() -> int:
    releases, why_not = conformance.releases()
    if not releases:
        print(f"trt_api_report: {why_not}", file=sys.stderr)
        return 2
    apis = {release.version: conformance.load_api(release) for release in releases}
    generations = {release.version: release.generation for release in releases}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        uses = conformance.uses_by_generation(work, make_onnx_files(work))
    rows = conformance.table(apis, generations, uses)
    print("\n".join(rows))
    refused = sum(len(conformance.problems(apis[v], uses[g])) for v, g in generations.items())
    names = len(rows) - 2
    print(f"\n{names} names, {sum(map(len, uses.values()))} uses over generations {', '.join(uses)}; {refused} refused")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
