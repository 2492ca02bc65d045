#!/usr/bin/env bash
# The device side on JetPack 6's Python (3.10), without torch: install the torch-free core in a fresh Python 3.10
# venv and run the on-device commands on a bundle the main venv builds (inspect, build --onnx with the engines
# skipped, bundle verify, infer); then resolve the device and export sets for Python 3.10 on a Jetson's platform
# (manylinux_2_28_aarch64) with Python 3.10's own pip, so a dependency JetPack cannot install fails CI.
#
# Usage: bash scripts/check_device_py310.sh   (from the repository root, with the main venv active)
# PYTHON310: the interpreter to use (default: python3.10 on PATH, else pyenv's newest 3.10).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check_device_py310: $*" >&2; exit 1; }

find_python310() {
    if [ -n "${PYTHON310:-}" ]; then echo "$PYTHON310"; return; fi
    if python3.10 -c '' 2>/dev/null; then command -v python3.10; return; fi
    local root
    root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
    ls -d "$root"/versions/3.10*/bin/python3.10 2>/dev/null | sort -V | tail -n 1
}

py310="$(find_python310)"
[ -n "$py310" ] && "$py310" -c 'import sys; assert sys.version_info[:2] == (3, 10)' \
    || fail "no Python 3.10 found: set PYTHON310 (JetPack 6 ships Python 3.10)"
command -v convnext-export >/dev/null || fail "activate the main venv first (it builds the bundle)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
digits=tests/data/digits

echo "== the main venv ($(python -V)) builds the digits bundle" >&2
convnext-export -q build --weights "$digits/convnext_digits.safetensors" --fp16 --int8 --calib "$digits/calib" \
    --images "$digits/test" --output-dir "$work/bundle" --no-profile >"$work/host-build.log" 2>&1 \
    || { cat "$work/host-build.log" >&2; fail "the host build failed"; }
onnx="$work/bundle/convnext_custom.fp32.onnx"

echo "== Python 3.10 venv with the device core only ($("$py310" -V))" >&2
"$py310" -m venv "$work/venv310"
dev="$work/venv310/bin"
"$dev/pip" install -q -e . >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; fail "core install on 3.10 failed"; }
"$dev/python" -c 'import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ("torch", "onnxsim", "onnxruntime")))' \
    || fail "the device core pulled in torch, onnxsim or onnxruntime"

run() {  # run a device command, show it, keep its output; fail on an unexpected exit code
    local expected="$1"; shift
    echo "\$ convnext-export $*" >&2
    set +e
    "$dev/convnext-export" "$@" >"$work/out" 2>&1
    local code=$?
    set -e
    cat "$work/out" >&2
    [ "$code" -eq "$expected" ] || fail "exit $code, expected $expected: convnext-export $*"
}

run 0 inspect "$onnx" --trt-version 8.6
run 0 bundle verify "$work/bundle"
run 0 build --onnx "$onnx" --fp16 --int8 --trt-version 8.6
grep -q "engine skipped" "$work/out" || fail "build --onnx did not report its skipped engines"
grep -q -- "--require-engine" "$work/bundle/build_engine.sh" || fail "build_engine.sh lacks --require-engine"
run 3 build --onnx "$onnx" --require-engine
run 0 bundle verify "$work/bundle"
image="$(ls "$digits"/test/3/* | head -n 1)"
run 2 infer "$onnx" "$image"  # no onnxruntime in the core: one line naming the extra
grep -q "convnext-export\[cpu\]" "$work/out" || fail "infer without onnxruntime did not name the [cpu] extra"

echo "== + [cpu]: onnxruntime for Python 3.10" >&2
"$dev/pip" install -q -e ".[cpu]" >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; fail "[cpu] on 3.10 failed"; }
"$dev/python" -c 'import onnxruntime; print("onnxruntime", onnxruntime.__version__)' >&2
run 0 infer "$onnx" "$image" --top-k 1 --json -
"$dev/python" -c 'import json, sys; top = json.load(open(sys.argv[1]))[0]["top"][0]["label"]; sys.exit(top != "3")' "$work/out" \
    || fail "infer on Python 3.10 did not classify a 3 as 3"
run 2 validate "$work/bundle/convnext_custom.int8-cpu.onnx" --images "$digits/test"  # the eager side needs torch
grep -q "convnext-export\[export\]" "$work/out" || fail "validate without torch did not name the [export] extra"

echo "== resolution for a Jetson: Python 3.10, manylinux_2_28_aarch64, Python 3.10's pip" >&2
"$dev/pip" wheel -q --no-deps -w "$work/dist" . >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; fail "wheel build failed"; }
wheel="$(ls "$work"/dist/convnext_export-*.whl)"
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_26 manylinux_2_24 manylinux_2_17 manylinux2014; do
    platforms+=(--platform "${tag}_aarch64")
done
resolve() {  # resolve a requirement set as pip on a Jetson would, without installing anything
    local label="$1"; shift
    echo "-- $label" >&2
    "$dev/pip" install --dry-run --quiet --report "$work/report.json" --ignore-installed --only-binary=:all: \
        --python-version 3.10 "${platforms[@]}" --target "$work/target" "$@" >"$work/pip.log" 2>&1 \
        || { cat "$work/pip.log" >&2; fail "$label does not resolve for Python 3.10 aarch64"; }
    "$dev/python" - "$work/report.json" >&2 <<'EOF'
import json, sys
resolved = [item["metadata"] for item in json.load(open(sys.argv[1]))["install"]]
print("   ", ", ".join(sorted(f"{m['name']} {m['version']}" for m in resolved)))
EOF
}
resolve "device core + [cpu,trt], JetPack 6.1/6.2 constraints" -c constraints/jetpack6.txt "$wheel[cpu,trt]"
resolve "device core + [cpu,trt], JetPack 6.0 constraints" -c constraints/jetpack6.0.txt "$wheel[cpu,trt]"
# The export set without torch itself: PyPI's aarch64 torch is not Jetson's (NVIDIA's Jetson wheels come from their
# own index), so torch is installed separately there; everything else the export side needs must resolve.
sed -n 's/^    "\(onnxsim[^"]*\)".*/\1/p; s/^    "\(onnxconverter-common[^"]*\)".*/\1/p; s/^    "\(safetensors[^"]*\)".*/\1/p' \
    pyproject.toml >"$work/export-without-torch.txt"
[ "$(wc -l <"$work/export-without-torch.txt")" -eq 3 ] || fail "could not read the export extra from pyproject.toml"
resolve "export side (less torch) + [cpu], JetPack 6 constraints" -c constraints/jetpack6.txt "$wheel[cpu]" \
    -r "$work/export-without-torch.txt"
echo "check_device_py310: PASS" >&2
