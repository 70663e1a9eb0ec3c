#!/usr/bin/env bash
# Trains the v2 default weights and the recipe comparison of models/README.md
# on one GPU, in one call of at most 10 minutes. The photos travel before it,
# one part per call (scripts/pack_photos.py; README "Retraining the default
# model"); this script expects them unpacked in $DATA (train/ and val/) and
# writes what comes back into $OUT: the weights in 15 MB pieces, and one
# archive of logs, evaluations and previews.
#
# Every comparison row trains the same photos for the same number of steps,
# side by side with the main run on the same GPU; the main run has a
# wall-clock budget per stage and so ends on time whatever the GPU's speed.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
DATA=${DATA:-/tmp/d}
W=${W:-/tmp/work}; mkdir -p $W
HSV="python3 -m hsvcolorizer.cli"
DEV=${DEV:-cuda}
BS=${BS:-64}
SIZE=${SIZE:-176}          # training crop side
PREP=${PREP:-192}          # cached short side
LR=${LR:-3e-4}
MAIN1=${MAIN1:-3.8}        # main run: minutes of stage 1
MAIN2=${MAIN2:-3.0}        # main run: minutes of stage 2
ROW1=${ROW1:-500}          # every comparison row: steps of stage 1
ROW2=${ROW2:-250}          # every comparison row: steps of stage 2
ROWMIN=${ROWMIN:-3.0}      # safety cap on a row's minutes per stage
WIDTH=${WIDTH:-1.0}        # < 1 only for a dry run on a CPU
EVAL_LIMIT=${EVAL_LIMIT:-0}
log() { echo "[$(date +%T) +${SECONDS}s] $*"; }
pack() { (cd $W && tar czf $OUT/logs.tgz.tmp *.jsonl *.err eval_*.json main/previews 2>/dev/null; mv $OUT/logs.tgz.tmp $OUT/logs.tgz); }

log "device: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo none)"
python3 -c "import torch,numpy,cv2,PIL,safetensors,skimage,tqdm;print('torch',torch.__version__,'numpy',numpy.__version__)"
log "photos: $(ls $DATA/train | wc -l) train, $(ls $DATA/val | wc -l) val"
$HSV prepare $DATA/train $W/train --size $PREP 2>$W/prepare.err || { cat $W/prepare.err; exit 1; }
$HSV prepare $DATA/val $W/val --size $SIZE 2>>$W/prepare.err || exit 1
log "caches ready: $(tail -c 200 $W/prepare.err | tr '\r' '\n' | tail -1)"

train() {  # name, options...
  local name=$1; shift
  $HSV train --data $W/train --val $W/val --out $W/$name --batch-size $BS --size $SIZE --lr $LR --device $DEV \
    --width-scale $WIDTH --epochs-stage1 1000 --epochs-stage2 1000 --checkpoint-every 1000000 --log-every 25 \
    --events jsonl "$@" > $W/$name.jsonl 2> $W/$name.err
  log "train $name rc=$? $(grep '"done"' $W/$name.jsonl | cut -c1-160)"
}
evaluate() {  # name weights
  local name=$1 weights=$2; shift 2
  [ -f $weights ] || { log "no weights for $name"; return; }
  local lim=(); [ "$EVAL_LIMIT" != 0 ] && lim=(--limit $EVAL_LIMIT)
  $HSV evaluate --data $DATA/val --weights $weights --device $DEV --working-size 256 --json "${lim[@]}" \
    > $W/eval_$name.json 2> $W/eval_$name.err
  log "eval $name rc=$?"
}
row() {  # name, options... : a comparison row, then its evaluation
  local name=$1; shift
  train $name --steps-stage1 $ROW1 --steps-stage2 $ROW2 --minutes-stage1 $ROWMIN --minutes-stage2 $ROWMIN "$@"
  evaluate $name $W/$name/model.safetensors
}
V1="--sampling file --crop plain --hue-weighting none --hue-scalar --stage1-weight 0 --schedule constant --ema 0"

# The main run first; the rows beside it. Cumulative rows: each adds one change.
pids=()
( train main --minutes-stage1 $MAIN1 --minutes-stage2 $MAIN2; evaluate main $W/main/model.safetensors ) & pids+=($!)
row r0_v1      $V1 & pids+=($!)
row r1_feeding --hue-weighting none --hue-scalar --stage1-weight 0 --schedule constant --ema 0 & pids+=($!)
row r2_satw    --hue-scalar --stage1-weight 0 --schedule constant --ema 0 & pids+=($!)
row r3_vector  --stage1-weight 0 --schedule constant --ema 0 & pids+=($!)
row r4_stage1  --schedule constant --ema 0 & pids+=($!)
row r5_cosema  & pids+=($!)
row r6_dilated --dilated & pids+=($!)
row r7_size128 --size 128 & pids+=($!)
( while sleep 30; do pack; done ) & PACKER=$!
wait "${pids[@]}"
kill $PACKER 2>/dev/null
log "all runs done"
for name in main r6_dilated; do
  [ -f $W/$name/model.safetensors ] && python3 scripts/half_weights.py $W/$name/model.safetensors $W/${name}_fp16.safetensors
done
[ -f $W/main_fp16.safetensors ] && split -b 15M $W/main_fp16.safetensors $OUT/main_fp16.part.
[ -f $W/r6_dilated_fp16.safetensors ] && split -b 15M $W/r6_dilated_fp16.safetensors $OUT/dil_fp16.part.
pack
ls -la $OUT
log "finished"
