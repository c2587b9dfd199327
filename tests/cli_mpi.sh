#!/usr/bin/env bash
# The command line under mpirun -np 2: the same metrics as one process (for
# forward training; with a replay buffer each rank draws from its own shard,
# so the runs agree in distribution only, see test_mpi.c), and a
# rank that fails takes the whole job down with a nonzero exit within seconds.
set -u
exe="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }
common=(--set train.iterations=30 --set sampler.T=10 --set train.batch_size=33 --set eval.every=15
        --set eval.samples=64 --set eval.ground_truth_samples=16 --set exploration.factor=0.1
        --set train.check_every=10 --set local_search.enabled=false)

"$exe" train "${common[@]}" --out "$tmp/np1" > "$tmp/np1.log" 2>&1; rc1=$?
mpirun -np 2 "$exe" train "${common[@]}" --out "$tmp/np2" > "$tmp/np2.log" 2>&1; rc2=$?
check "np 1 run succeeds" '[ $rc1 -eq 0 ]'
check "np 2 run succeeds" '[ $rc2 -eq 0 ]'
check "np 2 reports 2 ranks" 'grep -q "on 2 rank(s)" "$tmp/np2.log"'
# every column but the wall time must agree to printed precision (columns by name)
check "np 1 and np 2 give the same metrics" '/usr/bin/python3 - "$tmp/np1/metrics.csv" "$tmp/np2/metrics.csv" <<PY
import csv, sys, math
a = list(csv.DictReader(open(sys.argv[1]))); b = list(csv.DictReader(open(sys.argv[2])))
assert list(a[0]) == list(b[0]) and len(a) == len(b) == 2, (a, b)
assert "elbo" in a[0] and "energy_values_train" in a[0], list(a[0])
for ra, rb in zip(a, b):
    for k in ra:
        if k == "seconds" or ra[k] == rb[k]: continue
        assert abs(float(ra[k]) - float(rb[k])) <= 1e-4 * (1 + abs(float(rb[k]))), (k, ra[k], rb[k])
PY'

start=$(date +%s)
DS_DEBUG_FAIL_RANK=1 DS_DEBUG_FAIL_ITERATION=5 timeout 120 mpirun -np 2 "$exe" train "${common[@]}" \
    --set train.iterations=100000 --out "$tmp/fail" > "$tmp/fail.log" 2>&1; rc=$?
elapsed=$(( $(date +%s) - start ))
check "a failing rank ends the job with a nonzero exit" '[ $rc -ne 0 ] && [ $rc -ne 124 ]'
check "within seconds ($elapsed s)" '[ $elapsed -lt 30 ]'
check "the message names the rank and the cause" 'grep -q "^\[1\] .*forced failure of rank 1 at iteration 5" "$tmp/fail.log"'
# SIGUSR1 to mpirun reaches every rank: all checkpoint at the same iteration and exit 3
mpirun -np 2 "$exe" train "${common[@]}" --set train.iterations=100000 --set eval.every=100000 \
    --set output.checkpoint_every=100000 --out "$tmp/usr1" > "$tmp/usr1.log" 2>&1 &
pid=$!
for _ in $(seq 150); do grep -q "^\[it 100/" "$tmp/usr1.log" 2>/dev/null && break; sleep 0.1; done
kill -USR1 $pid
wait $pid; rc=$?
check "SIGUSR1 under mpirun: every rank checkpoints, exit code 3" \
    '[ $rc -eq 3 ] && grep -q "stopped by a signal" "$tmp/usr1.log" && [ -s "$tmp/usr1/checkpoint.h5" ]'
exit $fail
