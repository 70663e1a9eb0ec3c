#!/usr/bin/env bash
# Trains the colour-hint model (issue 9) on one GPU, in one call of at most
# 10 minutes: v2's weights plus zero-weight hint channels (`--init` adds
# them), fine-tuned with simulated hints by v2's recipe. The photos travel
# before it, one part per call, as for train_v2_gpu.sh (scripts/README.md);
# this script expects them unpacked in $DATA (train/ and val/) and v2's
# weights at $INIT, and writes into $OUT the weights in 15 MB pieces and one
# archive of the run's events and previews. The evaluations (no hints, and
# 0-20 simulated hints) run afterwards on any machine: see models/README.md.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
DATA=${DATA:-/tmp/d}
W=${W:-/tmp/work}; mkdir -p $W
INIT=${INIT:-models/hsvcolorizer-v2.safetensors}
HSV="python3 -m hsvcolorizer.cli"
DEV=${DEV:-cuda}
BS=${BS:-64}
SIZE=${SIZE:-176}          # training crop side (v2's)
PREP=${PREP:-192}          # cached short side (v2's)
LR=${LR:-3e-4}
MIN1=${MIN1:-3.4}          # minutes of stage 1
MIN2=${MIN2:-2.8}          # minutes of stage 2
log() { echo "[$(date +%T) +${SECONDS}s] $*"; }
pack() { (cd $W && tar czf $OUT/logs.tgz.tmp hints.jsonl hints.err prepare.err hints/previews 2>/dev/null; mv $OUT/logs.tgz.tmp $OUT/logs.tgz); }

log "device: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo none)"
log "photos: $(ls $DATA/train | wc -l) train, $(ls $DATA/val | wc -l) val"
[ -f "$INIT" ] || { log "no $INIT"; exit 1; }
$HSV prepare $DATA/train $W/train --size $PREP 2>$W/prepare.err || { tail -c 2000 $W/prepare.err; exit 1; }
$HSV prepare $DATA/val $W/val --size $SIZE 2>>$W/prepare.err || { tail -c 2000 $W/prepare.err; exit 1; }
log "caches ready"

( while sleep 30; do pack; done ) & PACKER=$!
$HSV train --data $W/train --val $W/val --out $W/hints --hints --init "$INIT" --batch-size $BS --size $SIZE \
  --lr $LR --device $DEV --epochs-stage1 1000 --epochs-stage2 1000 --minutes-stage1 $MIN1 --minutes-stage2 $MIN2 \
  --checkpoint-every 1000000 --log-every 25 --events jsonl ${EXTRA:-} > $W/hints.jsonl 2> $W/hints.err
rc=$?
kill $PACKER 2>/dev/null
log "train rc=$rc $(grep '"done"' $W/hints.jsonl | cut -c1-200)"
[ $rc = 0 ] || tail -c 3000 $W/hints.err
[ -f $W/hints/model.safetensors ] && python3 scripts/half_weights.py $W/hints/model.safetensors $W/hints_fp16.safetensors
[ -f $W/hints_fp16.safetensors ] && split -b 15M $W/hints_fp16.safetensors $OUT/hints_fp16.part.
pack
ls -la $OUT
log "finished"
