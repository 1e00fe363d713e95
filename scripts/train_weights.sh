#!/usr/bin/env bash
# Reproduce the shipped weights (swigapp/models/weights/), each trained on phantoms generated
# on the fly (seed 1000) and copied into the package with its model card:
#   swig_default       the SWIG model, in six stages: 1500 steps from random weights (guide
#                      weight 1, residual guide misregistration up to 1 deg / 1 mm), then
#                      STAGE2_STEPS more from those weights (guide weight 0.2, misregistration
#                      up to 0.3 deg / 0.3 mm, 10 subjects), then STAGE3_STEPS more with
#                      batch 8, learning rate 2e-4 and 16 subjects, then STAGE4_STEPS more
#                      with head motion up to 3 deg / 3 mm undone as registration does
#                      (the guides resampled back, 0.3 deg / 0.3 mm residual), then
#                      STAGE5_STEPS more at learning rate 1e-4 with the beyond-band
#                      supervised term (--w-beyond 1), then STAGE6_STEPS more on phantoms
#                      with 10 white-matter lesions each instead of 3 (--lesions 10), then
#                      STAGE7_STEPS more with domain randomisation (--randomise: each
#                      subject its own tissue values, protocols, sidecar mismatch, noise,
#                      guide resolution, deformation, atrophy and lesion load), then
#                      STAGE8_STEPS more on whole brains (not the slab) of 3 template
#                      phantoms and 9 real individuals of the anatomy split's training part
#                      (fetch them first: python -m swigapp.phantom.individuals fetch;
#                      docs/anatomies.md)
#   swig_stage7        the SWIG model after stage 7 (the previous release's default)
#   swig_stage6        the SWIG model after stage 6 (an earlier release's default)
#   swig_stage4        the SWIG model after stage 4 (an earlier release's default)
#   swig_nolr          the SWIG model's no-LR-input ablation
#   wmri2q_supervised  wmri2q U-Net, low-resolution labels only
#   wmri2q_hybrid      wmri2q U-Net, low-resolution labels + Sobel edge loss (Qiu et al.)
# CPU, 2 cores: about 30 + 40 + 55 + 45 + 50 + 35 + 27 + 30 minutes for swig_default, 15 for
# swig_nolr, then about 27 for the two U-Nets, trained side by side with one thread each (as
# the shipped ones were).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
STAGE2_STEPS=${STAGE2_STEPS:-2500}
STAGE3_STEPS=${STAGE3_STEPS:-1500}
STAGE4_STEPS=${STAGE4_STEPS:-1500}
STAGE5_STEPS=${STAGE5_STEPS:-1500}
STAGE6_STEPS=${STAGE6_STEPS:-1000}
STAGE7_STEPS=${STAGE7_STEPS:-700}
STAGE8_STEPS=${STAGE8_STEPS:-700}
LATE=(--w-guide 0.2 --max-rotation 0.3 --max-translation 0.3)
"$BIN/swigapp-train" runs/swig_stage1 --steps 1500
"$BIN/swigapp-train" runs/swig_stage2 --init runs/swig_stage1/model.pt --steps "$STAGE2_STEPS" \
    --learning-rate 5e-4 --subjects 10 "${LATE[@]}"
"$BIN/swigapp-train" runs/swig_stage3 --init runs/swig_stage2/model.pt --steps "$STAGE3_STEPS" \
    --learning-rate 2e-4 --batch-size 8 --subjects 16 "${LATE[@]}"
"$BIN/swigapp-train" runs/swig_stage4 --init runs/swig_stage3/model.pt --steps "$STAGE4_STEPS" \
    --learning-rate 2e-4 --batch-size 8 --subjects 16 "${LATE[@]}" --head-motion 3 3
"$BIN/swigapp-train" runs/swig_stage5 --init runs/swig_stage4/model.pt --steps "$STAGE5_STEPS" \
    --learning-rate 1e-4 --batch-size 8 --subjects 16 "${LATE[@]}" --head-motion 3 3 \
    --w-beyond 1
"$BIN/swigapp-train" runs/swig_stage6 --init runs/swig_stage5/model.pt --steps "$STAGE6_STEPS" \
    --learning-rate 1e-4 --batch-size 8 --subjects 16 "${LATE[@]}" --head-motion 3 3 \
    --w-beyond 1 --lesions 10
# stage 7 was trained with one thread, side by side with a candidate (docs/model-card.md)
"$BIN/swigapp-train" runs/swig_stage7 --init runs/swig_stage6/model.pt --steps "$STAGE7_STEPS" \
    --learning-rate 1e-4 --batch-size 8 --subjects 16 "${LATE[@]}" --head-motion 3 3 \
    --w-beyond 1 --lesions 10 --randomise --threads 1
# stage 8 (15 minutes to build the pool of whole brains, about 10.5 GiB)
"$BIN/swigapp-train" runs/swig_stage8 --init runs/swig_stage7/model.pt --steps "$STAGE8_STEPS" \
    --learning-rate 1e-4 --batch-size 8 --subjects 12 --size full "${LATE[@]}" \
    --head-motion 3 3 --w-beyond 1 --lesions 10 --randomise --threads 1 \
    --anatomies template,synthseg-02,synthsr-1,brainweb-04,template,synthseg-03,synthsr-3,brainweb-18,template,synthseg-04,synthsr-4,brainweb-38
"$BIN/python" -m swigapp.models.shipped runs/swig_stage4 swig_stage4
"$BIN/python" -m swigapp.models.shipped runs/swig_stage6 swig_stage6
"$BIN/python" -m swigapp.models.shipped runs/swig_stage7 swig_stage7
"$BIN/python" -m swigapp.models.shipped runs/swig_stage8 swig_default
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
# The uncertainty calibration of swig_default's card (scale and floor of the stated SD per
# map), fitted on the validation individuals of the anatomy split: needs them fetched
# (python -m swigapp.phantom.individuals fetch ...; docs/anatomies.md).
"$BIN/python" -m benchmarks.uncertainty swig_default --subjects 2 --size full --write-card
