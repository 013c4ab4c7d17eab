#!/usr/bin/env bash
# The GPU check of the streamed data path, for a short GPU slot (under 5 minutes on one H100/H200-class GPU).
# Installs nothing from the network: packages the machine lacks (datasets, its needs) come as wheels in
# ./.whl, installed into /tmp/site. Runs the CUDA tests, then prints benchmarks/bench_data.py's table.
#   scripts/gpu_check.sh                      # on the GPU machine, from the repository root
#   GPU_CHECK_DEVICE=cpu scripts/gpu_check.sh # rehearsal on a CPU with tiny sizes (the CUDA tests skip)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
if [ -d .whl ] && compgen -G ".whl/*.whl" >/dev/null; then
    echo "installing the carried wheels into /tmp/site"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "the carried wheels did not install" >&2; exit 2; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || exit 2
    BENCH=(--device cuda --encoder resnet50 --width 1 --size 224 --batch 256 --images 3072 --steps 6 --repeats 2
           --workers "$(( $(nproc) - 2 ))")
else
    BENCH=(--device cpu --encoder resnet18 --width 0.25 --size 64 --batch 16 --images 96 --steps 2 --repeats 1
           --workers 2)
fi
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, \
'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"

echo "== CUDA tests (skip without a GPU)"
timeout 150 $PY -m pytest -q -p no:cacheprovider tests/simclr_core/test_originals.py tests/simclr_core/test_stream.py \
    tests/simclr_core/test_stream_evaluation.py tests/simclr_core/test_augment.py -k "cuda or gpu" -rs
tests=$?

echo "== the streamed data path against the step and a PIL DataLoader"
timeout 200 $PY benchmarks/bench_data.py "${BENCH[@]}"
bench=$?
echo "== exit codes: tests $tests, benchmark $bench"
exit $(( tests != 0 && tests != 5 ? tests : bench ))
