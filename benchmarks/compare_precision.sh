#!/usr/bin/env bash
# Validation AUC of the default fast path (bf16, channels_last, torch.compile, fused Adam, uint8 loader)
# against the released fp32 path (fp32, eager, plain Adam, PIL loader): same data, seed and epochs.
#   bash benchmarks/compare_precision.sh [FFPP_ROOT] [LOCS] [OUT]
# Environment: EPOCHS (8), IMAGE_SIZE (299), EXTRA (more train.py flags).
set -euo pipefail
DATA=${1:-demo_data}
LOCS=${2:-runs/demo/jsons}
OUT=${3:-runs/precision}
EPOCHS=${EPOCHS:-8}
IMAGE_SIZE=${IMAGE_SIZE:-299}
read -r -a extra <<< "${EXTRA:-}"
python3 create_faces_from_dlib_locs.py --ffpp-root "$DATA" --locs "$LOCS" --out "$OUT/face" --image-size "$IMAGE_SIZE"
common=(--face-root "$OUT/face" --splits "$DATA/splits" --image-size "$IMAGE_SIZE" --pretrained none --epochs "$EPOCHS" --seed 0 "${extra[@]}")
python3 train.py "${common[@]}" --out "$OUT/default"
python3 train.py "${common[@]}" --out "$OUT/fp32" --precision fp32 --channels-last off --compile off \
    --fused-adam off --loader pil
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
runs = {name: json.load(open(f"{out}/{name}/history.json")) for name in ("default", "fp32")}
print("| epoch | default AUC c23 | fp32 AUC c23 | default AUC c40 | fp32 AUC c40 | default pairs/s | fp32 pairs/s |")
print("|---|---|---|---|---|---|---|")
for d, f in zip(runs["default"], runs["fp32"]):
    print(f"| {d['epoch']} | {d['val_auc_c23']:.4f} | {f['val_auc_c23']:.4f} | {d['val_auc_c40']:.4f} | "
          f"{f['val_auc_c40']:.4f} | {d['pairs_per_s']} | {f['pairs_per_s']} |")
for q in ("c23", "c40"):
    d, f = runs["default"][-1][f"val_auc_{q}"], runs["fp32"][-1][f"val_auc_{q}"]
    print(f"final val AUC {q}: default {d:.4f}, fp32 {f:.4f}, difference {d - f:+.4f}")
PY
