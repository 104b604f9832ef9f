#!/usr/bin/env bash
# Reproduce the shipped models in models/: the exact train and convert commands behind
# models/README.md and docs/BENCHMARKS.md. Needs the [train] extra and ../shared/data.
# About 1.5 hours on a 2-core x86_64 machine. The shipped files predate commit de3618d (rotation and
# zoom for half the training images instead of all) and commit 9fb3f4c (early stopping counted from half
# the fine-tuning epochs on): run this at de3618d's parent to repeat them exactly.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
BIN=${BIN:-.venv/bin}

# 1. ISIC 9-class default model at 288 px (the 180 px images upsampled: +5 points over 224, BENCHMARKS),
#    30 epochs, shades-of-gray colour constancy (robust to the kiosk's lamp and white balance:
#    bench/color_cast.py); int8 with ReLU channel equalization and quantization-aware fine-tuning, hard-swish
#    decomposed (the default: one XNNPACK partition); 12 QAT epochs
$BIN/train "$DATA/isic9/train" --img-size 288 --out runs/isic9_288_sog --epochs 30 --head-epochs 2 --patience 10 \
  --color-constancy shades-of-gray
$BIN/convert runs/isic9_288_sog --int8 --data "$DATA/isic9/train" --out models/isic9_int8.tflite --qat-epochs 12 \
  --equalize --force
$BIN/convert runs/isic9_288_sog --float16 --data "$DATA/isic9/train" --out models/isic9_float16.tflite --force

# 2. benign / malignant model (the binary set + HAM10000 mapped to two classes), colour constancy as in 1.
$BIN/train "$DATA/malignant-vs-benign/train" --task binary --extra-data "$DATA/ham10000" --out runs/binary_sog \
  --epochs 8 --head-epochs 2 --patience 4 --color-constancy shades-of-gray
$BIN/convert runs/binary_sog --int8 --data "$DATA/malignant-vs-benign/train" --out models/benign_malignant_int8.tflite \
  --qat-epochs 12 --equalize --force

# 3. lesion segmenter for edge-detect --segment (PH2 images + expert masks; a few minutes)
$BIN/train "$DATA/ph2" --task segment --out runs/ph2_segment --img-size 224 --epochs 40 --head-epochs 3 \
  --batch-size 8 --lr 1e-3 --patience 10
$BIN/convert runs/ph2_segment --int8 --data "$DATA/ph2" --out models/ph2_segment_int8.tflite
