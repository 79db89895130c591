#!/usr/bin/env bash
# One prepared GPU check (run on a CUDA machine from the repository root), most important first,
# each step under its own timeout so one slow step cannot eat the others' time:
#   1. the transformer at large batch, compiled + graph-captured with bf16, with the fused and
#      the written-out attention (issue 5's 20M characters/s target: not yet measured so);
#   2. the CUDA tests (graph step vs eager, cached sampling, the monitor keeping steps eager,
#      no host synchronization inside an eager step);
#   3. batch 32 for every model: eager vs graph (graph + compile was measured before);
#   4. a BatchNorm model under --cuda-graph auto (expected: capture fails, one note, eager).
# Logs go to ${OUT:-gpu-out}/. Needs names.txt at $DATA (default .gpudata/names.txt, else
# ../shared/data/names.txt). At most 8.5 minutes (the sum of the timeouts).
set -u
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
DATA=${DATA:-.gpudata/names.txt}; [ -f "$DATA" ] || DATA=../shared/data/names.txt
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/makemore-inductor}
PY=${PY:-python3}
{ nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; } 2>&1 | tee "$OUT/machine.txt"
S="$PY bench/speed.py --device cuda --data $DATA"
# 1. large batch: one compilation per (batch, dtype); 30 timed steps x 3 runs each
timeout 150 $S --models transformer --modes graph+compile --batches 16384,65536 --steps 30 --repeats 3 --warmup 3 --dtype bf16 2>&1 | tee "$OUT/speed_big_bf16_compile.txt"
timeout 90 $S --models transformer --modes graph+compile --batches 65536 --steps 30 --repeats 3 --warmup 3 --dtype bf16 --set attention=manual 2>&1 | tee "$OUT/speed_big_bf16_compile_manual.txt"
timeout 60 $S --models transformer --modes graph --batches 16384,65536 --steps 30 --repeats 3 --warmup 3 --dtype bf16 2>&1 | tee "$OUT/speed_big_bf16.txt"
# 2. the CUDA tests
timeout 90 $PY -m pytest -q -p no:cacheprovider tests/test_fast.py -k "graph or cached or cuda or waits" 2>&1 | tail -15 | tee "$OUT/tests.txt"
# 3. batch 32
timeout 60 $S --models transformer,gru,mlp,bigram,rnn,bow --modes eager,graph --batches 32 --steps 200 --repeats 3 --warmup 5 2>&1 | tee "$OUT/speed_b32.txt"
# 4. BatchNorm (data-dependent row selection): the capture must fail cleanly and training go on
timeout 60 $PY -m makemore train "$DATA" --model mlp --norm batch --steps 300 --device cuda --samples 3 --out "$OUT/bn-run" 2>&1 | tail -12 | tee "$OUT/bn_fallback.txt"
