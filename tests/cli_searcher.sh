#!/usr/bin/env bash
# The MCMC searcher (searcher.*) from the command line: the energy calls of
# its rounds counted exactly (under local search); a run interrupted and
# resumed (across a learner re-initialisation) is the uninterrupted run,
# bitwise (parameters, moments, buffer, chain states, metrics); the chains
# are the same on 1 and 2 ranks (and a 1-rank checkpoint resumes on 2); the
# re-initialisation keeps log Z; a bad setting is refused with exit code 2.
# Also local_search.carry_step: later rounds start from the adapted step,
# and a resumed run is still the uninterrupted one.
set -u
exe="$1"
/usr/bin/python3 -c "import h5py, numpy" 2>/dev/null || { echo "SKIPPED: /usr/bin/python3 lacks h5py"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }
args=(--set energy.name=many_well --set energy.dim=8 --set sampler.t_scale=1 --set sampler.T=8
      --set train.batch_size=24 --set train.seed=5 --set exploration.factor=0.1 --set eval.every=10
      --set eval.samples=60 --set eval.ground_truth_samples=0 --set output.checkpoint_every=1000
      --set searcher.enabled=true --set searcher.chains=37 --set searcher.steps=6 --set searcher.keep=2
      --set searcher.every=2 --set searcher.reinit_every=16 --set replay.capacity=2000
      --set local_search.enabled=false)

"$exe" train "${args[@]}" --set train.iterations=30 --out "$tmp/full" --resume never > "$tmp/full.log" 2>&1; rc1=$?
"$exe" train "${args[@]}" --set train.iterations=10 --out "$tmp/part" --resume never > "$tmp/p1.log" 2>&1; rc2=$?
"$exe" train "${args[@]}" --set train.iterations=30 --out "$tmp/part" > "$tmp/p2.log" 2>&1; rc3=$?
check "searcher runs and resumes" '[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && [ $rc3 -eq 0 ]'
# rounds before backward iterations 1, 5, 9, ... (every 2nd backward iteration):
# 8 rounds in 30 iterations; each evaluates 37 chains at the start and at each of 6 steps
check "energy calls of the searcher rounds are exact" '/usr/bin/python3 - "$tmp" <<PY
import csv, sys
t = sys.argv[1]
rows = {r["iteration"]: r for r in csv.DictReader(open(t + "/full/metrics.csv"))}
for it, rounds in (("10", 3), ("20", 5), ("30", 8)):
    r = rows[it]
    assert float(r["energy_values_ls"]) == rounds * 37 * 7, (it, r["energy_values_ls"])
    assert float(r["energy_grads_ls"]) == rounds * 37 * 7, (it, r["energy_grads_ls"])
PY'
check "interrupted + resumed = uninterrupted, bitwise (across the re-initialisation at 16)" '/usr/bin/python3 - "$tmp" <<PY
import csv, sys, h5py, numpy as np
t = sys.argv[1]
a, b = h5py.File(t + "/full/checkpoint.h5", "r"), h5py.File(t + "/part/checkpoint.h5", "r")
for n in ("/model/params", "/optimizer/m", "/optimizer/v", "/optimizer/step", "/state/iteration",
          "/replay/buffer/x", "/replay/buffer/log_r", "/searcher/x", "/searcher/step", "/searcher/rounds"):
    assert np.array_equal(a[n][()], b[n][()]), n
assert a["/searcher/x"].shape == (37, 8) and int(a["/searcher/rounds"][()]) == 8
ra = list(csv.DictReader(open(t + "/full/metrics.csv"))); rb = list(csv.DictReader(open(t + "/part/metrics.csv")))
fa = {r["iteration"]: r for r in ra}
fb = {r["iteration"]: r for r in rb}
for it in ("10", "20", "30"):
    for c in ("elbo", "log_z_is", "loss", "energy_values_ls", "buffer_size"):
        assert fa[it][c] == fb[it][c], (it, c, fa[it][c], fb[it][c])
PY'
# log Z kept by the re-initialisation: run to 16 (the reinit happens before step 16) and compare
"$exe" train "${args[@]}" --set train.iterations=16 --out "$tmp/r16" --resume never > "$tmp/r16.log" 2>&1
"$exe" train "${args[@]}" --set train.iterations=17 --out "$tmp/r17" --resume never > "$tmp/r17.log" 2>&1
check "the re-initialisation restarts Adam and the network, keeps log Z" '/usr/bin/python3 - "$tmp" <<PY
import sys, h5py, numpy as np
t = sys.argv[1]
a, b = h5py.File(t + "/r16/checkpoint.h5", "r"), h5py.File(t + "/r17/checkpoint.h5", "r")
assert int(a["/optimizer/step"][()]) == 16 and int(b["/optimizer/step"][()]) == 1
pa, pb = a["/model/params"][()], b["/model/params"][()]
# one Adam step from a fresh network moves each parameter by at most ~lr (1e-3) or lr_flow (0.1) for log Z
d = np.abs(pa - pb)
assert np.mean(d > 0.0015) > 0.3, "the network was not re-initialised"
import csv
za = float(list(csv.DictReader(open(t + "/r16/metrics.csv")))[-1]["log_z_learned"])
zb = float(list(csv.DictReader(open(t + "/r17/metrics.csv")))[-1]["log_z_learned"])
# the first Adam step after the reset moves log Z by lr_flow = 0.1 at most
assert abs(za) > 0.5 and abs(zb - za) <= 0.1 + 1e-6, (za, zb)
PY'
mpirun -np 2 "$exe" train "${args[@]}" --set train.iterations=30 --out "$tmp/np2" --resume never > "$tmp/np2.log" 2>&1; rc=$?
check "the chains are the same on 2 ranks (37 split 19 + 18), and the counts" '[ $rc -eq 0 ] && /usr/bin/python3 - "$tmp" <<PY
import csv, sys, h5py, numpy as np
t = sys.argv[1]
a, b = h5py.File(t + "/full/checkpoint.h5", "r"), h5py.File(t + "/np2/checkpoint.h5", "r")
assert np.array_equal(a["/searcher/x"][()], b["/searcher/x"][()])
assert a["/searcher/step"][()] == b["/searcher/step"][()]
r = list(csv.DictReader(open(t + "/np2/metrics.csv")))[-1]
assert float(r["energy_values_ls"]) == 8 * 37 * 7
PY'
"$exe" train "${args[@]}" --set train.iterations=10 --out "$tmp/one" --resume never > /dev/null 2>&1
mpirun -np 2 "$exe" train "${args[@]}" --set train.iterations=30 --out "$tmp/one" > "$tmp/one.log" 2>&1; rc=$?
check "a 1-rank checkpoint resumes on 2 ranks with the same chains" '[ $rc -eq 0 ] && /usr/bin/python3 - "$tmp" <<PY
import sys, h5py, numpy as np
t = sys.argv[1]
a, b = h5py.File(t + "/full/checkpoint.h5", "r"), h5py.File(t + "/one/checkpoint.h5", "r")
assert np.array_equal(a["/searcher/x"][()], b["/searcher/x"][()])
PY'
"$exe" train "${args[@]}" --set searcher.keep=6 --out "$tmp/bad" --resume never > "$tmp/bad.log" 2>&1; rc=$?
check "searcher.keep >= searcher.steps is refused with exit 2, naming the keys" '[ $rc -eq 2 ] && grep -q "searcher.keep" "$tmp/bad.log"'
"$exe" train "${args[@]}" --set objective.name=pis --set exploration.factor=0 --out "$tmp/bad2" --resume never > "$tmp/bad2.log" 2>&1; rc=$?
check "an on-policy objective with the searcher is refused with exit 2" '[ $rc -eq 2 ] && grep -q "searcher.enabled" "$tmp/bad2.log"'
# the per-mode diagnostic of diffsamp eval: the same on 1 and 2 ranks (counts summed over the ranks)
"$exe" eval --checkpoint "$tmp/full/checkpoint.h5" > "$tmp/ev1.log" 2>&1
mpirun -np 2 "$exe" eval --checkpoint "$tmp/full/checkpoint.h5" > "$tmp/ev2.log" 2>&1
check "diffsamp eval prints the per-mode diagnostic, the same on 1 and 2 ranks" 'grep -q "^TV #right wells " "$tmp/ev1.log" && grep -q "^right-hand (exact)   0.844311" "$tmp/ev1.log" && [ "$(grep -E "^(right-hand|TV #right)" "$tmp/ev1.log")" = "$(grep -E "^(right-hand|TV #right)" "$tmp/ev2.log")" ]'
# the SMC start (searcher.smc_levels): the same chains on 1 and 2 ranks, its calls counted
"$exe" train "${args[@]}" --set searcher.smc_levels=10 --set train.iterations=10 --out "$tmp/smc1" --resume never > /dev/null 2>&1; rc1=$?
mpirun -np 2 "$exe" train "${args[@]}" --set searcher.smc_levels=10 --set train.iterations=10 --out "$tmp/smc2" --resume never > /dev/null 2>&1; rc2=$?
check "searcher.smc_levels: chains the same on 1 and 2 ranks, SMC calls counted under local search" '[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && /usr/bin/python3 - "$tmp" <<PY
import csv, sys, h5py, numpy as np
t = sys.argv[1]
a, b = h5py.File(t + "/smc1/checkpoint.h5", "r"), h5py.File(t + "/smc2/checkpoint.h5", "r")
assert np.array_equal(a["/searcher/x"][()], b["/searcher/x"][()])
for run in ("smc1", "smc2"):
    r = list(csv.DictReader(open(t + "/" + run + "/metrics.csv")))[-1]
    # SMC: 37 particles x (10 levels x 2 MALA moves + 1); then 3 rounds (before iterations 1, 5, 9) of 37 x 7
    assert float(r["energy_values_ls"]) == 37 * 21 + 3 * 37 * 7, r["energy_values_ls"]
PY'
# searcher.own_buffer: the chains' states in a buffer of their own, the one backward iterations draw
# from; the on-policy samples stay in the replay buffer, unreplayed; resume exact
"$exe" train "${args[@]}" --set searcher.own_buffer=true --set train.iterations=30 --out "$tmp/ownA" --resume never > "$tmp/ownA.log" 2>&1; rc1=$?
"$exe" train "${args[@]}" --set searcher.own_buffer=true --set train.iterations=10 --out "$tmp/ownB" --resume never > /dev/null 2>&1; rc2=$?
"$exe" train "${args[@]}" --set searcher.own_buffer=true --set train.iterations=30 --out "$tmp/ownB" > /dev/null 2>&1; rc3=$?
check "searcher.own_buffer: 8 rounds x 37 chains x keep 2 in the searcher buffer, 15 x 24 on-policy in the other; resume exact" '[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && [ $rc3 -eq 0 ] && /usr/bin/python3 - "$tmp" <<PY
import csv, sys, h5py, numpy as np
t = sys.argv[1]
r = list(csv.DictReader(open(t + "/ownA/metrics.csv")))[-1]
assert int(float(r["buffer_ls_size"])) == 8 * 37 * 2 and int(float(r["buffer_size"])) == 15 * 24, (r["buffer_ls_size"], r["buffer_size"])
a, b = h5py.File(t + "/ownA/checkpoint.h5", "r"), h5py.File(t + "/ownB/checkpoint.h5", "r")
for n in ("/model/params", "/replay/buffer_ls/x", "/replay/buffer_ls/log_r", "/replay/buffer/x", "/searcher/x"):
    assert np.array_equal(a[n][()], b[n][()]), n
# training differs from the shared buffer (the same chains, other replayed states)
c = h5py.File(t + "/full/checkpoint.h5", "r")
assert np.array_equal(a["/searcher/x"][()], c["/searcher/x"][()])
assert not np.array_equal(a["/model/params"][()], c["/model/params"][()])
PY'
lsargs=(--set energy.name=many_well --set energy.dim=8 --set sampler.t_scale=1 --set sampler.T=8
        --set train.batch_size=24 --set train.seed=5 --set exploration.factor=0.1 --set eval.every=10
        --set eval.samples=60 --set eval.ground_truth_samples=0 --set output.checkpoint_every=1000
        --set local_search.enabled=true --set local_search.cycle=10 --set local_search.max_iter=30
        --set local_search.burn_in=10 --set local_search.ld_step=0.5 --set replay.capacity=3000)
"$exe" train "${lsargs[@]}" --set train.iterations=30 --out "$tmp/lsA" --resume never > /dev/null 2>&1
"$exe" train "${lsargs[@]}" --set local_search.carry_step=true --set train.iterations=30 --out "$tmp/lsB" --resume never > /dev/null 2>&1
"$exe" train "${lsargs[@]}" --set local_search.carry_step=true --set train.iterations=20 --out "$tmp/lsC" --resume never > /dev/null 2>&1
"$exe" train "${lsargs[@]}" --set local_search.carry_step=true --set train.iterations=30 --out "$tmp/lsC" > /dev/null 2>&1
check "local_search.carry_step: the step goes on adapting across rounds; resume exact" '/usr/bin/python3 - "$tmp" <<PY
import csv, sys, h5py, numpy as np
t = sys.argv[1]
a = [float(r["ls_step"]) for r in csv.DictReader(open(t + "/lsA/metrics.csv"))]
b = [float(r["ls_step"]) for r in csv.DictReader(open(t + "/lsB/metrics.csv"))]
# the first round (iteration 1) is the same; every later round of B starts where the previous ended
assert a[0] == b[0], (a, b)
assert abs(a[2] / a[0] - 1) < 0.35 and b[2] < 0.6 * a[2], (a, b)
x, y = h5py.File(t + "/lsB/checkpoint.h5", "r"), h5py.File(t + "/lsC/checkpoint.h5", "r")
for n in ("/model/params", "/replay/buffer_ls/x", "/state/ls_step"):
    assert np.array_equal(x[n][()], y[n][()]), n
PY'
exit $fail
