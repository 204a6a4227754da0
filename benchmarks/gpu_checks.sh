#!/usr/bin/env bash
# The GPU checks in one short run, for a CUDA machine (the README's "Speed" section quotes its output):
#   1. tests/numerics/test_fast_path.py   (CUDA graphs vs eager, no host sync in the step; skipped without CUDA)
#   2. benchmarks/train_speed.py --eval   (study-style loop vs ganforge's step, and a 50,000-sample evaluation)
#   3. a training probe: issue 11's mnist-projection and mnist-wgan-gp for 10 kimg each, as `ganforge train` runs
#      them (one run alone), to size the GPU sweeps (time per kimg).
# Each stage has its own time limit, so a slow stage cannot take the others' time. Output goes to $OUT
# (default gpu-checks/). Where ganforge is not installed, it runs from src/ (PYTHONPATH); wheels of missing
# dependencies in .whl/ are installed to /tmp/site first (the offline device machine).
#
#     bash benchmarks/gpu_checks.sh
set -u
OUT=${OUT:-gpu-checks}
mkdir -p "$OUT"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=src:.:${PYTHONPATH:-} PYTHONUNBUFFERED=1 MPLBACKEND=Agg GANFORGE_CACHE=${GANFORGE_CACHE:-/tmp/ganforge-cache}
{ nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"; } \
  2>&1 | tee "$OUT/device.txt"

echo "== 1. fast-path tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider -rs tests/numerics/test_fast_path.py 2>&1 | tee "$OUT/fast_path.log"

echo "== 2. training speed + evaluation"
timeout 280 python3 benchmarks/train_speed.py --eval --out "$OUT/speed.md" 2>&1 | tee "$OUT/speed.log"

echo "== 3. training probe"
for preset in mnist-projection mnist-wgan-gp; do
  timeout 60 python3 -m ganforge train "$preset" --set train.kimg=10 --no-progress --out "/tmp/probe-$preset" \
    > "$OUT/probe-$preset.log" 2>&1
  grep -E "^done|Error|error" "$OUT/probe-$preset.log" | tail -3 | sed "s/^/$preset: /" | tee -a "$OUT/probe.txt"
done
