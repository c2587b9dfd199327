#!/usr/bin/env bash
# End-to-end tests of the command line: listing, help and version, bad input
# (exit code 2, a first line "FILE:LINE:COL: error: ..." or "diffsamp: error:
# ...", source traces only with --debug or DS_DEBUG=1), and a short training
# run whose run folder holds a config.yaml that reloads to the same effective
# config and a metrics.csv with the documented columns.
set -u
exe="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }

out=$("$exe" energies)
check "energies lists 25gmm" 'grep -q "^25gmm *2 " <<<"$out"'
check "energies gives many_well log Z" 'grep -q "many_well *32 *164.69567" <<<"$out"'

printf 'sampler:\n  T: -3\n' > "$tmp/bad.yaml"
"$exe" train "$tmp/bad.yaml" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "bad value exits 2" '[ $rc -eq 2 ]'
check "bad value: first line is FILE:LINE:COL: error: key, found, allowed" \
    '[ "$(head -n 1 "$tmp/err")" = "$tmp/bad.yaml:2:6: error: key '"'sampler.T'"': found '"'-3'"', allowed: an integer in [1, 10000]" ]'
check "bad value: no source trace without --debug" '! grep -q "\.c:[0-9]" "$tmp/err" && [ $(wc -l < "$tmp/err") -eq 1 ]'
check "bad value: nothing on stdout" '[ ! -s "$tmp/out" ]'
"$exe" --debug train "$tmp/bad.yaml" >/dev/null 2>"$tmp/err"; rc=$?
check "--debug: exit 2 and the source trace" \
    '[ $rc -eq 2 ] && grep -q "^\[0\] main.c:[0-9]* parse_settings(): config.c:[0-9]* " "$tmp/err" && grep -q "^  from config.c:" "$tmp/err"'
DS_DEBUG=1 "$exe" train "$tmp/bad.yaml" >/dev/null 2>"$tmp/err"
check "DS_DEBUG=1: the source trace" 'grep -q "^\[0\] main.c:[0-9]* parse_settings(): " "$tmp/err"'

printf 'sampler:\n  Tee: 3\n' > "$tmp/unknown.yaml"
"$exe" train "$tmp/unknown.yaml" >/dev/null 2>"$tmp/err"; rc=$?
check "unknown key exits 2" '[ $rc -eq 2 ]'
check "unknown key lists allowed keys" 'grep -q "^$tmp/unknown.yaml:2:3: error: unknown key .sampler.Tee." "$tmp/err" && grep -q "t_scale" "$tmp/err"'

"$exe" train --set energy.name=nope --set train.iterations=1 --out "$tmp/x" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "unknown energy exits 2" '[ $rc -eq 2 ]'
check "unknown energy: refused when read, listing the energies" \
    'grep -q "^diffsamp: error: --set energy.name=nope: key .energy.name.: found .nope., allowed: 9gmm, 25gmm, .*many_well" "$tmp/err"'
check "unknown energy: before the config is printed or the run starts" '[ ! -s "$tmp/out" ] && [ ! -e "$tmp/x" ]'
printf 'energy:\n  name: 9gmm\n  variance: 2\n' > "$tmp/fam.yaml"
"$exe" config "$tmp/fam.yaml" >/dev/null 2>"$tmp/err"; rc=$?
check "a key of another energy family: exit 2, file:line:col, the family and its keys" \
    '[ $rc -eq 2 ] && grep -q "^$tmp/fam.yaml:3:3: error: unknown key .energy.variance. for energy .9gmm. (a key of energy 25gmm.*allowed keys: name, dim, spacing, std$" "$tmp/err"'
out=$("$exe" config --set energy.name=easy_funnel --set energy.x0_std=2 2>&1)
check "config documents the family's keys" 'grep -q "^  x0_std: 2.0 .*# (easy_funnel) std s of x0" <<<"$out"'
printf 'sampler:\n  joint_layers: 9\n' > "$tmp/layers.yaml"
"$exe" config "$tmp/layers.yaml" >/dev/null 2>"$tmp/err"; rc=$?
check "joint_layers: the documented bound is the policy's (8)" \
    '[ $rc -eq 2 ] && grep -q "found .9., allowed: an integer in \[0, 8\]" "$tmp/err" && "$exe" config | grep -q "joint_layers: 2 .*an integer in \[0, 8\]"'

"$exe" frobnicate >"$tmp/out" 2>"$tmp/err"; rc=$?
check "unknown command exits 2" '[ $rc -eq 2 ]'
check "usage error reads diffsamp: error:" \
    '[ "$(head -n 1 "$tmp/err")" = "diffsamp: error: unknown command '"'frobnicate'"'; the commands are train, sample, eval, energies, ground-truth, smc, config and vae-train (see \`diffsamp --help\`)" ]'
"$exe" sample -n 3 >/dev/null 2>"$tmp/err"; rc=$?
check "missing options: exit 2, diffsamp: error:" '[ $rc -eq 2 ] && grep -q "^diffsamp: error: sample needs --checkpoint PATH and -o FILE.h5" "$tmp/err"'
"$exe" train --set >/dev/null 2>"$tmp/err"; rc=$?
check "--set without a value: exit 2" '[ $rc -eq 2 ] && grep -q "^diffsamp: error: --set needs a value" "$tmp/err"'
"$exe" eval --checkpoint "$tmp/none.h5" >/dev/null 2>"$tmp/err"; rc=$?
check "a missing checkpoint: exit 1, diffsamp: error:, a hint about --debug" \
    '[ $rc -eq 1 ] && grep -q "^diffsamp: error: no checkpoint at" "$tmp/err" && grep -q "^diffsamp: note: run with --debug" "$tmp/err"'

out=$("$exe" --help); rc=$?
check "--help exits 0 and lists the commands" '[ $rc -eq 0 ] && grep -q "^usage: diffsamp" <<<"$out" && for c in train sample eval energies ground-truth smc config; do grep -q "^  $c" <<<"$out" || exit 1; done'
check "--help: the embedded default is TB + exploration + local search" 'grep -q "TB + exploration +" <<<"$out" && grep -q "local search" <<<"$out"'
for c in train sample eval energies ground-truth smc config; do
    out=$("$exe" $c --help 2>&1); rc=$?
    check "$c --help exits 0 with its usage" '[ $rc -eq 0 ] && [ "$(head -n 1 <<<"$out" | cut -d" " -f1-3)" = "usage: diffsamp $c" ]'
done
out=$("$exe" --version); rc=$?
check "--version prints the version" '[ $rc -eq 0 ] && grep -q "^diffsamp [0-9][0-9.]* (" <<<"$out" && grep -q "energy ABI version" <<<"$out"'

"$exe" train --set train.iterations=20 --set sampler.T=10 --set eval.every=10 --set eval.samples=100 \
    --set eval.ground_truth_samples=50 --set train.batch_size=32 --set energy.variance=0.4 --out "$tmp/run" >"$tmp/log" 2>&1; rc=$?
check "short training run succeeds" '[ $rc -eq 0 ]'
check "progress and final metrics printed" 'grep -q "^\[it 20/20\]" "$tmp/log" && grep -q "Delta log Z" "$tmp/log"'
check "config.yaml written" '[ -s "$tmp/run/config.yaml" ]'
# Round trip: the effective config the run printed (every key) against the one
# `diffsamp config` reads back from the run's config.yaml (comments removed).
# The run sets keys away from their defaults, so a key lost on the way shows.
sed -n '/^# effective configuration$/,/^$/p' "$tmp/log" | sed '1d;/^$/d' > "$tmp/effective"
"$exe" config "$tmp/run/config.yaml" 2>"$tmp/err" | sed -e 's/ *#.*$//' -e '/^$/d' > "$tmp/reloaded"
check "the effective config is printed with every key" '[ $(wc -l < "$tmp/effective") -ge 60 ]'
check "the effective config has the run's values" \
    'grep -qx "  iterations: 20" "$tmp/effective" && grep -qx "  T: 10" "$tmp/effective" && grep -qx "  variance: 0.4" "$tmp/effective"'
check "config.yaml is the effective config" 'cmp -s "$tmp/effective" "$tmp/run/config.yaml"'
check "config.yaml reloads to the same effective config, key by key" 'diff "$tmp/effective" "$tmp/reloaded"'
header=$(head -1 "$tmp/run/metrics.csv")
for col in iteration loss elbo log_z_is ess seconds delta_log_z delta_log_z_is; do
    check "metrics.csv has column $col" 'tr , "\n" <<<"$header" | grep -qx "$col"'
done
check "metrics.csv has one row per evaluation" '[ $(wc -l < "$tmp/run/metrics.csv") -eq 3 ]'
check "metrics are finite numbers" 'awk -F, "NR>1 { if (\$3 !~ /^-?[0-9.]+(e[-+][0-9]+)?$/) exit 1 }" "$tmp/run/metrics.csv"'
"$exe" sample --checkpoint "$tmp/run" -n 7 -o "$tmp/from_dir.h5" >/dev/null 2>"$tmp/err"; rc=$?
check "sample takes a run folder for --checkpoint (its checkpoint.h5)" \
    '[ $rc -eq 0 ] && h5dump -H -d /x "$tmp/from_dir.h5" | grep -q "SIMPLE { ( 7, 2 ) "'
"$exe" sample --checkpoint "$tmp/run" -o "$tmp/none.h5" >/dev/null 2>"$tmp/err"; rc=$?
check "sample of an unconditional run without -n: exit 2, says -n is needed" \
    '[ $rc -eq 2 ] && grep -q "sample needs -n N, the number of samples" "$tmp/err"'
"$exe" sample --checkpoint "$tmp/run" -n 7 --first 3 -o "$tmp/none.h5" >/dev/null 2>"$tmp/err"; rc=$?
check "--first on an unconditional run: exit 2, says it has no images" \
    '[ $rc -eq 2 ] && grep -q "^diffsamp: error: --first: the run in .* is not conditional (energy .25gmm.), so it has no images to choose" "$tmp/err" && [ ! -e "$tmp/none.h5" ]'
src="$2"
for cfg in "$src"/configs/*.yaml; do
    check "$(basename "$cfg") loads and validates" '"$exe" config "$cfg" > /dev/null 2>"$tmp/err"'
done
exit $fail
