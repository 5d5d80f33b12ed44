#!/usr/bin/env bash
# perf_analyzer against a running t2iguard Triton, from the Triton SDK container
# (nvcr.io/nvidia/tritonserver:24.10-py3-sdk), with the input files of deploy/perf/inputs.py:
#   deploy/perf/perf_analyzer.sh [HOST:PORT] [OUT_DIR]
set -euo pipefail
url=${1:-localhost:8001}
out=${2:-deploy/perf/results}
here=$(dirname "$0")
mkdir -p "$out"
[ -f "$here/data/safe_t2i.json" ] || python3 "$here/inputs.py" --out "$here/data"
run() {  # model, input file, concurrency range
  perf_analyzer -m "$1" -u "$url" -i grpc --input-data "$2" --concurrency-range "$3" \
    --percentile=95 --measurement-interval 10000 --collect-metrics -f "$out/$1.csv"
}
run prompt_guard "$here/data/prompt_guard.json" 1:64:4
run image_guard "$here/data/image_guard.json" 1:32:4
run safe_t2i "$here/data/safe_t2i.json" 1:16:2
