#!/usr/bin/env bash
# The paper's headline row at its full budget (issue #3): 25gmm TB + Expl. +
# LS, 25k iterations, batch 300 — then Delta log Z, Delta log Z^RW and the
# exact W2 (2000 model vs 2000 exact samples) next to the paper's numbers.
# Usage: bench/quality.sh [path/to/diffsamp] [config] [run dir]   (~20 min on 2 cores)
set -eu
exe=${1:-build/diffsamp}
cfg=${2:-configs/25gmm_tb_expl_ls.yaml}
run=${3:-runs/quality_$(basename "$cfg" .yaml)}
start=$(date +%s)
OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} "$exe" train "$cfg" --out "$run" --resume never
wall=$(( $(date +%s) - start ))
w2=$(/usr/bin/python3 analysis/w2.py --diffsamp "$exe" "$run/samples.h5" --n 2000 | grep -o '[0-9.]*' | tail -1)
/usr/bin/python3 - "$run" "$w2" "$wall" <<'PY'
import csv, sys
run, w2, wall = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
last = list(csv.DictReader(open(f"{run}/metrics.csv")))[-1]
# Sendera et al. (NeurIPS 2024), Table 1 / C.1, TB + Expl. + LS, mean +- std over 5 runs
paper = {"25gmm": (0.171, 0.013, 0.004, 0.011, 1.25, 0.18), "many_well": (4.57, 2.13, 0.19, 0.29, 5.66, 0.05)}
energy = [l.split(":")[1].strip() for l in open(f"{run}/config.yaml") if l.strip().startswith("name:")][0]
p = paper.get(energy)
print(f"\n{energy}, iteration {last['iteration']}, wall time {wall // 60} min {wall % 60} s")
print(f"{'metric':<16}{'diffsamp':>12}{'paper':>18}")
rows = [("Delta log Z", float(last["delta_log_z"]), p[0:2] if p else None),
        ("Delta log Z^RW", float(last["delta_log_z_is"]), p[2:4] if p else None),
        ("W2", w2, p[4:6] if p else None)]
for name, ours, ref in rows:
    ref_s = f"{ref[0]:.3f} +- {ref[1]:.3f}" if ref else "-"
    print(f"{name:<16}{ours:>12.3f}{ref_s:>18}")
PY
