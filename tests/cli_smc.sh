#!/usr/bin/env bash
# The SMC baseline from the command line (diffsamp smc): the sample set it
# writes (layout, normalised weights, the result as attributes), the same
# particles and log Z on 1 and 2 ranks, log Z near the exact value on the
# diagonal Gaussian, and a bad setting refused with exit code 2.
set -u
exe="$1"
/usr/bin/python3 -c "import h5py, numpy" 2>/dev/null || { echo "SKIPPED: /usr/bin/python3 lacks h5py"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }
args=(--set energy.name=gaussian --set energy.dim=3 --set smc.particles=1500 --set smc.levels=30
      --set smc.init_var=4 --set train.seed=3)

"$exe" smc "${args[@]}" -o "$tmp/s1.h5" > "$tmp/s1.log" 2>&1; rc1=$?
mpirun -np 2 "$exe" smc "${args[@]}" -o "$tmp/s2.h5" > "$tmp/s2.log" 2>&1; rc2=$?
check "smc runs on 1 and 2 ranks" '[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ]'
check "smc prints its log Z and the energy calls" 'grep -q "log Z (SMC)" "$tmp/s1.log" && grep -q "energy evaluations   91500 (each with its gradient)" "$tmp/s1.log"'
check "the sample set: layout, normalised weights, attributes, the same on 1 and 2 ranks" '/usr/bin/python3 - "$tmp/s1.h5" "$tmp/s2.h5" <<PY
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert a["x"].shape == (1500, 3) and a["log_weight"].shape == (1500,) and a["log_reward"].shape == (1500,)
for k in ("x", "log_weight", "log_reward"):
    assert np.array_equal(a[k][()], b[k][()]), k
    assert "description" in a[k].attrs, k
assert a.attrs["log_z_smc"] == b.attrs["log_z_smc"]
assert abs(np.exp(a["log_weight"][()]).mean() - 1) < 1e-9
assert abs(a.attrs["log_z_smc"] - a.attrs["log_z_true"]) < 0.15, (a.attrs["log_z_smc"], a.attrs["log_z_true"])
assert a.attrs["delta_log_z"] == abs(a.attrs["log_z_smc"] - a.attrs["log_z_true"])
w = np.exp(a["log_weight"][()]); x = a["x"][()]
m = (w[:, None] * x).sum(0) / w.sum()
assert np.all(np.abs(m - np.array([-0.5, 0.0, 0.5])) < 0.15), m
PY'
"$exe" smc "${args[@]}" --set smc.ess_threshold=2 -o "$tmp/bad.h5" > "$tmp/bad.log" 2>&1; rc=$?
check "smc.ess_threshold 2 is refused with exit 2, naming the key" '[ $rc -eq 2 ] && grep -q "smc.ess_threshold" "$tmp/bad.log" && [ ! -e "$tmp/bad.h5" ]'
"$exe" smc --set energy.name=nope > "$tmp/bad2.log" 2>&1; rc=$?
check "an unknown energy is refused with exit 2" '[ $rc -eq 2 ]'
exit $fail
