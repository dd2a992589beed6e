#!/usr/bin/env bash
# The CPU campaign of benchmarks/table1.py: every run of `--size cpu` one after another in ONE
# background slot (nice 5, one thread), seed 0 of every scenario and model first. Run it from a
# FROZEN checkout (a git worktree nobody edits) so that ongoing edits cannot break a running process;
# each run folder records the commit it was started (and resumed) from in provenance.json.
#
#   git worktree add /work/campaign -b campaign <commit> && make -C /work/campaign install
#   cd /work/campaign && nohup benchmarks/table1_campaign.sh /work/campaign-runs \
#       >> /work/campaign-runs/campaign.log 2>&1 &
#
# Re-running the same command resumes: finished runs are skipped, an unfinished one continues from
# its checkpoint (written every 3 minutes). Stop cleanly with SIGTERM to the training process
# (its pid is in <root>/train.pid): it writes a checkpoint and the script stops after it.
# Then: python benchmarks/table1.py collect --size cpu --root /work/campaign-runs
set -euo pipefail
ROOT=${1:-/work/campaign-runs}
SEQUENCES=${SEQUENCES:-1000000}  # training sequences per run (62,500 steps at batch 16)
export OMP_NUM_THREADS=1
cd "$(dirname "$0")/.."
mkdir -p "$ROOT"
echo "[campaign] $(date -u +%FT%TZ) start in $(pwd) at $(git rev-parse HEAD), budget $SEQUENCES sequences per run"
for seed in 0 1; do
  for scenario in out_of_scene occlusion elastic; do
    for variant in dive ddpae; do
      nice -n 5 .venv/bin/python benchmarks/table1.py train --size cpu --scenario "$scenario" \
        --variant "$variant" --seed "$seed" --sequences "$SEQUENCES" --root "$ROOT" --resume &
      echo $! > "$ROOT/train.pid"
      wait $!
    done
  done
done
rm -f "$ROOT/train.pid"
nice -n 5 .venv/bin/python benchmarks/table1.py score --size cpu --root "$ROOT"
echo "[campaign] $(date -u +%FT%TZ) done"
