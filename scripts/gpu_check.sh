#!/usr/bin/env bash
# The GPU check of issues 16 (streamed data path) and 20 (speed), for a short GPU slot: about 7 minutes on one
# H100/H200-class GPU (expected, not yet measured), each part under its own time limit (150 + 150 + 240 + 200 s
# at most: where one call may last 600 s, run "tests data step" (540 s) and "recipe" as two; the step part
# compiles ResNet-50 and ResNet-18, and the first compile took 89 s in the 2-core CPU's rehearsal). Installs
# nothing from the network: packages the machine lacks (datasets and its needs) come as wheels in ./.whl,
# installed into /tmp/site; scripts/gpu_check_prepare.sh makes them and ./.gpudata.
#   scripts/gpu_check.sh                       # on the GPU machine, from the repository root
#   GPU_CHECK_PARTS="tests step" scripts/gpu_check.sh      # some parts: tests data step recipe
#   GPU_CHECK_DEVICE=cpu scripts/gpu_check.sh  # rehearsal on a CPU with tiny sizes (the CUDA tests skip)
# Parts:
#   tests   the CUDA tests: GPU decode, crops and the streamed step without a host sync, streamed fine-tuning and
#           probe, compiled training against eager, a training step without a host sync (eager and compiled),
#           views made ahead on a side stream: the same losses as just in time, no host sync
#   data    benchmarks/bench_data.py: the step on pre-made views, the streamed path feeding it, a PIL DataLoader
#   step    benchmarks/bench_step.py: matmul ceiling (bf16 on a GPU), ResNet-50 224 px and ResNet-18 32 px
#           steps, eager and compiled, on pre-made views and behind the resident pipeline (views made just in
#           time and ahead), % of the ceiling
#   recipe  a short run of beyond_gpu_recipe (20 epochs of all CIFAR-10) through the registry, its kNN and rate;
#           needs CIFAR-10 in $SIMCLR_DATA_DIR/cifar10 (default ./.gpudata: carry it, it is not in the repository)
# Everything printed also goes to ${OUT:-/tmp}/gpu_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
PARTS=${GPU_CHECK_PARTS:-tests data step recipe}
LOG=${OUT:-/tmp}/gpu_check.log
exec > >(tee "$LOG") 2>&1
TEE=$!
export PYTHONUNBUFFERED=1
if $PY -c "import datasets" 2>/dev/null; then
    echo "datasets is installed: the carried wheels are not needed"
elif [ -d .whl ] && compgen -G ".whl/*.whl" >/dev/null; then
    echo "installing the carried wheels into /tmp/site"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "the carried wheels did not install on $($PY -V); make them for this Python:" \
                  "GPU_PYTHON_VERSION=X.Y scripts/gpu_check_prepare.sh" >&2; exit 2; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export SIMCLR_DATA_DIR=${SIMCLR_DATA_DIR:-$PWD/.gpudata}
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || exit 2
    DATA=(--device cuda --encoder resnet50 --width 1 --size 224 --batch 256 --images 3072 --steps 6 --repeats 2
          --workers "$(( $(nproc) - 2 ))" --compile off)
    STEP=(--device cuda --presets r50-224 r18-32 --steps 8 --repeats 2)
    RECIPE=(--scale gpu epochs=20 optim.warmup_epochs=2 eval.knn_every_epochs=10 eval.protocols=knn)
else
    DATA=(--device cpu --encoder resnet18 --width 0.25 --size 64 --batch 16 --images 96 --steps 2 --repeats 1
          --workers 2 --compile off)
    STEP=(--device cpu --tiny --presets r50-224 r18-32 --steps 2 --repeats 1)
    RECIPE=(--scale smoke)
fi
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, \
'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
$PY -c "import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in \
('datasets', 'pyarrow', 'fsspec', 'accelerate', 'numpy', 'pandas')))" || echo "a package the check needs is missing"

declare -A RC
has() { [[ " $PARTS " == *" $1 "* ]]; }
if has tests; then
    echo "== CUDA tests (skip without a GPU)"
    # SIGINT first: pytest then prints what failed and what ran before the limit
    timeout -s INT -k 15 150 $PY -m pytest -q -p no:cacheprovider -rs \
        tests/simclr_core/test_originals.py tests/simclr_core/test_stream.py tests/simclr_core/test_stream_evaluation.py \
        tests/simclr_core/test_augment.py tests/simclr_core/test_compiling.py tests/simclr_core/test_views_ahead.py \
        tests/simclr_core/test_data.py \
        -k "cuda or gpu or compiled_training_equals_eager"
    RC[tests]=$?
fi
if has data; then
    echo "== issue 16: the streamed data path against the step and a PIL DataLoader"
    timeout 150 $PY benchmarks/bench_data.py "${DATA[@]}"
    RC[data]=$?
fi
if has step; then
    echo "== issue 20: the step against the chip's ceiling, eager and compiled, views made just in time and ahead"
    timeout 240 $PY benchmarks/bench_step.py "${STEP[@]}"
    RC[step]=$?
fi
if has recipe; then
    echo "== issue 20: a short run of the GPU recipe (beyond_gpu_recipe, multicrop point)"
    if [ "$DEVICE" = cuda ] && [ ! -f "$SIMCLR_DATA_DIR/cifar10/train.parquet" ]; then
        echo "no CIFAR-10 at $SIMCLR_DATA_DIR/cifar10: skipped (carry the parquet files there)"
        RC[recipe]=5
    else
        results=$(mktemp -d)
        timeout 200 $PY -m registry run beyond_gpu_recipe --only multicrop --seeds 0 --results "$results" "${RECIPE[@]}"
        RC[recipe]=$?
        $PY - "$results" <<'EOF'
import json, sys
from pathlib import Path
for final in Path(sys.argv[1]).rglob("final.json"):
    m = json.loads(final.read_text())
    print(f"{final.parent.name}: kNN top-1 {m.get('knn_top1')}% after {m.get('epochs_done')} epochs; "
          f"{m.get('images_per_s') or 0:,.0f} images/s; pretraining {m.get('pretrain_seconds', 0):.0f} s, "
          f"evaluation {m.get('eval_seconds', 0):.0f} s; compile {m.get('compile')}; {m.get('device')}")
    for row in map(json.loads, (final.parent / "metrics.jsonl").read_text().splitlines()):
        if "knn_top1" in row:
            print(f"  epoch {row['epoch']:g}: kNN top-1 {row['knn_top1']}%")
EOF
    fi
fi
summary=""; worst=0
for part in tests data step recipe; do
    [ -n "${RC[$part]+x}" ] || continue
    summary+="$part ${RC[$part]}, "
    # pytest's 5 (nothing collected) and a skipped part are not failures
    if [ "${RC[$part]}" != 0 ] && [ "${RC[$part]}" != 5 ]; then worst=${RC[$part]}; fi
done
echo "== exit codes: ${summary%, }"
exec >&- 2>&-
wait "$TEE"          # tee has printed and logged the last lines
exit "$worst"
