#!/usr/bin/env bash
# GPU check of t2iguard for a machine with an NVIDIA GPU and no network (PyTorch and onnxruntime
# present, tensorrt possibly absent), in under 8 minutes:
#   - the GPU, driver, torch/CUDA and TensorRT versions;
#   - TensorRT engines for every image-side network (built from their ONNX with the spec's profiles),
#     where tensorrt is installed, timed per model and along one request's image path;
#   - else (and also) the same torch modules on CUDA, fp32 and fp16 autocast.
# Prints a Markdown table (paste it into deploy/perf/RESULTS.md with the card); writes
# $OUT/gpu-check.json when OUT is set. Packages the machine lacks travel as wheels in .whl/
# (see the device notes). `deploy/gpu-check.sh --cpu` runs the torch path on the CPU (the test).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=cuda
[[ "${1:-}" == "--cpu" ]] && DEVICE=cpu
if [[ $DEVICE == cuda ]]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
fi
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/t2iguard-site .whl/*.whl
  export PYTHONPATH=/tmp/t2iguard-site:${PYTHONPATH:-}
fi
# The project without installing it: a package tree of links, as pyproject maps t2iguard.export -> export/.
pkg=$(mktemp -d)
mkdir "$pkg/t2iguard"
ln -s "$PWD"/t2iguard/* "$pkg/t2iguard/"
for d in export client model_repository; do ln -s "$PWD/$d" "$pkg/t2iguard/$d"; done
export PYTHONPATH=$pkg:${PYTHONPATH:-}
$PY -c "import torch; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '| available', torch.cuda.is_available())"
$PY -c "import tensorrt; print('tensorrt', tensorrt.__version__)" 2>/dev/null || echo "tensorrt: not installed"
json=()
[[ -n "${OUT:-}" ]] && json=(--json "$OUT/gpu-check.json")
timeout 450 $PY deploy/perf/gpu_check.py --device "$DEVICE" "${json[@]}" "${@:2}"
