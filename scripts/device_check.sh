#!/usr/bin/env bash
# The checks that need a CUDA GPU but no TensorRT, as one script (run it on a GPU machine, e.g. the device tool's
# H200, from the repository root; it installs nothing and needs PyTorch with CUDA, cuda-python, onnx, onnxruntime):
#   1. the eager torch-cuda runner against the CPU one (the reference on a GPU);
#   2. cuda-python through convnext_export.trt.cuda: device count and properties, device and pinned memory,
#      a host -> device -> host round trip on a stream, events timing a copy, a captured and replayed CUDA graph;
#   3. FP16 numerics on the GPU: the model in half precision against FP32, judged by the fp16 verdict row;
#   4. the profile stage on torch-cuda (synchronized timing through Runner.infer).
# Prints one line per check and exits non-zero when any fails. Writes a JSON summary to $OUT (or /tmp).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}/device_check.json"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 - "$out" <<'EOF'
import json, sys, time, traceback

import numpy as np

results = {}


def check(name):
    def wrap(fn):
        start = time.perf_counter()
        try:
            detail = fn()
            results[name] = {"ok": True, "detail": detail, "seconds": round(time.perf_counter() - start, 3)}
            print(f"PASS {name}: {detail}")
        except Exception as exc:  # a device check reports every failure and goes on
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
            print(f"FAIL {name}: {type(exc).__name__}: {exc}")
        return fn
    return wrap


@check("torch-cuda runner matches the CPU reference")
def _():
    import torch

    from convnext_export import create_model
    from convnext_export.evaluation.metrics import compare_outputs
    from convnext_export.evaluation.thresholds import thresholds_for
    from convnext_export.runners.backends import open_runner

    torch.manual_seed(0)
    model = create_model("atto", num_classes=10)
    x = np.random.default_rng(0).standard_normal((8, 3, 64, 64), dtype=np.float32)
    with open_runner(model, "torch") as cpu:
        ref = cpu.infer(x)["logits"]
    with open_runner(model, "torch-cuda") as gpu:
        out = gpu.infer(x)["logits"]
    row = thresholds_for("fp32-tf32")  # cuDNN may use TF32 for convolutions: judged like a TF32 engine
    metrics = compare_outputs(ref, out, classification=True, thresholds=row)
    failures = row.check(metrics)
    assert not failures, failures
    return f"max_abs_rel {metrics['max_abs_rel']:.2e}, cosine {metrics['cosine']:.6f} on {torch.cuda.get_device_name(0)}"


@check("cuda-python: devices, memory, streams, events, graphs")
def _():
    from convnext_export.trt import cuda

    count = cuda.device_count()
    assert count >= 1, "no CUDA device"
    name, capability = cuda.device_properties(0)
    cuda.set_device(0)
    host = cuda.PinnedBuffer((4, 1024), np.float32)
    data = host.view((4, 1024))
    data[:] = np.arange(4096, dtype=np.float32).reshape(4, 1024)
    back = cuda.PinnedBuffer((4, 1024), np.float32)
    device = cuda.DeviceBuffer(data.nbytes)
    stream, start, end = cuda.Stream(), cuda.Event(), cuda.Event()
    start.record(stream)
    cuda.copy_host_to_device_async(device.ptr, data, stream)
    cuda.copy_device_to_host_async(back.view((4, 1024)), device.ptr, stream)
    end.record(stream)
    end.synchronize()
    ms = cuda.Event.elapsed_ms(start, end)
    assert np.array_equal(back.view((4, 1024)), data), "round trip changed the data"
    cuda.begin_capture(stream)
    cuda.copy_host_to_device_async(device.ptr, data, stream)
    graph = cuda.end_capture(stream)
    executable = cuda.GraphExec(graph)
    cuda.destroy_graph(graph)
    executable.launch(stream)
    stream.synchronize()
    executable.destroy()
    for item in (device, host, back):
        item.free()
    for item in (start, end, stream):
        item.destroy()
    return f"{count} device(s), {name} (sm {capability}), 16 KiB round trip {ms:.3f} ms, graph replayed"


@check("FP16 on the GPU passes the fp16 verdict row")
def _():
    import torch

    from convnext_export import create_model
    from convnext_export.evaluation.metrics import compare_outputs
    from convnext_export.evaluation.thresholds import thresholds_for

    model = create_model(weights="tests/data/digits/convnext_digits.safetensors").cuda().eval()
    from convnext_export.data.preprocess import eval_config, find_images, preprocess_batch

    x = torch.from_numpy(preprocess_batch(find_images("tests/data/digits/test"), eval_config(32))).cuda()
    with torch.inference_mode():
        ref = model(x).float().cpu().numpy()
        half = model.half()(x.half()).float().cpu().numpy()
    row = thresholds_for("fp16")
    metrics = compare_outputs(ref, half, classification=True, thresholds=row)
    failures = row.check(metrics)
    assert not failures, failures
    return f"{len(x)} digit scans: top-1 agreement {metrics['top1_agreement']:.4f}, worst cosine {metrics['cosine']:.6f}"


@check("profile on torch-cuda")
def _():
    import torch

    from convnext_export import create_model
    from convnext_export.evaluation.latency.measure import measure
    from convnext_export.runners.backends import open_runner

    with open_runner(create_model("tiny", num_classes=1000), "torch-cuda") as runner:
        rows = [measure(runner, batch, warmup=5, iterations=30, image_size=(224, 224)) for batch in (1, 8)]
    return ", ".join(f"tiny batch {r.batch_size} median {r.end_to_end.median:.2f} ms" for r in rows)


json.dump(results, open(sys.argv[1], "w"), indent=2)
failed = [name for name, r in results.items() if not r["ok"]]
print(f"{len(results) - len(failed)} of {len(results)} device checks passed" + (f"; failed: {failed}" if failed else ""))
sys.exit(1 if failed else 0)
EOF
