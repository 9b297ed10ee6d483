#!/usr/bin/env bash
# Short accelerator passes, one part per argument (default: tests select):
#   tests   the test suite on the GPU (one process, -n 0: parallel ones would
#           each claim most of the GPU's memory)
#   select  bench_select.py (scikit-learn on that machine's CPU, jgmm on the GPU)
#   em      bench_em.py (per-iteration time up to N = 10^7, % of the GPU's
#           float32 matmul peak, scikit-learn on the CPU)
# Each part fits in one 10-minute device call; run "em" in a call of its own.
#   OUT=results_dir bash experiments/gpu_check.sh [tests] [select] [em]
set -u
OUT=${OUT:-experiments/results}
PARTS=${*:-tests select}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu_info.txt"
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null 2>&1 || echo "editable install failed"
python3 -c "import jax; print('jax', jax.__version__, jax.devices())" | tee -a "$OUT/gpu_info.txt"
for part in $PARTS; do
  case $part in
    tests)
      timeout 330 python3 -m pytest -q -p no:cacheprovider -n 0 tests 2>&1 | tail -15 | tee "$OUT/gpu_pytest.txt" ;;
    select)
      timeout 180 env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 experiments/bench_select.py 2>&1 | tee "$OUT/gpu_bench_select.txt"
      cp experiments/results/bench_select.txt "$OUT/bench_select_gpu_table.txt" 2>/dev/null || true ;;
    em)
      timeout 420 env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 experiments/bench_em.py 2>&1 | tee "$OUT/gpu_bench_em.txt"
      cp experiments/results/bench_em.csv experiments/results/bench_em_scaling.csv experiments/results/bench_em.png "$OUT/" 2>/dev/null || true ;;
    *) echo "unknown part: $part (tests, select or em)" >&2; exit 2 ;;
  esac
done
