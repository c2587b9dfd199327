#!/usr/bin/env bash
# End-to-end tests of analysis/ (run with /usr/bin/python3, the interpreter
# that has h5py, numpy, matplotlib, POT and yaml; skipped without them). The
# scripts get everything about the energies from the program under test
# (exact samples from `diffsamp ground-truth`, log Z, default dims):
# - how the scripts find the program (--diffsamp, $DIFFSAMP, build/, PATH);
# - `diffsamp ground-truth` of 25gmm (default and spacing 3 / variance 0.1)
#   and many_well: the documented layout; /log_reward equal to an independent
#   numpy implementation (tests/np_targets.py) at /x to float rounding and
#   log_z_true to its quadrature; statistics known exactly (25gmm: 1/25 of the
#   samples per mode within 4 binomial std, mean, within-mode variance;
#   many_well: P(a > 0) and E[a] of the double wells from quadrature, the
#   Gaussian partners N(0, 1)). Tampered copies show that each part fails;
# - summarize.py on tiny real runs: the printed mean and sample std of
#   delta_log_z, delta_log_z_is and elbo equal those computed here with awk
#   from the runs' last metrics rows; method labels; --paper numbers;
# - plot_training.py on real runs, with the program's known log Z;
# - plot_samples.py on real runs: mode markers at the run's own spacing;
# - w2.py: exact 25gmm samples drawn here with numpy are near the noise floor
#   of the program's exact samples, shifted ones far; the program's own exact
#   samples at the same seed are at distance 0; energy keys are honoured;
#   summarize.py --w2 agrees with w2.py.
set -u
exe="$1"
src="$2"
py=/usr/bin/python3
an="$src/analysis"
tests="$src/tests"
export PYTHONDONTWRITEBYTECODE=1  # keep __pycache__ out of the source tree
if ! [ -x "$py" ] || ! "$py" -c "import sys; sys.modules['torch'] = None; import h5py, numpy, matplotlib, ot, yaml" 2>/dev/null; then
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
# json FILE EXPR: a value of a JSON report (EXPR in Python over r)
json() { "$py" -c 'import json, sys; r = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# --- how the scripts find the program ----------------------------------------
# Run folders of gaussian at dim 4 (its default) and 6: summarize.py asks the
# program for the default dim to label them. A copy of analysis/ with no
# build/ next to it and no diffsamp on PATH.
mkdir -p "$tmp/g4" "$tmp/g6" "$tmp/iso/analysis"
for d in 4 6; do
    printf 'energy:\n  name: gaussian\n  dim: %d\nobjective:\n  name: tb\n' $d >"$tmp/g$d/config.yaml"
    printf 'iteration,delta_log_z\n10,0.5\n' >"$tmp/g$d/metrics.csv"
done
cp "$an"/*.py "$tmp/iso/analysis/"
iso=("$py" "$tmp/iso/analysis/summarize.py" "$tmp/g6" --no-paper --csv -)
env -u DIFFSAMP PATH=/usr/bin:/bin "${iso[@]}" >/dev/null 2>"$tmp/err"; rc=$?
check "no program found: exit 1 naming what was tried" \
    '[ $rc -eq 1 ] && grep -q "cannot find the diffsamp program" "$tmp/err" && grep -qF "$tmp/iso/build/diffsamp" "$tmp/err" &&
     grep -qF "\$DIFFSAMP (not set)" "$tmp/err" && grep -q "diffsamp on PATH" "$tmp/err"'
env -u DIFFSAMP PATH=/usr/bin:/bin "${iso[@]}" --diffsamp "$exe" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "--diffsamp PATH is used" '[ $rc -eq 0 ] && grep -q "^TB,gaussian-d6," "$tmp/out"'
DIFFSAMP="$exe" PATH=/usr/bin:/bin "${iso[@]}" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "\$DIFFSAMP is used" '[ $rc -eq 0 ] && grep -q "^TB,gaussian-d6," "$tmp/out"'
mkdir -p "$tmp/bin"
ln -s "$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")" "$tmp/bin/diffsamp"
env -u DIFFSAMP PATH="$tmp/bin:/usr/bin:/bin" "${iso[@]}" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "diffsamp on PATH is used" '[ $rc -eq 0 ] && grep -q "^TB,gaussian-d6," "$tmp/out"'
DIFFSAMP=/nonexistent/diffsamp "${iso[@]}" >/dev/null 2>"$tmp/err"; rc=$?
check "a wrong \$DIFFSAMP is an error, not a fallback" '[ $rc -eq 1 ] && grep -qF "/nonexistent/diffsamp" "$tmp/err"'
DIFFSAMP=/nonexistent/diffsamp "${iso[@]}" --diffsamp "$exe" >/dev/null 2>"$tmp/err"; rc=$?
check "--diffsamp wins over \$DIFFSAMP" '[ $rc -eq 0 ]'
export DIFFSAMP="$exe"  # from here on: the program under test

# --- diffsamp ground-truth: layout, log_reward, exact statistics --------------
# check_gt.py FILE ENERGY DIM N [KEY=VALUE...]: every failed part is printed
# as "FAIL <part>: ..." (parts: layout, log_reward, log_z, statistics).
cat >"$tmp/check_gt.py" <<"EOF"
import math
import sys

import h5py
import numpy as np

sys.path.insert(0, sys.argv[1])
import np_targets  # noqa: E402

path, energy, dim, n = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
keys = {k: float(v) for k, v in (a.split("=", 1) for a in sys.argv[6:])}
failed = []


def part(name, ok, msg):
    if not ok:
        failed.append(name)
        print("FAIL %s: %s" % (name, msg))


with h5py.File(path, "r") as f:
    a = f.attrs
    part("layout", a.get("format") == "diffsamp-samples" and int(a.get("format_version", 0)) == 1,
         "format %r version %r" % (a.get("format"), a.get("format_version")))
    part("layout", a.get("energy") == energy and int(a.get("dim", -1)) == dim,
         "energy %r dim %r" % (a.get("energy"), a.get("dim")))
    part("layout", int(a.get("n_samples", -1)) == n, "n_samples %r, expected %d" % (a.get("n_samples"), n))
    cfg = str(a.get("config", ""))
    import yaml
    sec = (yaml.safe_load(cfg) or {}).get("energy", {}) if cfg else {}
    part("layout", sec.get("name") == energy and all(abs(float(sec.get(k, "nan")) - v) < 1e-12 for k, v in keys.items()),
         "config energy section %r, expected name %s and %r" % (sec, energy, keys))
    part("layout", "x" in f and f["x"].shape == (n, dim) and f["x"].dtype in (np.float32, np.float64),
         "/x %s" % (repr((f["x"].shape, f["x"].dtype)) if "x" in f else "missing"))
    part("layout", "log_reward" in f and f["log_reward"].shape == (n,) and f["log_reward"].dtype == np.float64,
         "/log_reward %s" % (repr((f["log_reward"].shape, f["log_reward"].dtype)) if "log_reward" in f else "missing"))
    for d in ("x", "log_reward"):
        part("layout", d in f and len(str(f[d].attrs.get("description", ""))) > 10, "/%s has no description" % d)
    part("layout", "log_z_true" in a, "no log_z_true attribute")
    if failed:
        sys.exit(1)
    xf = f["x"][()]
    lr = f["log_reward"][()]
    lz = float(a["log_z_true"])

x = xf.astype(np.float64)
# float rounding: a few ulp of the real type of /x, relative to |log R| + 1
eps = np.finfo(xf.dtype).eps
ref = np_targets.log_density(energy, x, keys)
err = np.abs(lr - ref) / (1.0 + np.abs(ref))
part("log_reward", bool(np.all(err <= 8 * eps)),
     "max relative difference %.3g at row %d (allowed %.3g)" % (err.max(), int(err.argmax()), 8 * eps))
lz_ref = np_targets.log_z(energy, dim)
part("log_z", abs(lz - lz_ref) <= 1e-9 * (1 + abs(lz_ref)), "log_z_true %.15g, numpy %.15g" % (lz, lz_ref))


def within(est, exact, sd, what):
    part("statistics", abs(est - exact) <= 4 * sd,
         "%s %.6g, exact %.6g, 4 std %.3g" % (what, est, exact, 4 * sd))


if energy in ("25gmm", "9gmm"):
    mu, std, spacing = np_targets.gmm_params(energy, keys)
    m = ((x[:, None, :] - mu[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    counts = np.bincount(m, minlength=mu.shape[0])
    p = 1.0 / mu.shape[0]
    sd = math.sqrt(n * p * (1 - p))
    worst = int(np.abs(counts - n * p).argmax())
    within(counts[worst], n * p, sd, "samples at mode %s" % (mu[worst],))
    var_all = float((mu ** 2).mean()) + std ** 2  # per coordinate; the mean is 0
    for j in range(2):
        within(x[:, j].mean(), 0.0, math.sqrt(var_all / n), "mean of x%d" % (j + 1))
    r = (x - mu[m]).ravel()
    within(r.var(), std ** 2, std ** 2 * math.sqrt(2.0 / r.size), "within-mode variance")
elif energy == "many_well":
    grid, dens, _ = np_targets.many_well_first()
    w = dens * np.gradient(grid)  # quadrature weights of the normalised density
    p_pos = float(w[grid > 0].sum())
    mean_a = float((w * grid).sum())
    var_a = float((w * grid ** 2).sum()) - mean_a ** 2
    a_, b_ = x[:, 0::2], x[:, 1::2]
    within((a_ > 0).mean(), p_pos, math.sqrt(p_pos * (1 - p_pos) / a_.size), "P(a > 0)")
    within(a_.mean(), mean_a, math.sqrt(var_a / a_.size), "E[a]")
    within(b_.mean(), 0.0, math.sqrt(1.0 / b_.size), "E[b]")
    within(b_.var(), 1.0, math.sqrt(2.0 / b_.size), "Var[b]")
sys.exit(1 if failed else 0)
EOF
# tamper.py IN OUT ENERGY WHAT [KEY=VALUE...]: a copy of a ground-truth file
# broken in one part (log_reward recomputed where the samples change, so
# that only the statistic is wrong).
cat >"$tmp/tamper.py" <<"EOF"
import shutil
import sys

import h5py
import numpy as np

sys.path.insert(0, sys.argv[1])
import np_targets  # noqa: E402

src, dst, energy, what = sys.argv[2:6]
keys = {k: float(v) for k, v in (a.split("=", 1) for a in sys.argv[6:])}
shutil.copyfile(src, dst)
with h5py.File(dst, "r+") as f:
    if what == "layout":
        del f["log_reward"]
    elif what == "log_reward":
        lr = f["log_reward"][()]
        lr[len(lr) // 2] += 1e-5 * (1 + abs(lr[len(lr) // 2]))
        f["log_reward"][...] = lr
    elif what == "log_z":
        f.attrs["log_z_true"] = float(f.attrs["log_z_true"]) + 1e-6
    elif what == "statistics":
        x = f["x"][()]
        if energy == "many_well":
            # the double wells: 2% of the positive a made negative
            a = x[:, 0::2]
            flip = (a > 0) & (np.arange(a.size).reshape(a.shape) % 50 == 0)
            a[flip] = -a[flip]
            x[:, 0::2] = a
        else:
            # a quarter of the samples of mode 0 moved to mode 1
            mu, _, _ = np_targets.gmm_params(energy, keys)
            m = ((x[:, None, :] - mu[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
            move = np.flatnonzero(m == 0)[::4]
            x[move] += (mu[1] - mu[0]).astype(x.dtype)
        f["x"][...] = x
        f["log_reward"][...] = np_targets.log_density(energy, x.astype(np.float64), keys)
EOF
gt_ok=1
"$exe" ground-truth --energy 25gmm --set train.seed=11 -n 50000 -o "$tmp/gt_gmm.h5" >/dev/null 2>"$tmp/err" || gt_ok=0
"$exe" ground-truth --energy 25gmm --set energy.spacing=3 --set energy.variance=0.1 --set train.seed=11 -n 50000 \
    -o "$tmp/gt_sp3.h5" >/dev/null 2>>"$tmp/err" || gt_ok=0
"$exe" ground-truth --energy many_well --set train.seed=11 -n 20000 -o "$tmp/gt_mw.h5" >/dev/null 2>>"$tmp/err" || gt_ok=0
check "diffsamp ground-truth writes 25gmm, 25gmm (spacing 3, variance 0.1) and many_well files" '[ $gt_ok -eq 1 ]'
[ $gt_ok -eq 1 ] || cat "$tmp/err"
cg() { "$py" "$tmp/check_gt.py" "$tests" "$@"; }
check "ground-truth 25gmm: layout, log_reward = numpy at /x, log Z, 1/25 per mode, mean, variance" \
    'cg "$tmp/gt_gmm.h5" 25gmm 2 50000'
check "ground-truth 25gmm with energy.spacing=3, energy.variance=0.1: the same at its own keys" \
    'cg "$tmp/gt_sp3.h5" 25gmm 2 50000 spacing=3 variance=0.1'
check "ground-truth many_well: layout, log_reward = numpy at /x, log Z, P(a > 0), E[a], partners N(0, 1)" \
    'cg "$tmp/gt_mw.h5" many_well 32 20000'
# Each part can fail: the checker on tampered copies, and on wrong keys.
for what in layout log_reward log_z statistics; do
    for e in gmm mw; do
        name=25gmm dim=2 n=50000
        [ $e = mw ] && name=many_well dim=32 n=20000
        "$py" "$tmp/tamper.py" "$tests" "$tmp/gt_$e.h5" "$tmp/bad_$e.h5" $name $what
        cg "$tmp/bad_$e.h5" $name $dim $n >"$tmp/out" 2>&1; rc=$?
        check "the checker fails a $name file with broken $what" '[ $rc -ne 0 ] && grep -q "^FAIL $what:" "$tmp/out"'
    done
done
cg "$tmp/gt_sp3.h5" 25gmm 2 50000 >"$tmp/out" 2>&1; rc=$?
check "the checker fails the spacing-3 file read at the default keys (layout, log_reward, statistics)" \
    '[ $rc -ne 0 ] && grep -q "^FAIL log_reward:" "$tmp/out" && grep -q "^FAIL statistics:" "$tmp/out"'

# --- tiny real runs ----------------------------------------------------------
common=(--set train.iterations=20 --set sampler.T=10 --set train.batch_size=64 --set eval.every=10
        --set eval.samples=200 --set eval.ground_truth_samples=20)
ok=1
"$exe" train "${common[@]}" --set exploration.factor=0 --set local_search.enabled=false --set train.seed=1 --out "$tmp/tb1" >"$tmp/log" 2>&1 || ok=0
"$exe" train "${common[@]}" --set exploration.factor=0 --set local_search.enabled=false --set train.seed=2 --out "$tmp/tb2" >>"$tmp/log" 2>&1 || ok=0
"$exe" train "${common[@]}" --set exploration.factor=0.1 --set local_search.enabled=false --set train.seed=1 --out "$tmp/expl" >>"$tmp/log" 2>&1 || ok=0
"$exe" train "${common[@]}" --set energy.name=many_well --set objective.name=vargrad --set exploration.factor=0.1 \
    --set sampler.langevin=true --set local_search.enabled=true --set sampler.t_scale=1 --out "$tmp/mw" >>"$tmp/log" 2>&1 || ok=0
"$exe" train "${common[@]}" --set exploration.factor=0 --set local_search.enabled=false --set energy.spacing=3 \
    --set energy.variance=0.1 --out "$tmp/sp3" >>"$tmp/log" 2>&1 || ok=0
check "five tiny training runs succeed, each writing samples.h5" \
    '[ $ok -eq 1 ] && for r in tb1 tb2 expl mw sp3; do [ -s "$tmp/$r/samples.h5" ] || exit 1; done'
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
# A non-default dimension is labelled by the program's default dim: gaussian
# (default 4) at energy.dim 4 and 6 (the folders made above).
"$py" "$an/summarize.py" "$tmp/g4" "$tmp/g6" --no-paper --csv "$tmp/sumg.csv" >/dev/null 2>>"$tmp/err"; rc=$?
check "summarize.py labels gaussian dim 6 'gaussian-d6', dim 4 (the program's default) 'gaussian'" \
    '[ $rc -eq 0 ] && [ "$(col "$tmp/sumg.csv" target | LC_ALL=C sort | tr "\n" "|")" = "gaussian|gaussian-d6|" ]'

# VAE runs: the paper's Table 2 (analysis/vae_table2.csv) under the ELBO of
# the estimates table, and in the CSV. Two run folders written here (the
# summary reads only config.yaml and metrics.csv; a real VAE run needs
# ../shared and minutes): VarGrad + Expl. + LP at two seeds.
for k in 1 2; do
    mkdir -p "$tmp/vae$k"
    printf 'energy:\n  name: vae\nobjective:\n  name: vargrad\nexploration:\n  factor: 0.1\nsampler:\n  langevin: true\ntrain:\n  seed: %s\n' \
        "$k" > "$tmp/vae$k/config.yaml"
    printf 'iteration,loss,elbo,log_z_is\n100,1,-140.5,-120.25\n200,1,-13%s.5,-11%s.25\n' "$k" "$k" > "$tmp/vae$k/metrics.csv"
done
"$py" "$an/summarize.py" "$tmp/vae1" "$tmp/vae2" --csv "$tmp/sumv.csv" >"$tmp/sumv.txt" 2>>"$tmp/err"; rc=$?
cat "$tmp/sumv.txt"
check "summarize.py on VAE runs: the ELBO mean over seeds (-132) and the paper's Table 2 row under it" \
    '[ $rc -eq 0 ] && close "$(row "$tmp/sumv.csv" "VarGrad + Expl. + LP" elbo_mean)" -132 &&
     grep -A1 "^VarGrad + Expl. + LP  " "$tmp/sumv.txt" | tail -n 1 | grep "^  paper" | grep -qF -- "-99.472 ± 0.259"'
check "summarize.py on VAE runs: the paper's ELBO in the CSV" \
    'close "$(row "$tmp/sumv.csv" "VarGrad + Expl. + LP" paper_elbo_mean)" -99.472'
"$py" "$an/summarize.py" "$tmp/vae1" --no-paper --csv "$tmp/sumv0.csv" >/dev/null 2>>"$tmp/err"; rc=$?
check "summarize.py --no-paper leaves the VAE paper column out" \
    '[ $rc -eq 0 ] && ! head -n 1 "$tmp/sumv0.csv" | grep -q paper_elbo'

# --- vae_elbo.py ----------------------------------------------------------------
# The encoder's ELBO of a VAE that diffsamp vae-train has just trained, over all
# 10000 Fashion-MNIST test images, against the program's own test ELBO (the
# same expectation: one sample per image with the analytic KL there, 8 samples
# with the sampled log q here; measured 0.2 nats apart, tolerance 1). And the
# paper's pretrained MNIST VAE on test images 0..99: encoder ELBO about -98.9.
fm=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
if [ -f "$fm" ]; then
    "$exe" vae-train --subset 2000 --epochs 1 --hidden 64 --latent 5 -o "$tmp/tiny_vae.h5" >"$tmp/vt.txt" 2>&1; rc=$?
    c_elbo=$(sed -n 's/.*test ELBO \([-0-9.]*\) per image).*/\1/p' "$tmp/vt.txt")
    "$py" "$an/vae_elbo.py" "$tmp/tiny_vae.h5" "$fm" --count 10000 --samples 8 >"$tmp/ve.txt" 2>>"$tmp/err"
    py_elbo=$(sed -n 's/^RESULT .* elbo=\([-0-9.]*\) .*/\1/p' "$tmp/ve.txt")
    check "vae_elbo.py: encoder ELBO $py_elbo within 1 nat of vae-train's test ELBO $c_elbo" \
        '[ $rc -eq 0 ] && [ -n "$c_elbo" ] && [ -n "$py_elbo" ] &&
         awk -v a="$c_elbo" -v b="$py_elbo" "BEGIN { d = a - b; exit !(d < 1 && d > -1) }"'
    head -c 1000 "$fm" > "$tmp/trunc.gz"
    "$py" "$an/vae_elbo.py" "$tmp/tiny_vae.h5" "$tmp/trunc.gz" >/dev/null 2>"$tmp/ve_err.txt"; rc=$?
    check "vae_elbo.py refuses a damaged image file, naming it" '[ $rc -ne 0 ] && grep -q "trunc.gz is damaged" "$tmp/ve_err.txt"'
    head -c 5000 "$tmp/tiny_vae.h5" > "$tmp/trunc_vae.h5"
    "$py" "$an/vae_elbo.py" "$tmp/trunc_vae.h5" "$fm" >/dev/null 2>"$tmp/ve_err.txt"; rc=$?
    check "vae_elbo.py refuses a truncated VAE file, naming it" '[ $rc -ne 0 ] && grep -q "trunc_vae.h5: not a readable HDF5" "$tmp/ve_err.txt"'
else
    echo "SKIPPED: vae_elbo.py against vae-train ($fm absent: apt-get install dataset-fashion-mnist)"
fi
mv="$src/../shared/data/mnist"
if [ -f "$mv/vae_bce_mnist_100ep.h5" ]; then
    "$py" "$an/vae_elbo.py" "$mv/vae_bce_mnist_100ep.h5" "$mv/t10k-images-idx3-ubyte.gz" >"$tmp/vm.txt" 2>>"$tmp/err"
    m_elbo=$(sed -n 's/^RESULT .* elbo=\([-0-9.]*\) .*/\1/p' "$tmp/vm.txt")
    check "vae_elbo.py: the paper's MNIST VAE on test images 0..99, encoder ELBO $m_elbo in [-100, -98]" \
        '[ -n "$m_elbo" ] && awk -v a="$m_elbo" "BEGIN { exit !(a > -100 && a < -98) }"'
else
    echo "SKIPPED: vae_elbo.py on the paper's MNIST VAE (../shared/data/mnist absent)"
fi

# --- plot_training.py --------------------------------------------------------
"$py" "$an/plot_training.py" "$tmp/tb1" -o "$tmp/train.png" --report "$tmp/train.json" >/dev/null 2>"$tmp/err"; rc=$?
check "plot_training.py writes a PNG" '[ $rc -eq 0 ] && [ -s "$tmp/train.png" ] && [ "$(head -c 4 "$tmp/train.png" | tail -c 3)" = PNG ]'
check "plot_training.py draws the 25gmm run's known log Z, 0" \
    '[ "$(json "$tmp/train.json" "r[\"known_log_z\"]")" = "[0.0]" ] &&
     [ "$(json "$tmp/train.json" "[p[\"log_z_lines\"] for p in r[\"panels\"] if p[\"title\"] == \"log Z estimates\"]")" = "[[0.0]]" ]'
"$py" "$an/plot_training.py" "$tmp/mw" "$tmp/g6" -o "$tmp/train_mw.png" --report "$tmp/train_mw.json" >/dev/null 2>>"$tmp/err"; rc=$?
check "plot_training.py handles empty cells (many_well run) and overlays runs" '[ $rc -eq 0 ] && [ -s "$tmp/train_mw.png" ]'
lz_prog=$("$exe" energies | awk '$1 == "many_well" { print $3 }')
lz_np=$("$py" -c 'import sys; sys.path.insert(0, sys.argv[1]); import np_targets; print(repr(np_targets.log_z("gaussian", 6)))' "$tests")
read -r lz_mw lz_g6 < <(json "$tmp/train_mw.json" '"%r %r" % tuple(r["known_log_z"])')
check "plot_training.py: many_well log Z from the program ($lz_mw = diffsamp energies' $lz_prog)" \
    'awk -v a="$lz_mw" -v b="$lz_prog" "BEGIN { d = a - b; exit !(b != \"\" && d < 1e-9 && d > -1e-9) }"'
check "plot_training.py: gaussian dim 6 log Z from ground-truth ($lz_g6 = numpy's $lz_np)" \
    'awk -v a="$lz_g6" -v b="$lz_np" "BEGIN { d = a - b; exit !(b != \"\" && d < 1e-9 && d > -1e-9) }"'

# --- the program's sample sets (samples.h5 of the runs) ------------------------
check "samples.h5 has the documented layout and log_reward matches tests/np_targets.py" \
    '"$py" - "$an" "$tests" "$tmp/tb1/samples.h5" 25gmm 2 "$tmp/mw/samples.h5" many_well 32 "$tmp/sp3/samples.h5" 25gmm 2 <<"EOF"
import sys
sys.path[:0] = sys.argv[1:3]
import numpy as np
import dsio
import np_targets
for path, energy, dim in zip(sys.argv[3::3], sys.argv[4::3], sys.argv[5::3]):
    s = dsio.load_samples(path)
    assert s["energy"] == energy and s["dim"] == int(dim) and s["x"].shape[1] == int(dim), path
    for k in ("log_reward", "log_pf", "log_pb", "log_weight"):
        assert s[k].shape == (s["x"].shape[0],), (path, k)
    name, d, keys = dsio.target_of_samples(s)
    ref = np_targets.log_density(energy, s["x"], keys)
    assert np.allclose(s["log_reward"], ref, rtol=1e-4, atol=1e-3), (path, np.max(np.abs(s["log_reward"] - ref)))
    lw = s["log_reward"] + s["log_pb"] - s["log_pf"]
    assert np.allclose(s["log_weight"], lw, rtol=1e-4, atol=1e-3), path
    for k in ("elbo", "log_z_is", "ess"):
        assert k in s["metrics"], (path, k)
    assert abs(s["metrics"]["elbo"] - s["log_weight"].mean()) < 1e-6 * (1 + abs(s["metrics"]["elbo"])), path
EOF'

# --- plot_samples.py ---------------------------------------------------------
"$py" "$an/plot_samples.py" "$tmp/tb1/samples.h5" -o "$tmp/tb1.png" --report "$tmp/tb1.json" >/dev/null 2>"$tmp/err"; rc=$?
check "plot_samples.py draws a real 25gmm run: 25 markers on the 5-grid, contours of 200000 exact samples" \
    '[ $rc -eq 0 ] && [ "$(head -c 4 "$tmp/tb1.png" | tail -c 3)" = PNG ] &&
     [ "$(json "$tmp/tb1.json" "sorted(set(v for m in r[\"panels\"][0][\"modes\"] for v in m))")" = "[-10.0, -5.0, 0.0, 5.0, 10.0]" ] &&
     [ "$(json "$tmp/tb1.json" "(r[\"panels\"][0][\"mode_markers\"], r[\"panels\"][0][\"density_samples\"], r[\"panels\"][0][\"contour_levels\"] >= 4)")" = "(25, 200000, True)" ]'
"$py" "$an/plot_samples.py" "$tmp/sp3/samples.h5" -o "$tmp/sp3.png" --report "$tmp/sp3.json" --density-samples 50000 >/dev/null 2>>"$tmp/err"; rc=$?
check "plot_samples.py on a spacing-3 run: markers on the 3-grid, the program's keys in the report" \
    '[ $rc -eq 0 ] &&
     [ "$(json "$tmp/sp3.json" "sorted(set(v for m in r[\"panels\"][0][\"modes\"] for v in m))")" = "[-6.0, -3.0, 0.0, 3.0, 6.0]" ] &&
     [ "$(json "$tmp/sp3.json" "(r[\"energy_section\"][\"spacing\"], r[\"energy_section\"][\"variance\"])")" = "(3.0, 0.1)" ]'
"$py" "$an/plot_samples.py" "$tmp/mw/samples.h5" -o "$tmp/mw_real.png" --report "$tmp/mw_real.json" --density-samples 50000 \
    >/dev/null 2>>"$tmp/err"; rc=$?
check "plot_samples.py draws a real many_well run: two panels with exact points and contours" \
    '[ $rc -eq 0 ] && [ -s "$tmp/mw_real.png" ] &&
     [ "$(json "$tmp/mw_real.json" "[(p[\"pair\"], p[\"exact_points\"] > 0, p[\"contour_levels\"] >= 4) for p in r[\"panels\"]]")" = "[([0, 2], True, True), ([0, 1], True, True)]" ]'

# --- w2.py -------------------------------------------------------------------
w1=$("$py" "$an/w2.py" "$tmp/tb1/samples.h5" --n 200 2>"$tmp/err")
w2=$("$py" "$an/w2.py" "$tmp/tb2/samples.h5" --n 200 2>>"$tmp/err")
check "w2.py on the program's samples gives finite positive values ($w1, $w2)" \
    'awk -v a="$w1" -v b="$w2" "BEGIN { exit !(a + 0 > 0 && a + 0 < 1e6 && b + 0 > 0 && b + 0 < 1e6) }"'
"$py" "$an/summarize.py" "$tmp/tb1" "$tmp/tb2" --w2 --w2-n 200 --csv "$tmp/sumw.csv" >/dev/null 2>>"$tmp/err"
wm=$(awk -v a="$w1" -v b="$w2" 'BEGIN { printf "%.17g", (a + b) / 2 }')
check "summarize.py --w2 mean = mean of the w2.py values ($wm)" \
    'awk -v a="$(row "$tmp/sumw.csv" TB w2_mean)" -v b="$wm" "BEGIN { d = a - b; exit !(a != \"\" && d < 2e-6 && d > -2e-6) }"'
w0=$("$py" "$an/w2.py" "$tmp/gt_gmm.h5" --n 1000 --seed 11 2>>"$tmp/err")
check "w2.py compares with the program's exact samples at --seed: the same ground truth (seed 11) is at 0 ($w0)" \
    '[ "$w0" = 0.000000 ]'
wk=$("$py" "$an/w2.py" "$tmp/gt_sp3.h5" --n 500 2>>"$tmp/err")
wkf=$("$py" "$an/w2.py" --self --energy 25gmm --set energy.spacing=3 --set energy.variance=0.1 --n 500 2>>"$tmp/err")
"$py" - "$tmp/gt_sp3.h5" "$tmp/sp3_as_default.h5" <<"EOF"
import shutil, sys
import h5py
shutil.copyfile(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f:
    f.attrs["config"] = "energy:\n  name: 25gmm\n"
EOF
wkd=$("$py" "$an/w2.py" "$tmp/sp3_as_default.h5" --n 500 2>>"$tmp/err")
check "w2.py uses the file's energy keys: spacing-3 samples near their floor ($wk ~ $wkf), far from the default 25gmm ($wkd)" \
    'awk -v a="$wk" -v b="$wkf" -v c="$wkd" "BEGIN { exit !(a + 0 > 0.1 && b + 0 > 0.1 && a / b < 1.6 && b / a < 1.6 && c + 0 > 2.5) }"'
# Exact 25gmm samples drawn here with numpy (independently of the program's
# sampler), the same shifted by +3 in x1, and many_well samples by rejection,
# in the documented layout.
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
check "W2(numpy-drawn 25gmm, the program's exact) at n = 1000 is near the noise floor: $w < 2.0" \
    'awk -v w="$w" "BEGIN { exit !(w != \"\" && w + 0 > 0.3 && w + 0 < 2.0) }"'
ws=$("$py" "$an/w2.py" "$tmp/gmm_shift.h5" --n 1000 2>>"$tmp/err")
check "W2(25gmm shifted by +3, exact) is far: $ws > 2.5" 'awk -v w="$ws" "BEGIN { exit !(w != \"\" && w + 0 > 2.5) }"'
wf=$("$py" "$an/w2.py" --self --energy 25gmm --n 1000 2>>"$tmp/err")
check "w2.py --self (25gmm, n = 1000) is in [0.5, 2.0]: $wf" 'awk -v w="$wf" "BEGIN { exit !(w != \"\" && w + 0 > 0.5 && w + 0 < 2.0) }"'
wm=$("$py" "$an/w2.py" "$tmp/mw.h5" --n 500 2>>"$tmp/err")
wmf=$("$py" "$an/w2.py" --self --energy many_well --n 500 2>>"$tmp/err")
check "W2(numpy-drawn many_well) ($wm) within 10% of the many_well floor ($wmf)" \
    'awk -v a="$wm" -v b="$wmf" "BEGIN { exit !(a != \"\" && b + 0 > 3 && a / b > 0.9 && a / b < 1.1) }"'
"$py" "$an/plot_samples.py" "$tmp/gmm.h5" -o "$tmp/gmm.png" --density-samples 50000 >/dev/null 2>>"$tmp/err"; rc=$?
check "plot_samples.py writes a 25gmm PNG" '[ $rc -eq 0 ] && [ "$(head -c 4 "$tmp/gmm.png" | tail -c 3)" = PNG ]'
"$py" "$an/plot_samples.py" "$tmp/mw.h5" -o "$tmp/mw.png" --density-samples 50000 >/dev/null 2>>"$tmp/err"; rc=$?
check "plot_samples.py writes a many_well PNG" '[ $rc -eq 0 ] && [ "$(head -c 4 "$tmp/mw.png" | tail -c 3)" = PNG ]'
printf 'x' > "$tmp/bad.h5"
"$py" "$an/w2.py" "$tmp/bad.h5" >/dev/null 2>"$tmp/err2"; rc=$?
check "w2.py refuses a non-HDF5 file with a message" '[ $rc -ne 0 ] && [ -s "$tmp/err2" ]'
"$py" "$an/w2.py" --self --energy 25gmm --set energy.std=3 --n 10 >/dev/null 2>"$tmp/err2"; rc=$?
check "w2.py passes on the program's refusal of a key of another family" \
    '[ $rc -eq 1 ] && grep -q "unknown key .energy.std. for energy .25gmm." "$tmp/err2"'
[ $fail -eq 0 ] || cat "$tmp/err"
exit $fail
