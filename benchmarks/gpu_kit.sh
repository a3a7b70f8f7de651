#!/usr/bin/env bash
# The GPU checks of issue 4 as one prepared run, for a session that is lent a device machine.
#
# That machine has python3 with torch, transformers, accelerate, timm and torchvision, but not
# diffusers, xformers, open_clip_torch, soundfile or soxr, and it cannot reach PyPI. So:
#
#   here:        bash benchmarks/gpu_kit.sh fetch
#                  -> .gpu_kit/site.tar.xz (those wheels for the device's Python 3.12, unpacked and xz-packed:
#                     about 7 MB, where the wheels are 14 MB and the tracked tree already ~58 MB of
#                     the 64 MiB that may travel)
#   the device:  run(command="bash benchmarks/gpu_kit.sh run", carry=[".gpu_kit"], timeout_s=540)
#                  -> $OUT/: nvidia_smi.txt, gpu_pytest.txt, dit_speed_gpu.md, generation_speed_gpu.json,
#                     generation_speed_gpu_compiled.json, packed_training_gpu.md (and the logs)
#
# `run` does, each under its own time limit so one hang cannot eat the lease:
#   1. the `gpu`-marked tests (xformers vs sdpa, packed and padded, fp32/bf16; auto backend on CUDA;
#      text encoders on CUDA = CPU);
#   2. python -m benchmarks.dit_speed --gpu: bf16 training steps of the `base` preset at 1024 tokens, ours
#      with xformers and with sdpa, against diffusers' StableAudioDiTModel at the same size (MFU);
#   3. python -m benchmarks.generation_speed --device cuda: the bundled model, 10 s of audio, bf16, eager and
#      with --compile (the first call's time includes the compile);
#   4. python -m benchmarks.packed_training --device cuda: a bf16 training step of mixed-length clips,
#      padded against packed (training.packed: xformers' block-diagonal attention).
# Dry run on a CPU with this project's Python 3.11 (tiny sizes; the gpu tests skip):
#   GPU_KIT_DIR=/tmp/kit311 GPU_KIT_PYTHON=3.11 bash benchmarks/gpu_kit.sh fetch
#   GPU_KIT_DIR=/tmp/kit311 PYTHON=.venv/bin/python DEVICE=cpu GPU_PRESET=tiny GPU_BATCH=1 GPU_TOKENS=64 \
#       OUT=/tmp/kit bash benchmarks/gpu_kit.sh run
set -euo pipefail
cd "$(dirname "$0")/.."

KIT=${GPU_KIT_DIR:-.gpu_kit}
KIT_PYTHON=${GPU_KIT_PYTHON:-3.12}  # the device's python3 (KINDS.md: 3.12.3)
# diffusers, xformers, open_clip_torch (+ ftfy, wcwidth), soundfile (+ cffi, pycparser), soxr:
# the versions this project's CI environment had when this script was written.
PACKAGES=(diffusers==0.42.1 xformers==0.0.35 open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4
          soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 soxr==1.1.0)

fetch() {
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$KIT_PYTHON" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$tmp/wheels" "${PACKAGES[@]}"
    mkdir -p "$tmp/site" "$KIT"
    for wheel in "$tmp"/wheels/*.whl; do
        python3 -m zipfile -e "$wheel" "$tmp/site"
    done
    tar -cJf "$KIT/site.tar.xz.partial" -C "$tmp/site" .
    mv "$KIT/site.tar.xz.partial" "$KIT/site.tar.xz"  # a half-written kit never looks complete
    rm -rf "$tmp"
    ls -l "$KIT/site.tar.xz"
}

run() {
    local python=${PYTHON:-python3} device=${DEVICE:-cuda} out=${OUT:?OUT: the folder for the results}
    local preset=${GPU_PRESET:-base} batch=${GPU_BATCH:-8} tokens=${GPU_TOKENS:-1024}
    [ -f "$KIT/site.tar.xz" ] || { echo "gpu_kit: $KIT/site.tar.xz missing: run 'fetch' here and carry $KIT" >&2; exit 2; }
    mkdir -p /tmp/gpu_kit_site "$out"
    tar -xJf "$KIT/site.tar.xz" -C /tmp/gpu_kit_site
    export PYTHONPATH="/tmp/gpu_kit_site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    local failed=0
    { nvidia-smi || echo "no nvidia-smi"; "$python" -c "import torch, diffusers, xformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'diffusers', diffusers.__version__, 'xformers', xformers.__version__)"; } \
        >"$out/nvidia_smi.txt" 2>&1 || failed=1
    timeout 150 "$python" -m pytest -q -p no:cacheprovider -m gpu -rs \
        tests/models/test_attention.py tests/models/test_dit.py tests/test_conditioners.py \
        >"$out/gpu_pytest.txt" 2>&1 || failed=1
    tail -3 "$out/gpu_pytest.txt"
    timeout 240 "$python" -m benchmarks.dit_speed --gpu --device "$device" --gpu-preset "$preset" \
        --gpu-batch "$batch" --gpu-tokens "$tokens" --reps 10 --out "$out/dit_speed_gpu.md" \
        >"$out/dit_speed_gpu.log" 2>&1 || { failed=1; tail -20 "$out/dit_speed_gpu.log"; }
    timeout 120 "$python" -m benchmarks.generation_speed --device "$device" --repeats 3 \
        --out "$out/generation_speed_gpu.json" >"$out/generation_speed_gpu.log" 2>&1 \
        || { failed=1; tail -20 "$out/generation_speed_gpu.log"; }
    timeout 180 "$python" -m benchmarks.generation_speed --device "$device" --repeats 3 --compile \
        --out "$out/generation_speed_gpu_compiled.json" >>"$out/generation_speed_gpu.log" 2>&1 \
        || { failed=1; tail -20 "$out/generation_speed_gpu.log"; }
    timeout 90 "$python" -m benchmarks.packed_training --device "$device" --dtype bf16 --preset "$preset" \
        --batch 16 --out "$out/packed_training_gpu.md" >"$out/packed_training_gpu.log" 2>&1 \
        || { failed=1; tail -20 "$out/packed_training_gpu.log"; }
    cat "$out/dit_speed_gpu.md" "$out/packed_training_gpu.md" 2>/dev/null || true
    return $failed
}

case "${1:-}" in
    fetch) fetch ;;
    run) run ;;
    *) echo "usage: bash benchmarks/gpu_kit.sh fetch|run (see the comments at the top)" >&2; exit 2 ;;
esac
