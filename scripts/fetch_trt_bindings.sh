#!/usr/bin/env bash
# Fetch NVIDIA's TensorRT Python bindings (no libnvinfer, no CUDA) for the API conformance tests:
#   scripts/fetch_trt_bindings.sh DEST
# For each release below: `pip download --no-deps` of its binding wheel for this Python (pip's cache and any
# configured index serve it offline), unpacked into DEST/<version>/, plus null stub libraries in DEST/<version>/stubs
# for the symbols tensorrt.so resolves when it is imported (`nm -D --undefined-only`), built with gcc/g++ under the
# sonames it asks for (`readelf -d`). With them on LD_LIBRARY_PATH the real module imports and exposes every class,
# signature, property and enum member of that release; nothing in it can build or run an engine (every factory
# returns NULL). DEST/releases.txt then lists one release per line:
#   VERSION GENERATION PYTHON_TAG PYTHONPATH LD_LIBRARY_PATH
# and tests/trt/test_api_conformance.py reads it through CONVNEXT_EXPORT_TRT_BINDINGS=DEST.
# Idempotent. PYTHON=... picks the interpreter the wheels are for (default python3). Exits non-zero with one line
# on stderr when a wheel cannot be had or a release does not import.
# DEST holds NVIDIA's binaries under NVIDIA's licence: never commit it.
set -euo pipefail

dest=${1:?usage: scripts/fetch_trt_bindings.sh DEST}
python=${PYTHON:-python3}

fail() {
    echo "fetch_trt_bindings: $*" >&2
    exit 1
}

for tool in gcc g++ readelf nm; do
    command -v "$tool" >/dev/null || fail "$tool is needed to build the stub libraries"
done
mkdir -p "$dest/wheels" "$dest/stubs-src"
dest=$(cd "$dest" && pwd)
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cptag=$("$python" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')

# version generation requirement (the generations are the builder's code paths: convnext_export/trt/versions.py)
releases="8.6.1 8 tensorrt-bindings==8.6.1
10.3.0 10 tensorrt-cu12-bindings==10.3.0
10.13.0.35 10 tensorrt-cu12-bindings==10.13.0.35
11.4.0.106 11 tensorrt-cu12-bindings==11.4.0.106"

# Every symbol any of the four tensorrt.so resolves from libnvinfer, libnvonnxparser, libnvinfer_plugin and (8.x)
# libnvparsers, as functions that do nothing; step 4 below fails if a release needs one that is not here.
cat >"$dest/stubs-src/stub.c" <<'EOF'
void *createInferBuilder_INTERNAL(void *logger, int version) { return 0; }
void *createInferRefitter_INTERNAL(void *engine, void *logger, int version) { return 0; }
void *createInferRuntime_INTERNAL(void *logger, int version) { return 0; }
void *createNvOnnxParser_INTERNAL(void *network, void *logger, int version) { return 0; }
void *createNvOnnxParserRefitter_INTERNAL(void *refitter, void *logger, int version) { return 0; }
int getNvOnnxParserVersion(void) { return 0; }
void *getPluginRegistry(void) { return 0; }
void *getBuilderPluginRegistry(int capability) { return 0; }
int initLibNvInferPlugins(void *logger, const char *library_namespace) { return 0; }
EOF
cat >"$dest/stubs-src/stub_cpp.cc" <<'EOF'
// The UFF and Caffe parser entry points the 8.x bindings import (C++ names, so declared in their namespaces).
namespace nvuffparser {
struct IUffParser;
enum class FieldType : int {};
IUffParser *createUffParser() { return nullptr; }
struct FieldMap { FieldMap(const char *, const void *, FieldType, int); };
FieldMap::FieldMap(const char *, const void *, FieldType, int) {}
}
namespace nvcaffeparser1 {
struct ICaffeParser;
ICaffeParser *createCaffeParser() { return nullptr; }
void shutdownProtobufLibrary() {}
}
EOF
gcc -O0 -fPIC -c "$dest/stubs-src/stub.c" -o "$dest/stubs-src/stub.o"
g++ -O0 -fPIC -c "$dest/stubs-src/stub_cpp.cc" -o "$dest/stubs-src/stub_cpp.o"

listing="$dest/releases.txt.partial"
: >"$listing"
while read -r version generation requirement; do
    out="$dest/$version"
    name=${requirement%%==*}
    name=${name//-/_}
    # 1. the wheel, for this interpreter
    wheel=$(ls "$dest/wheels/${name}-${version}-${cptag}-"*.whl 2>/dev/null | head -n1 || true)
    if [[ -z $wheel ]]; then
        "$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
            "$requirement" -d "$dest/wheels" >"$dest/pip-$version.log" 2>&1 ||
            fail "pip could not download $requirement for $cptag (offline and not in pip's cache? see $dest/pip-$version.log)"
        wheel=$(ls "$dest/wheels/${name}-${version}-${cptag}-"*.whl 2>/dev/null | head -n1 || true)
        [[ -n $wheel ]] || fail "pip downloaded no $cptag wheel of $requirement"
    fi
    # 2. unpacked (a wheel is a zip archive)
    if [[ ! -f $out/.unpacked-$cptag ]]; then
        rm -rf "$out"
        mkdir -p "$out"
        "$python" -m zipfile -e "$wheel" "$out"
        touch "$out/.unpacked-$cptag"
    fi
    # 3. a stub library under every soname tensorrt.so needs from NVIDIA
    module="$out/tensorrt_bindings/tensorrt.so"
    [[ -f $module ]] || fail "$wheel holds no tensorrt_bindings/tensorrt.so"
    mkdir -p "$out/stubs"
    for lib in $(readelf -d "$module" | sed -n 's/.*Shared library: \[\(libnv[^]]*\)\].*/\1/p'); do
        g++ -shared -Wl,-soname,"$lib" -o "$out/stubs/$lib" "$dest/stubs-src/stub.o" "$dest/stubs-src/stub_cpp.o"
    done
    # 4. every strong undefined symbol that Python, glibc or libstdc++ does not provide must be in the stubs
    needed=$(nm -D --undefined-only "$module" | awk '$1 == "U" {print $2}' | grep -v '@' |
        grep -vE '^_?Py|^dl(open|sym|close|error)$' | sort -u || true)
    have=$(nm -D --defined-only "$out"/stubs/* | awk '{print $3}' | sort -u)
    missing=$(comm -23 <(echo "$needed") <(echo "$have") | tr '\n' ' ')
    [[ -z ${missing// /} ]] || fail "TensorRT $version needs symbols the stubs lack: $missing"
    LD_LIBRARY_PATH="$out/stubs" PYTHONPATH="$out" "$python" -c 'import tensorrt_bindings' 2>"$dest/import-$version.log" ||
        fail "tensorrt_bindings $version does not import with the stubs (see $dest/import-$version.log)"
    echo "$version $generation $cptag $out $out/stubs" >>"$listing"
done <<<"$releases"
mv "$listing" "$dest/releases.txt"
cat "$dest/releases.txt"
