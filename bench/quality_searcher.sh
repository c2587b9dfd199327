#!/usr/bin/env bash
# Searcher vs no searcher on manywell (issue 20, section 4) at a stated
# budget: TB + Expl. + LS (the paper's recipe) against TB + Expl. + the MCMC
# searcher (from the Gaussian, with learner re-initialisation, and started
# from a 200-level SMC run), the same
# iterations and batch, reported against the energy calls each spent
# (training + local search/searcher; evaluation excluded), with ELBO,
# Delta log Z, Delta log Z^RW, ESS, the per-mode diagnostic and W2
# (2000 model vs 2000 exact samples).
# Usage: bench/quality_searcher.sh [diffsamp] [iterations] [batch] [out dir] [dim]
set -eu
exe=${1:-build/diffsamp}
iters=${2:-1500}
batch=${3:-100}
out=${4:-runs/quality_searcher}
dim=${5:-32}
mkdir -p "$out"
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
common=(configs/manywell_tb_expl_ls.yaml --resume never --set energy.dim=$dim --set train.iterations=$iters --set train.batch_size=$batch
        --set eval.every=$(( iters / 3 )) --set eval.samples=2000 --set eval.ground_truth_samples=0
        --set output.checkpoint_every=$iters)
declare -A runs
runs[ls]="--set local_search.enabled=true"
runs[searcher]="--set local_search.enabled=false --set searcher.enabled=true --set searcher.chains=$batch
  --set searcher.steps=5 --set searcher.keep=2 --set searcher.every=1"
runs[searcher_reinit]="${runs[searcher]} --set searcher.reinit_every=$(( iters / 3 ))"
runs[searcher_smc]="${runs[searcher]} --set searcher.smc_levels=200"
for name in ls searcher searcher_reinit searcher_smc; do
  [ -e "$out/$name/samples.h5" ] || "$exe" train "${common[@]}" ${runs[$name]} --out "$out/$name" > "$out/$name.log" 2>&1
done
/usr/bin/python3 - "$exe" "$out" "$dim" <<'PY'
import csv, subprocess, sys
exe, out, dim = sys.argv[1], sys.argv[2], sys.argv[3]
print("%-16s %10s %9s %9s %9s %7s %8s %8s %7s %7s" % ("run", "E calls", "ELBO", "dlogZ", "dlogZ^RW", "ESS",
      "right", "TV#wells", "TV(IS)", "W2"))
for name in ("ls", "searcher", "searcher_reinit", "searcher_smc"):
    r = list(csv.DictReader(open(f"{out}/{name}/metrics.csv")))[-1]
    calls = sum(float(r[k]) for k in ("energy_values_train", "energy_values_lp", "energy_values_ls"))
    w2 = subprocess.run(["/usr/bin/python3", "analysis/w2.py", "--diffsamp", exe, f"{out}/{name}/samples.h5",
                         "--n", "2000"], capture_output=True, text=True).stdout.strip()
    print("%-16s %10.0f %9.3f %9.3f %9.3f %7.4f %8.4f %8.4f %7.4f %7s" % (name, calls, float(r["elbo"]),
          float(r["delta_log_z"]), float(r["delta_log_z_is"]), float(r["ess"]), float(r["wells_right_fraction"]),
          float(r["wells_count_tv"]), float(r["wells_count_tv_rw"] or "nan"), w2))
floor = subprocess.run(["/usr/bin/python3", "analysis/w2.py", "--diffsamp", exe, "--self", "--energy", "many_well",
                        "--dim", dim], capture_output=True, text=True).stdout.strip()
print("exact right-hand weight %.6f; W2 floor (exact vs exact, n = 2000) %s" % (float(r["wells_right_exact"]), floor))
PY
