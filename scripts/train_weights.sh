#!/usr/bin/env bash
# Reproduce the shipped weights (swigapp/models/weights/), each trained on phantoms generated
# on the fly (seed 1000) and copied into the package with its model card:
#   swig_default       the SWIG model
#   swig_nolr          its no-LR-input ablation
#   wmri2q_supervised  wmri2q U-Net, low-resolution labels only
#   wmri2q_hybrid      wmri2q U-Net, low-resolution labels + Sobel edge loss (Qiu et al.)
# CPU, 2 cores: about 45 minutes for the SWIG models, then about 27 minutes for the two
# U-Nets, trained side by side with one thread each (as the shipped ones were).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
"$BIN/swigapp-train" runs/swig_default --steps 1500
"$BIN/python" -m swigapp.models.shipped runs/swig_default swig_default
"$BIN/swigapp-train" runs/swig_nolr --steps 800 --no-lr-input
"$BIN/python" -m swigapp.models.shipped runs/swig_nolr swig_nolr
WMRI2Q=(--arch unet --width 16 --blocks 3 --steps 1200 --threads 1 -q
        --w-guide 0 --w-lr 0 --w-supervised 0 --w-lowres 1)
"$BIN/swigapp-train" runs/wmri2q_supervised "${WMRI2Q[@]}" --w-edge 0 & sup=$!
"$BIN/swigapp-train" runs/wmri2q_hybrid "${WMRI2Q[@]}" --w-edge 0.5 & hyb=$!
wait "$sup"
wait "$hyb"
for name in wmri2q_supervised wmri2q_hybrid; do
    "$BIN/python" -m swigapp.models.shipped "runs/$name" "$name"
done
