#!/usr/bin/env bash
# quant-table.sh — the fp16 / RTN / GPTQ / AWQ perplexity table of the
# trained demo model: quantizes models-trained/kjv-tiny three ways into
# build/quant/ with `v100rt quantize`, runs `v100rt perplexity` on held-out
# text for the fp16 model and each checkpoint, and prints a markdown table.
#
#   scripts/quant-table.sh [--group-size N] [--act-order] [--sym] [--out FILE.md]
#
# Calibration: tests/fixtures/kjv/calibration.txt (training-split chapters);
# evaluation: tests/fixtures/kjv/revelation.txt (the book of Revelation,
# held out from training). Windows of 512 tokens (the model's positions),
# stride 256.
#
# The "v100rt" column loads each checkpoint with v100rt's own GPTQ/AWQ
# loader and int4 kernels; until those exist that column shows the loader's
# error. The "dequantized" column is independent of that loader: the
# checkpoint is decoded by tests/fixtures/quant_out/check_quant.py (numpy,
# from docs/formats.md) into a float16 model directory, which v100rt runs as an
# ordinary model — the same weights, so both columns should agree.
# Run from the repository root after `make`.
set -u
cd "$(dirname "$0")/.."
BIN=./v100rt
MODEL=models-trained/kjv-tiny
CALIB=tests/fixtures/kjv/calibration.txt
EVAL=tests/fixtures/kjv/revelation.txt
OUTDIR=build/quant
GROUP=128
EXTRA_GPTQ=()
EXTRA_SYM=()
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --group-size) GROUP=$2; shift 2;;
    --act-order) EXTRA_GPTQ+=(--act-order); shift;;
    --sym) EXTRA_SYM+=(--sym); shift;;
    --out) OUT=$2; shift 2;;
    *) echo "quant-table.sh: unknown option $1 (--group-size N, --act-order, --sym, --out FILE)" >&2; exit 2;;
  esac
done
[ -x "$BIN" ] || { echo "quant-table.sh: build first (make)" >&2; exit 1; }
mkdir -p "$OUTDIR"
HAVE_NUMPY=0; python3 -c "import numpy" 2>/dev/null && HAVE_NUMPY=1

# ppl DIR: "X" or the error's first line.
ppl() {
  local out
  if out=$("$BIN" perplexity --quiet "$1" "$EVAL" 2>&1); then
    awk '/^perplexity:/{print $2}' <<<"$out"
  else
    echo "error: $(grep -v '^ *$' <<<"$out" | tail -1 | cut -c1-160)"
  fi
}

rows=()
fp16=$(ppl "$MODEL")
rows+=("| fp16 | - | $fp16 | $fp16 | - |")
for m in rtn gptq awq; do
  args=(--quiet --force --method "$m" --group-size "$GROUP")
  case $m in
    rtn) args+=("${EXTRA_SYM[@]}");;
    gptq) args+=(--calibration "$CALIB" "${EXTRA_GPTQ[@]}" "${EXTRA_SYM[@]}");;
    awq) args+=(--calibration "$CALIB");;
  esac
  t0=$(date +%s.%N)
  if ! msg=$("$BIN" quantize "${args[@]}" "$MODEL" "$OUTDIR/$m" 2>&1); then
    rows+=("| $m | - | quantize failed: $(tail -1 <<<"$msg" | cut -c1-120) | - | - |")
    continue
  fi
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  echo "$msg" | grep '^wrote' >&2
  native=$(ppl "$OUTDIR/$m")
  deq="(needs python3 numpy)"
  if [ "$HAVE_NUMPY" = 1 ]; then
    if python3 tests/fixtures/quant_out/check_quant.py "$MODEL" "$OUTDIR/$m" --dequant "$OUTDIR/$m-dequantized" >&2; then
      deq=$(ppl "$OUTDIR/$m-dequantized")
    else
      deq="format check failed"
    fi
  fi
  note=""
  [ "$m" = awq ] && grep -q '"modules_to_not_convert": \[' "$OUTDIR/$m/config.json" && note=" (down_proj fp16: 688 % $GROUP != 0)"
  rows+=("| $m$note | $secs | $native | $deq | $(du -k "$OUTDIR/$m/model.safetensors" | cut -f1) KiB |")
done

{
  echo "kjv-tiny perplexity on $EVAL (held out), windows of 512, stride 256; 4-bit, group size $GROUP${EXTRA_GPTQ[*]:+, gptq ${EXTRA_GPTQ[*]}}${EXTRA_SYM[*]:+, ${EXTRA_SYM[*]}}; calibration $CALIB"
  echo
  echo "| model | quantize s | perplexity (v100rt loader) | perplexity (dequantized by check_quant.py) | weights file |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee ${OUT:+"$OUT"}
