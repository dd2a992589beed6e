#!/usr/bin/env bash
# The CPU campaign of benchmarks/table1.py: the `--size cpu` runs one after another in one background
# slot (one thread each), seed 0 of every Moving-MNIST scenario first, then seed 1, then the
# pedestrians pair (Table 2's stand-in; needs data/vtest.avi: `make data/vtest.avi`). Two slots use the two cores, one variant
# each (VARIANTS=dive / VARIANTS=ddpae), so that they never reach the same run. Run it from a FROZEN
# checkout (a git worktree nobody edits) so that ongoing edits cannot break a running process; each
# run folder records the commit it was started (and resumed) from in provenance.json.
#
#   git worktree add /work/campaign -b campaign <commit> && make -C /work/campaign install
#   cd /work/campaign && for v in dive ddpae; do VARIANTS=$v setsid nohup \
#       benchmarks/table1_campaign.sh /work/campaign-runs >> /work/campaign-runs/slot-$v.log 2>&1 \
#       < /dev/null & done
#
# Re-running the same command resumes: finished runs are skipped, an unfinished one continues from
# its checkpoint (written every 3 minutes); a finished run is scored on its test set at once.
# Stop: `touch <root>/stop` makes each slot stop after its current run; to stop now as well, send
# SIGTERM to the training processes (pids in <root>/train-<variant>.pid; they write a checkpoint).
# Then: python benchmarks/table1.py collect --size cpu --root /work/campaign-runs (and commit).
set -uo pipefail
ROOT=${1:-/work/campaign-runs}
SEQUENCES=${SEQUENCES:-1000000}  # training sequences per run (62,500 steps at batch 16)
VARIANTS=${VARIANTS:-"dive ddpae"}
SEEDS=${SEEDS:-"0 1"}
export OMP_NUM_THREADS=1
cd "$(dirname "$0")/.."
mkdir -p "$ROOT"
rm -f "$ROOT/stop"
echo "[campaign] $(date -u +%FT%TZ) start in $(pwd) at $(git rev-parse HEAD), variants $VARIANTS, budget $SEQUENCES sequences per run"
RUNS=()
for seed in $SEEDS; do for scenario in out_of_scene occlusion elastic; do RUNS+=("$scenario:$seed"); done; done
for seed in $SEEDS; do RUNS+=("pedestrians:$seed"); done
for run in "${RUNS[@]}"; do
  scenario=${run%:*}
  seed=${run#*:}
  for variant in $VARIANTS; do
    # a finished (scored) run is skipped here, so that the stop file only ever follows real training
    [ -f "$ROOT/cpu/$scenario-$variant-s$seed/metrics.json" ] && continue
    .venv/bin/python benchmarks/table1.py train --size cpu --scenario "$scenario" \
      --variant "$variant" --seed "$seed" --sequences "$SEQUENCES" --root "$ROOT" --resume &
    echo $! > "$ROOT/train-$variant.pid"
    wait $!
    rc=$?
    if [ "$rc" -ne 0 ]; then echo "[campaign] $(date -u +%FT%TZ) $scenario-$variant-s$seed stopped (rc $rc)"; exit 0; fi
    if [ -f "$ROOT/stop" ]; then echo "[campaign] $(date -u +%FT%TZ) stop file: stopping"; exit 0; fi
  done
done
rm -f "$ROOT"/train-*.pid
echo "[campaign] $(date -u +%FT%TZ) done; score: python benchmarks/table1.py score --size cpu --root $ROOT"
