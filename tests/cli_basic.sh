#!/usr/bin/env bash
# End-to-end tests of the command line: listing, bad input (exit code 2 and a
# message naming file:line:col and the key), and a short training run whose
# run folder holds config.yaml and a metrics.csv with the documented columns.
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
"$exe" train "$tmp/bad.yaml" >/dev/null 2>"$tmp/err"; rc=$?
check "bad value exits 2" '[ $rc -eq 2 ]'
check "bad value names file:line:col and key" 'grep -q "bad.yaml:2:[0-9]*: key .sampler.T.: found .-3." "$tmp/err"'

printf 'sampler:\n  Tee: 3\n' > "$tmp/unknown.yaml"
"$exe" train "$tmp/unknown.yaml" >/dev/null 2>"$tmp/err"; rc=$?
check "unknown key exits 2" '[ $rc -eq 2 ]'
check "unknown key lists allowed keys" 'grep -q "unknown key .sampler.Tee." "$tmp/err" && grep -q "t_scale" "$tmp/err"'

"$exe" train --set energy.name=nope --set train.iterations=1 --out "$tmp/x" >/dev/null 2>"$tmp/err"; rc=$?
check "unknown energy exits 2" '[ $rc -eq 2 ]'
check "unknown energy lists the energies" 'grep -q "many_well" "$tmp/err" && grep -q "25gmm" "$tmp/err"'

"$exe" frobnicate >/dev/null 2>&1; rc=$?
check "unknown command exits 2" '[ $rc -eq 2 ]'

"$exe" train --set train.iterations=20 --set sampler.T=10 --set eval.every=10 --set eval.samples=100 \
    --set eval.ground_truth_samples=50 --set train.batch_size=32 --out "$tmp/run" >"$tmp/log" 2>&1; rc=$?
check "short training run succeeds" '[ $rc -eq 0 ]'
check "progress and final metrics printed" 'grep -q "^\[it 20/20\]" "$tmp/log" && grep -q "Delta log Z" "$tmp/log"'
check "config.yaml written" '[ -s "$tmp/run/config.yaml" ]'
check "config.yaml reloads to the same config" \
    '"$exe" config "$tmp/run/config.yaml" --out "$tmp/run" | grep -v "^#" > "$tmp/a"; "$exe" config "$tmp/run/config.yaml" --out "$tmp/run" | grep -v "^#" > "$tmp/b"; grep -q "iterations: 20" "$tmp/a" && cmp -s "$tmp/a" "$tmp/b"'
header=$(head -1 "$tmp/run/metrics.csv")
for col in iteration loss elbo log_z_is ess seconds delta_log_z delta_log_z_is; do
    check "metrics.csv has column $col" 'tr , "\n" <<<"$header" | grep -qx "$col"'
done
check "metrics.csv has one row per evaluation" '[ $(wc -l < "$tmp/run/metrics.csv") -eq 3 ]'
check "metrics are finite numbers" 'awk -F, "NR>1 { if (\$3 !~ /^-?[0-9.]+(e[-+][0-9]+)?$/) exit 1 }" "$tmp/run/metrics.csv"'
src="$2"
for cfg in "$src"/configs/*.yaml; do
    check "$(basename "$cfg") loads and validates" '"$exe" config "$cfg" > /dev/null 2>"$tmp/err"'
done
exit $fail
