#!/usr/bin/env bash
# One prepared GPU check (run on a CUDA machine from the repository root): the CUDA tests, the
# graph-captured step, and bench/speed.py in a quick but representative mode. Logs go to
# ${OUT:-gpu-out}/. Needs names.txt at $DATA (default .gpudata/names.txt, else ../shared/data).
set -u
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
DATA=${DATA:-.gpudata/names.txt}; [ -f "$DATA" ] || DATA=../shared/data/names.txt
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/makemore-inductor}
PY=${PY:-python3}
{ nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; } 2>&1 | tee "$OUT/machine.txt"
timeout 50 $PY -m pytest -q -p no:cacheprovider tests/test_fast.py -k "graph or cached" 2>&1 | tail -15 | tee "$OUT/tests.txt"
S="$PY bench/speed.py --device cuda --data $DATA --repeats 3"
# batch 32: eager vs graph-captured (fp32 / TF32)
timeout 55 $S --models transformer,gru,mlp,bigram,rnn,bow --modes eager,graph --batches 32 --steps 200 --warmup 5 2>&1 | tee "$OUT/speed_b32.txt"
# the transformer at large batch: graph, float32 (TF32) and bf16
timeout 40 $S --models transformer --modes graph --batches 512,4096,16384 --steps 30 --warmup 3 2>&1 | tee "$OUT/speed_big.txt"
timeout 35 $S --models transformer --modes graph --batches 4096,16384 --steps 30 --warmup 3 --dtype bf16 2>&1 | tee "$OUT/speed_big_bf16.txt"
# compiled + captured (compilation in the warm-up column)
timeout 100 $S --models transformer,gru,mlp --modes graph+compile --batches 32 --steps 200 --warmup 5 2>&1 | tee "$OUT/speed_compile.txt"
