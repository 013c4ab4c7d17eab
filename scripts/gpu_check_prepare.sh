#!/usr/bin/env bash
# Prepares what scripts/gpu_check.sh needs on a GPU machine that has no internet and lacks `datasets`: run it
# here (where pip reaches PyPI), then send the repository with both folders carried, e.g. with the device tool:
#   run(command="scripts/gpu_check.sh", carry=[".whl", ".gpudata"], timeout_s=540)
#   .whl/       datasets and the needs the GPU image lacks (dill, multiprocess), wheels for CPython 3.12
#   .gpudata/   CIFAR-10's two parquet files (57 MB), for the recipe part, from $SIMCLR_DATA_DIR or ../shared/data
# Both folders are git-ignored. Together with the repository they must stay under the device tool's 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER=${GPU_PYTHON_VERSION:-3.12}
mkdir -p .whl
echo "downloading wheels for CPython $PYVER into .whl"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
SOURCE=${SIMCLR_DATA_DIR:-../shared/data}/cifar10
[ -f "$SOURCE/train.parquet" ] || { echo "no CIFAR-10 parquet files in $SOURCE (set SIMCLR_DATA_DIR)" >&2; exit 2; }
mkdir -p .gpudata/cifar10
cp "$SOURCE"/train.parquet "$SOURCE"/test.parquet .gpudata/cifar10/
du -sh .whl .gpudata
