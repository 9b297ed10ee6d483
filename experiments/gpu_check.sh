#!/usr/bin/env bash
# One short accelerator pass: the test suite on the GPU, then
# the selection benchmark (scikit-learn on that machine's CPU, jgmm on the GPU).
# One test process (-n 0): parallel ones would each claim most of the GPU's memory.
#   OUT=results_dir bash experiments/gpu_check.sh
set -u
OUT=${OUT:-experiments/results}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu_info.txt"
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null 2>&1 || echo "editable install failed"
python3 -c "import jax; print('jax', jax.__version__, jax.devices())" | tee -a "$OUT/gpu_info.txt"
timeout 330 python3 -m pytest -q -p no:cacheprovider -n 0 tests \
  2>&1 | tail -15 | tee "$OUT/gpu_pytest.txt"
timeout 180 env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 experiments/bench_select.py 2>&1 | tee "$OUT/gpu_bench_select.txt"
cp experiments/results/bench_select.txt "$OUT/bench_select_gpu_table.txt" 2>/dev/null || true
