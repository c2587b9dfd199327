#!/usr/bin/env bash
# End-to-end tests of analysis/ (run with /usr/bin/python3, the interpreter
# that has h5py, numpy, matplotlib, POT and yaml; skipped without them):
# - summarize.py on tiny real runs: the printed mean and sample std of
#   delta_log_z, delta_log_z_is and elbo equal those computed here with awk
#   from the runs' last metrics rows; method labels; --paper numbers;
# - plot_training.py writes a PNG;
# - w2.py: exact samples of 25gmm are near the noise floor, shifted ones far;
# - plot_samples.py writes PNGs for 25gmm and many_well sample sets.
# Sample sets come from the program's run folder when it writes samples.h5,
# otherwise they are written here with h5py in the documented layout.
set -u
exe="$1"
src="$2"
py=/usr/bin/python3
an="$src/analysis"
export PYTHONDONTWRITEBYTECODE=1  # keep __pycache__ out of the source tree
if ! [ -x "$py" ] || ! "$py" -c "import h5py, numpy, matplotlib, ot, yaml" 2>/dev/null; then
    echo "SKIP: $py lacks one of h5py, numpy, matplotlib, ot (POT), yaml"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }
# close A B: |A - B| <= 1e-9 (1 + |B|)
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b;
                                          exit !(a != "" && b != "" && d <= 1e-9 * (1 + m)) }'; }
# col FILE NAME: the values of column NAME of a CSV file, one per data row
col() { awk -F, -v n="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) c = i; next } c { print $c }' "$1"; }
# last FILE NAME: column NAME of the last row of a CSV file
last() { awk -F, -v n="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) c = i; next } c { v = $c } END { print v }' "$1"; }
# row FILE METHOD NAME: column NAME of the row whose first field is METHOD
row() { awk -F, -v m="$2" -v n="$3" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) c = i; next }
                                     $1 == m && c { print $c }' "$1"; }

common=(--set train.iterations=20 --set sampler.T=10 --set train.batch_size=64 --set eval.every=10
        --set eval.samples=200 --set eval.ground_truth_samples=20)
ok=1
"$exe" train "${common[@]}" --set exploration.factor=0 --set local_search.enabled=false --set train.seed=1 --out "$tmp/tb1" >"$tmp/log" 2>&1 || ok=0
"$exe" train "${common[@]}" --set exploration.factor=0 --set local_search.enabled=false --set train.seed=2 --out "$tmp/tb2" >>"$tmp/log" 2>&1 || ok=0
"$exe" train "${common[@]}" --set exploration.factor=0.1 --set local_search.enabled=false --set train.seed=1 --out "$tmp/expl" >>"$tmp/log" 2>&1 || ok=0
"$exe" train "${common[@]}" --set energy.name=many_well --set objective.name=vargrad --set exploration.factor=0.1 \
    --set sampler.langevin=true --set local_search.enabled=true --set sampler.t_scale=1 --out "$tmp/mw" >>"$tmp/log" 2>&1 || ok=0
check "four tiny training runs succeed" '[ $ok -eq 1 ]'
[ $ok -eq 1 ] || { cat "$tmp/log"; exit 1; }

# --- summarize.py ------------------------------------------------------------
paper="$src/../shared/paper/table1.csv"
popt=()
[ -f "$paper" ] && popt=(--paper "$paper")
"$py" "$an/summarize.py" "$tmp/tb1" "$tmp/tb2" "$tmp/expl" "$tmp/mw" --csv "$tmp/sum.csv" "${popt[@]}" \
    >"$tmp/sum.txt" 2>"$tmp/err"; rc=$?
check "summarize.py exits 0" '[ $rc -eq 0 ]'
cat "$tmp/sum.txt"
check "labels: TB, TB + Expl., VarGrad + Expl. + LP + LS" \
    '[ "$(col "$tmp/sum.csv" method | tr "\n" "|")" = "TB|TB + Expl.|VarGrad + Expl. + LP + LS|" ]'
check "TB groups the two seeds" '[ "$(row "$tmp/sum.csv" TB n_runs)" = 2 ]'
check "targets in the paper's naming" \
    '[ "$(row "$tmp/sum.csv" TB target)" = 25gmm ] && [ "$(row "$tmp/sum.csv" "VarGrad + Expl. + LP + LS" target)" = manywell ]'
for m in delta_log_z delta_log_z_is elbo log_z_is ess; do
    # mean and sample std (ddof 1) of the two runs' last rows, computed here
    read -r mean std < <(for r in tb1 tb2; do last "$tmp/$r/metrics.csv" $m; done |
                         awk '{ v[NR] = $1; s += $1 } END { mu = s / NR; for (i = 1; i <= NR; i++) q += (v[i] - mu)^2;
                                printf "%.17g %.17g\n", mu, sqrt(q / (NR - 1)) }')
    check "$m mean over seeds = awk mean ($mean)" 'close "$(row "$tmp/sum.csv" TB ${m}_mean)" "$mean"'
    check "$m std over seeds = awk sample std ($std)" 'close "$(row "$tmp/sum.csv" TB ${m}_std)" "$std"'
    if [ $m = delta_log_z ] || [ $m = delta_log_z_is ]; then
        txt=$(awk -v a="$mean" -v b="$std" 'BEGIN { printf "%.3f ± %.3f", a, b }')
        check "text table prints $m as '$txt' in the TB row" 'grep "^TB  " "$tmp/sum.txt" | head -n 1 | grep -qF "$txt"'
    fi
done
single=$(last "$tmp/expl/metrics.csv" delta_log_z)
check "one run: the value itself, no std" \
    'close "$(row "$tmp/sum.csv" "TB + Expl." delta_log_z_mean)" "$single" && [ -z "$(row "$tmp/sum.csv" "TB + Expl." delta_log_z_std)" ]'
if [ -f "$paper" ]; then
    check "--paper prints the paper's TB 25gmm numbers under TB" \
        'grep -A1 "^TB  " "$tmp/sum.txt" | grep "^  paper" | grep -qF "1.176 ± 0.109"'
    check "--paper adds the paper's columns to the CSV" '[ "$(row "$tmp/sum.csv" TB paper_w2_mean)" = 4.83 ]'
fi

# --- plot_training.py --------------------------------------------------------
"$py" "$an/plot_training.py" "$tmp/tb1" -o "$tmp/train.png" >/dev/null 2>"$tmp/err"; rc=$?
check "plot_training.py writes a PNG" '[ $rc -eq 0 ] && [ -s "$tmp/train.png" ] && [ "$(head -c 4 "$tmp/train.png" | tail -c 3)" = PNG ]'
"$py" "$an/plot_training.py" "$tmp/mw" -o "$tmp/train_mw.png" >/dev/null 2>>"$tmp/err"
check "plot_training.py handles empty cells (many_well run)" '[ -s "$tmp/train_mw.png" ]'

# --- sample sets -------------------------------------------------------------
if [ -f "$tmp/tb1/samples.h5" ]; then
    echo "using the program's samples.h5"
    check "samples.h5 has the documented layout and log_reward matches analysis/targets.py" \
        '"$py" - "$an" "$tmp/tb1/samples.h5" 25gmm 2 "$tmp/mw/samples.h5" many_well 32 <<"EOF"
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import targets
for path, energy, dim in zip(sys.argv[2::3], sys.argv[3::3], sys.argv[4::3]):
    s = targets.load_samples(path)
    assert s["energy"] == energy and s["dim"] == int(dim) and s["x"].shape[1] == int(dim), path
    for k in ("log_reward", "log_pf", "log_pb", "log_weight"):
        assert s[k].shape == (s["x"].shape[0],), (path, k)
    ref = targets.log_density(energy, s["x"])
    assert np.allclose(s["log_reward"], ref, rtol=1e-4, atol=1e-3), (path, np.max(np.abs(s["log_reward"] - ref)))
    lw = s["log_reward"] + s["log_pb"] - s["log_pf"]
    assert np.allclose(s["log_weight"], lw, rtol=1e-4, atol=1e-3), path
    for k in ("elbo", "log_z_is", "ess"):
        assert k in s["metrics"], (path, k)
    assert abs(s["metrics"]["elbo"] - s["log_weight"].mean()) < 1e-6 * (1 + abs(s["metrics"]["elbo"])), path
EOF'
    "$py" "$an/plot_samples.py" "$tmp/mw/samples.h5" -o "$tmp/mw_real.png" >/dev/null 2>>"$tmp/err"; rc=$?
    check "plot_samples.py draws the program's many_well samples" '[ $rc -eq 0 ] && [ -s "$tmp/mw_real.png" ]'
    w1=$("$py" "$an/w2.py" "$tmp/tb1/samples.h5" --n 200 2>"$tmp/err")
    w2=$("$py" "$an/w2.py" "$tmp/tb2/samples.h5" --n 200 2>>"$tmp/err")
    check "w2.py on the program's samples gives finite positive values ($w1, $w2)" \
        'awk -v a="$w1" -v b="$w2" "BEGIN { exit !(a + 0 > 0 && a + 0 < 1e6 && b + 0 > 0 && b + 0 < 1e6) }"'
    "$py" "$an/summarize.py" "$tmp/tb1" "$tmp/tb2" --w2 --w2-n 200 --csv "$tmp/sumw.csv" >/dev/null 2>>"$tmp/err"
    wm=$(awk -v a="$w1" -v b="$w2" 'BEGIN { printf "%.17g", (a + b) / 2 }')
    check "summarize.py --w2 mean = mean of the w2.py values ($wm)" \
        'awk -v a="$(row "$tmp/sumw.csv" TB w2_mean)" -v b="$wm" "BEGIN { d = a - b; exit !(a != \"\" && d < 2e-6 && d > -2e-6) }"'
fi
# Exact 25gmm samples drawn here (independently of analysis/targets.py), the
# same shifted by +3 in x1, and many_well samples, in the documented layout.
"$py" - "$tmp" <<"EOF"
import sys
import h5py
import numpy as np
out = sys.argv[1]
rng = np.random.default_rng(12345)
def write(path, energy, x):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "diffsamp-samples"
        f.attrs["format_version"] = np.int32(1)
        f.attrs["energy"] = energy
        f.attrs["dim"] = np.int32(x.shape[1])
        f.attrs["config"] = "energy:\n  name: %s\n" % energy
        f.attrs["elbo"] = -0.1
        f.attrs["ess"] = 0.9
        d = f.create_dataset("x", data=x.astype(np.float32))
        d.attrs["description"] = "terminal states"
        for k in ("log_reward", "log_pf", "log_pb", "log_weight"):
            f.create_dataset(k, data=np.zeros(x.shape[0])).attrs["description"] = k
n = 1000
modes = np.array([(a, b) for a in (-10, -5, 0, 5, 10) for b in (-10, -5, 0, 5, 10)], dtype=float)
x = modes[rng.integers(0, 25, n)] + np.sqrt(0.3) * rng.standard_normal((n, 2))
write(out + "/gmm.h5", "25gmm", x)
x[:, 0] += 3.0
write(out + "/gmm_shift.h5", "25gmm", x)
a = rng.uniform(-3, 3, (200000,))
g = -a**4 + 6 * a**2 + 0.5 * a
a = a[np.log(rng.random(a.shape)) < g - g.max()][: n * 16].reshape(n, 16)
mw = np.empty((n, 32))
mw[:, 0::2] = a
mw[:, 1::2] = rng.standard_normal((n, 16))
write(out + "/mw.h5", "many_well", mw)
EOF
w=$("$py" "$an/w2.py" "$tmp/gmm.h5" --n 1000 2>"$tmp/err")
check "W2(exact 25gmm, exact) at n = 1000 is near the noise floor: $w < 2.0" \
    'awk -v w="$w" "BEGIN { exit !(w != \"\" && w + 0 > 0.3 && w + 0 < 2.0) }"'
ws=$("$py" "$an/w2.py" "$tmp/gmm_shift.h5" --n 1000 2>>"$tmp/err")
check "W2(25gmm shifted by +3, exact) is far: $ws > 2.5" 'awk -v w="$ws" "BEGIN { exit !(w != \"\" && w + 0 > 2.5) }"'
wf=$("$py" "$an/w2.py" --self --energy 25gmm --n 1000 2>>"$tmp/err")
check "w2.py --self (25gmm, n = 1000) is in [0.5, 2.0]: $wf" 'awk -v w="$wf" "BEGIN { exit !(w != \"\" && w + 0 > 0.5 && w + 0 < 2.0) }"'
wm=$("$py" "$an/w2.py" "$tmp/mw.h5" --n 500 2>>"$tmp/err")
wmf=$("$py" "$an/w2.py" --self --energy many_well --n 500 2>>"$tmp/err")
check "W2(exact many_well) ($wm) within 10% of the many_well floor ($wmf)" \
    'awk -v a="$wm" -v b="$wmf" "BEGIN { exit !(a != \"\" && b + 0 > 3 && a / b > 0.9 && a / b < 1.1) }"'
"$py" "$an/plot_samples.py" "$tmp/gmm.h5" -o "$tmp/gmm.png" >/dev/null 2>>"$tmp/err"; rc=$?
check "plot_samples.py writes a 25gmm PNG" '[ $rc -eq 0 ] && [ "$(head -c 4 "$tmp/gmm.png" | tail -c 3)" = PNG ]'
"$py" "$an/plot_samples.py" "$tmp/mw.h5" -o "$tmp/mw.png" >/dev/null 2>>"$tmp/err"; rc=$?
check "plot_samples.py writes a many_well PNG" '[ $rc -eq 0 ] && [ "$(head -c 4 "$tmp/mw.png" | tail -c 3)" = PNG ]'
printf 'x' > "$tmp/bad.h5"
"$py" "$an/w2.py" "$tmp/bad.h5" >/dev/null 2>"$tmp/err2"; rc=$?
check "w2.py refuses a non-HDF5 file with a message" '[ $rc -ne 0 ] && [ -s "$tmp/err2" ]'
[ $fail -eq 0 ] || cat "$tmp/err"
exit $fail
