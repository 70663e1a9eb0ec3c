#!/usr/bin/env bash
# Trains the default weights and the ablation table of models/README.md on one
# GPU, within one short lease. Expects the development photos re-encoded into
# $DATA/train (short side 256) and $DATA/val, and writes what comes back
# into $OUT. Budgets are wall-clock minutes per stage (see models/README.md).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
W=/tmp/work; mkdir -p $W
HSV="python3 -m hsvcolorizer.cli"
MAIN_MIN=${MAIN_MIN:-1.6}   # per stage, shipped model
ABL_MIN=${ABL_MIN:-0.3}     # per stage, every ablation row
BS=${BS:-32}
DEV=${DEV:-cuda}
DATA=${DATA:-.devdata}
log() { echo "[$(date +%T) +${SECONDS}s] $*"; }
# What comes back is limited to a few files: keep one archive up to date.
pack() { (cd $W && tar czf $OUT/logs.tgz.tmp *.jsonl *.err eval_*.json main/previews 2>/dev/null; mv $OUT/logs.tgz.tmp $OUT/logs.tgz); }
LIMIT=${LIMIT:-450}  # seconds after which no further ablation starts

log "gpu: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader)"
python3 -c "import torch,numpy,cv2,PIL,safetensors,skimage,tqdm;print('torch',torch.__version__,'numpy',numpy.__version__)"
$HSV prepare $DATA/train $W/train --size 272 || exit 1
$HSV prepare $DATA/val $W/val --size 256 || exit 1
timeout 90 $HSV bench --device $DEV --train-batch $BS --repeats 3 --json > $OUT/bench.json 2>$W/bench.err || log "bench failed"
log "bench: $(python3 -c "import json;d=json.load(open('$OUT/bench.json'));print(d['training'],d['inference'],d['reference_conv_gflops_per_s'])" 2>&1)"

train() {  # name, extra options...
  local name=$1; shift
  if [ "$name" != main ] && [ $SECONDS -gt $LIMIT ]; then log "skip $name: out of time"; return; fi
  log "train $name"
  $HSV train --data $W/train --val $W/val --out $W/$name --batch-size $BS --device $DEV \
    --epochs-stage1 1000 --epochs-stage2 1000 --checkpoint-every 100000 --log-every 20 --events jsonl "$@" \
    > $W/$name.jsonl 2> $W/$name.err
  log "train $name rc=$? $(tail -c 300 $W/$name.jsonl | tail -1)"
  pack
}
evaluate() {  # name weights working_size extra...
  local name=$1 weights=$2 ws=$3; shift 3
  [ -f $weights ] || return
  $HSV evaluate --data $DATA/val --weights $weights --device $DEV --working-size $ws --json "$@" \
    > $W/eval_$name.json 2> $W/eval_$name.err
  log "eval $name rc=$?"
}

# 1. The shipped model first, so it exists whatever happens later.
train main --minutes-stage1 $MAIN_MIN --minutes-stage2 $MAIN_MIN
python3 - <<'PY'
from hsvcolorizer.weights import load_weights, save_weights
m, meta = load_weights("/tmp/work/main/model.safetensors")
for k in ("format_version", "architecture"): meta.pop(k, None)
save_weights(m, "/tmp/work/main_fp16.safetensors", meta, half=True)
PY
split -b 15M /tmp/work/main_fp16.safetensors $OUT/main_fp16.part.
for ws in 256 384 512; do evaluate main_$ws $W/main/model.safetensors $ws & done

# 2. Ablations: the same data and the same budget for every row.
train abl_base  --minutes-stage1 $ABL_MIN --minutes-stage2 $ABL_MIN
evaluate abl_base $W/abl_base/model.safetensors 256 &
evaluate abl_base_v $W/abl_base/model.safetensors 256 --recompose v &
train abl_plain --minutes-stage1 $ABL_MIN --minutes-stage2 $ABL_MIN --rcn plain
evaluate abl_plain $W/abl_plain/model.safetensors 256 &
train abl_l1    --minutes-stage1 $ABL_MIN --minutes-stage2 $ABL_MIN --hue-loss l1
evaluate abl_l1 $W/abl_l1/model.safetensors 256 &
train abl_v     --minutes-stage1 $ABL_MIN --minutes-stage2 $ABL_MIN --input-channel v
evaluate abl_v $W/abl_v/model.safetensors 256 &
wait
log "all done"
pack
ls -la $OUT
