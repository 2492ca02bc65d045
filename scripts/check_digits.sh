#!/usr/bin/env bash
# The project's accuracy gate, as CI runs it: build the digits reference artifacts (FP32 ONNX, CPU INT8 and
# TensorRT-style INT8, all on ONNX Runtime) into a temporary folder and check them against the committed
# baseline artifacts/baselines/digits.json. The exit code is check's: 0 pass, 1 regression, 2 usage error
# (a failed build exits with the build's code). Extra arguments go to check, e.g.
#   scripts/check_digits.sh --junit reports/check.xml --markdown reports/check.md
# After a deliberate improvement, lock it in with: scripts/check_digits.sh --update-baseline
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CONVNEXT_EXPORT_CACHE="$work/cache"  # no calibration ranges cached from an earlier build

digits=tests/data/digits
bundle="$work/bundle"
echo "building the digits artifacts in $bundle" >&2
convnext-export build --weights "$digits/convnext_digits.safetensors" --int8 --calib "$digits/calib" \
    --images "$digits/test" --output-dir "$bundle" >"$work/build.log" 2>&1 || {
    status=$?
    cat "$work/build.log" >&2
    exit "$status"
}

status=0
convnext-export check "$bundle/convnext_custom.fp32.onnx" "$bundle/convnext_custom.int8-cpu.onnx" \
    "$bundle/convnext_custom.int8-trt.onnx" --dataset "$digits/test" --baseline artifacts/baselines/digits.json "$@" || status=$?
exit "$status"
