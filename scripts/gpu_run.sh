#!/usr/bin/env bash
# One prepared GPU session for dive-pyro, within 9 minutes in all on a machine with one NVIDIA GPU:
#   1. the CUDA tests (tests that skip without CUDA, plus the CPU tests of the same files);
#   2. benchmarks/svi_step.py --device cuda at batch 64/256/1024 (today vs new path), then bf16 autocast
#      and torch.compile(mode="reduce-overhead") (CUDA graphs) at batch 256;
#   3. trains paper-out-of-scene on the GPU for the remaining minutes (max_seconds), checkpointing;
#   4. evaluates the checkpoint on the fixed out_of_scene test set;
#   5. leaves results, checkpoint and logs in $OUT (at most 8 files, see below).
#
# Usage:
#   bash scripts/gpu_run.sh --prepare   # HERE (needs PyPI): wheels the GPU image lacks -> .whl/ (git-ignored)
#   bash scripts/gpu_run.sh             # THERE: the device tool's run, carry [".whl"], OUT set by the tool
#   bash scripts/gpu_run.sh --dry-run   # every step at toy size on CPU (tests/test_gpu_run.py, in make test)
#
# Files in $OUT: gpu_run.log (every step's output), svi_step.json, svi_step.md, svi_step.png (step 2),
# checkpoint.pt, log.jsonl (step 3), eval.json (step 4); gpu_run.log ends with a summary.
# Environment: PYTHON (default: python3 with CUDA torch there, the project's .venv for --dry-run),
# BUDGET_S (default 540 = 9 min), BATCH (training batch size, default the preset's 64).
set -uo pipefail

MODE=run
case "${1:-}" in
  --dry-run) MODE=dry ;;
  --prepare) MODE=prepare ;;
  "") ;;
  *) echo "usage: $0 [--dry-run | --prepare]" >&2; exit 2 ;;
esac
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

if [ "$MODE" = prepare ]; then
  # pure-Python packages the GPU image does not have (see .library/device/KINDS.md's package list)
  PY="${PYTHON:-$REPO/.venv/bin/python}"
  mkdir -p .whl
  "$PY" -m pip download -q --no-deps --only-binary=:all: -d .whl pyro-ppl==1.9.2 pyro-api==0.1.2 || exit 1
  ls -l .whl
  exit 0
fi

START=$(date +%s)
BUDGET_S="${BUDGET_S:-540}"
if [ "$MODE" = dry ]; then
  PY="${PYTHON:-$REPO/.venv/bin/python}"
  OUT="${OUT:-$(mktemp -d)}"
  DEVICE=cpu
else
  PY="${PYTHON:-python3}"
  DEVICE=cuda
  : "${OUT:?OUT must name the folder for the results}"
fi
mkdir -p "$OUT"
WORK="$(mktemp -d)"
LOG="$OUT/gpu_run.log"
: >"$LOG"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg DIVE_PYRO_CACHE="$WORK/cache"
elapsed() { echo $(($(date +%s) - START)); }
say() { echo "[gpu_run $(elapsed)s] $*" | tee -a "$LOG"; }
left() { echo $((BUDGET_S - $(elapsed))); }
SUMMARY=("# gpu_run.sh ($MODE)" "")

# ------------------------------------------------------------------ 0. environment
if [ "$MODE" = run ]; then
  if ! "$PY" -c "import pyro" 2>/dev/null; then
    if ls .whl/*.whl >/dev/null 2>&1; then
      "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" .whl/*.whl \
        >>"$LOG" 2>&1 || { say "installing .whl failed"; exit 1; }
      export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
    else
      say "pyro is missing and there is no .whl/ (run 'bash scripts/gpu_run.sh --prepare' here, carry .whl)"
      exit 1
    fi
  fi
  # the project itself, laid out as installed (models/, guides/, inference/ become dive_pyro.*), no pip
  mkdir -p "$WORK/pkg" && cp -r dive_pyro "$WORK/pkg/" && cp -r models guides inference "$WORK/pkg/dive_pyro/"
  export PYTHONPATH="$WORK/pkg${PYTHONPATH:+:$PYTHONPATH}"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$LOG" 2>&1
fi
"$PY" -c "import torch, pyro, dive_pyro; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
'pyro', pyro.__version__)" 2>&1 | tee -a "$LOG"
if [ "$MODE" = run ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  say "no CUDA device visible"; exit 1
fi
DIVE=("$PY" -m dive_pyro)

# ------------------------------------------------------------------ 1. CUDA tests
say "1. CUDA tests"
TESTS=(tests/core/test_stn.py tests/models/test_kernels.py tests/data/test_fast_render.py tests/data/test_moving_mnist.py)
# the repository's addopts name plugins (nbmake) that the GPU image may lack
TEST_ARGS=(-q -p no:cacheprovider -o addopts= --import-mode=importlib -m "not slow" -W error)
[ "$MODE" = dry ] && TEST_ARGS+=(-k cuda)  # on CPU these skip: a quick check that the files collect
timeout 120 "$PY" -m pytest "${TEST_ARGS[@]}" "${TESTS[@]}" >>"$LOG" 2>&1
rc=$?
say "   tests exit $rc"
SUMMARY+=("- CUDA tests (${TESTS[*]}): exit $rc ($(grep -E '(passed|failed|skipped|error)' "$LOG" | tail -1))")

# ------------------------------------------------------------------ 2. benchmark
say "2. svi_step benchmark"
if [ "$MODE" = dry ]; then  # one toy call covers the extra bf16 path (compile is CUDA-only here)
  timeout 150 "$PY" benchmarks/svi_step.py --quick --device cpu --configs paper --bf16 --out "$WORK/bench" >>"$LOG" 2>&1
  say "   svi_step exit $?"
else
  timeout 100 "$PY" benchmarks/svi_step.py --device cuda --configs paper --batch 64 256 1024 --rounds 4 \
    --out "$WORK/bench" >>"$LOG" 2>&1
  say "   svi_step exit $?"
  timeout 60 "$PY" benchmarks/svi_step.py --device cuda --configs paper --batch 256 --rounds 4 --bf16 \
    --out "$WORK/bf16" >>"$LOG" 2>&1
  say "   svi_step --bf16 exit $?"
  timeout 120 "$PY" benchmarks/svi_step.py --device cuda --configs paper --batch 256 --rounds 4 --compile \
    --out "$WORK/compile" >>"$LOG" 2>&1
  say "   svi_step --compile exit $?"
fi
for f in svi_step.json svi_step.md svi_step.png; do
  [ -f "$WORK/bench/$f" ] && cp "$WORK/bench/$f" "$OUT/$f"
done
for extra in bf16 compile; do
  [ -f "$WORK/$extra/svi_step.md" ] && { echo; echo "## --$extra, batch 256"; cat "$WORK/$extra/svi_step.md"; } \
    >>"$OUT/svi_step.md"
done
[ -f "$OUT/svi_step.md" ] && SUMMARY+=("- benchmark: svi_step.md") || SUMMARY+=("- benchmark: no results (see gpu_run.log)")

# ------------------------------------------------------------------ 3. training
EVAL_RESERVE=75
TRAIN_S=$(($(left) - EVAL_RESERVE))
[ "$TRAIN_S" -lt 30 ] && TRAIN_S=30
say "3. training paper-out-of-scene for $TRAIN_S s"
RUN="$WORK/run"
if [ "$MODE" = dry ]; then
  TRAIN=(paper-out-of-scene device=cpu steps=3 batch_size=2 model.frame_size=16 model.object_size=8
    model.num_frames=8 model.num_observed=5 model.hidden=8 model.image_latent=16 model.object_latent=8
    model.appearance_dim=4 model.static_dim=8 model.dynamic_dim=3 model.ngf=2 data.downsample=4)
else
  TRAIN=(paper-out-of-scene device=cuda ${BATCH:+batch_size=$BATCH})
fi
timeout $((TRAIN_S + 60)) "${DIVE[@]}" train "${TRAIN[@]}" --out-dir "$RUN" max_seconds="$TRAIN_S" \
  checkpoint_every_s=60 progress=false tensorboard=false log_every=10 >>"$LOG" 2>&1
say "   train exit $?"
cp "$RUN/checkpoint.pt" "$RUN/log.jsonl" "$OUT/" 2>/dev/null
if [ -f "$RUN/log.jsonl" ]; then
  SUMMARY+=("- training: $("$PY" - "$RUN/log.jsonl" <<'EOF'
import json, statistics, sys
recs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
recs = [r for r in recs if "step" in r and "seq_per_s" in r]
if recs:
    last = recs[-1]
    rate = statistics.median(r["seq_per_s"] for r in recs[len(recs) // 4 :])
    print(f"{last['step'] + 1} steps, last NELBO/pixel {last.get('loss_per_pixel', float('nan')):.4g}, "
          f"median {rate:.0f} training sequences/s")
EOF
)")
fi

# ------------------------------------------------------------------ 4. evaluation
say "4. evaluation"
N_EVAL=1024
[ "$MODE" = dry ] && N_EVAL=4
if [ -f "$RUN/checkpoint.pt" ]; then
  timeout $(($(left) > 30 ? $(left) : 30)) "${DIVE[@]}" evaluate --scenario out_of_scene --checkpoint "$RUN/checkpoint.pt" \
    --num-sequences "$N_EVAL" --json "$OUT/eval.json" >>"$LOG" 2>&1
  say "   evaluate exit $?"
fi
[ -f "$OUT/eval.json" ] && SUMMARY+=("- evaluation on $N_EVAL fixed out_of_scene test sequences: eval.json")

SUMMARY+=("- total $(elapsed) s of a $BUDGET_S s budget")
printf '%s\n' "" "${SUMMARY[@]}" | tee -a "$LOG"
rm -rf "$WORK"
