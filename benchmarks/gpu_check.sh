#!/usr/bin/env bash
# Licensed under a 3-clause BSD style license - see LICENSE.rst
#
# GPU check of astro-clustercls in one short run (< 5 min): CUDA end-to-end
# throughput of ClusterClassifier on a simulated field, labels against the CPU
# fp32 path, mixed precision on and off, a training epoch; prints a table
# (see benchmarks/gpu_check.py). Without a GPU it says so and exits 0.
#
#   benchmarks/gpu_check.sh                 # from anywhere; extra options go to
#   benchmarks/gpu_check.sh --quick         # gpu_check.py
#   PYTHON=/path/to/python GPU_CHECK_TIMEOUT=200 benchmarks/gpu_check.sh
#
# Output: stdout, and the rows as JSON in ${GPU_CHECK_JSON:-gpu_check.json}
# (under $OUT when that is set).
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.." || exit 1
python="${PYTHON:-python}"
limit="${GPU_CHECK_TIMEOUT:-290}"          # hard stop, seconds
json="${GPU_CHECK_JSON:-${OUT:-.}/gpu_check.json}"

echo "gpu_check.sh: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(uname -n)"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,utilization.gpu \
        --format=csv,noheader 2>/dev/null | sed 's/^/nvidia-smi: /'
else
    echo "nvidia-smi: not found"
fi

# the Python script keeps within its own budget (a little under the limit);
# timeout is the backstop
budget=$(( limit > 60 ? limit - 40 : limit ))
timeout --signal=INT --kill-after=10 "$limit" \
    "$python" benchmarks/gpu_check.py --max-seconds "$budget" --json "$json" "$@"
rc=$?
case $rc in
    0) ;;
    124|130) echo "gpu_check.sh: stopped after ${limit} s (time limit); the rows" \
                  "printed above are complete measurements" ;;
    2) echo "gpu_check.sh: no GPU (--require-gpu)" ;;
    *) echo "gpu_check.sh: gpu_check.py failed with status $rc" ;;
esac
exit $rc
