#!/usr/bin/env bash
# Second GPU lease: continue training the shipped weights (stage 2, which also
# fine-tunes LR-CMGN) from models/hsvcolorizer-v1.safetensors for a few more
# minutes. Expects .devdata/train (short side 256) and a few photos in .devdata/val.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-out}; mkdir -p "$OUT"
W=/tmp/work; mkdir -p $W
HSV="python3 -m hsvcolorizer.cli"
MINUTES=${MINUTES:-4.0}
DEV=${DEV:-cuda}
log() { echo "[$(date +%T) +${SECONDS}s] $*"; }
$HSV prepare .devdata/train $W/train --size 272 2>/dev/null || exit 1
$HSV prepare .devdata/val $W/val --size 256 2>/dev/null || exit 1
log "train"
$HSV train --data $W/train --val $W/val --out $W/cont --stage 2 --init models/hsvcolorizer-v1.safetensors \
  --batch-size 32 --device $DEV --epochs-stage2 1000 --minutes-stage2 $MINUTES --checkpoint-every 100000 \
  --log-every 20 --events jsonl > $W/cont.jsonl 2> $W/cont.err
log "train rc=$? $(tail -c 300 $W/cont.jsonl)"
python3 - <<'PY'
from hsvcolorizer.weights import load_weights, save_weights
m, meta = load_weights("/tmp/work/cont/model.safetensors")
for k in ("format_version", "architecture"): meta.pop(k, None)
save_weights(m, "/tmp/work/cont_fp16.safetensors", meta, half=True)
PY
split -b 15M $W/cont_fp16.safetensors $OUT/cont_fp16.part.
grep -v '"checkpoint"' $W/cont.jsonl | gzip > $OUT/cont.jsonl.gz
cp $(ls $W/cont/previews/*.png | tail -1) $OUT/cont_preview.png
log "done"; ls -la $OUT
