#!/usr/bin/env bash
# End-to-end test of energy plugins: builds the example energy
# (energies/examples/banana.c) with the README's one-line cc command, trains
# a few iterations on it (its keys validated from a config file, its path and
# SHA-256 recorded in the checkpoint and the sample set), and checks the
# errors for a library of another ABI version, a missing library and a bad
# key (exit 2, FILE:LINE:COL first). Then `make install`'s part (cmake
# --install into a temporary prefix) and the example built through
# pkg-config against the installed header.
set -u
exe="$1"
src="$2"
build=$(cd "$(dirname "$exe")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }
cd "$tmp" || exit 1

check "README's example is energies/examples/banana.c" \
    'diff <(sed -n "/^#include <diffsamp\/energy.h>/,/^DS_ENERGY_PLUGIN/p" "$src/README.md") \
          <(sed -n "/^#include <diffsamp\/energy.h>/,/^DS_ENERGY_PLUGIN/p" "$src/energies/examples/banana.c")'
check "README's build line is the documented one" \
    'grep -qxF "cc -shared -fPIC -O2 \$(pkg-config --cflags diffsamp) banana.c -o banana.so" "$src/README.md"'
cc -shared -fPIC -O2 -I"$src/include" "$src/energies/examples/banana.c" -o banana.so 2>"$tmp/cc_err"
check "the example builds with the documented cc line" '[ -f banana.so ] && [ ! -s "$tmp/cc_err" ]'
cc -shared -fPIC -I"$src/include" -DBAD_ABI "$src/tests/plugin_bad.c" -o wrong_abi.so
check "a wrong-ABI library builds" '[ -f wrong_abi.so ]'

cat > run.yaml <<'YAML'
energy:
  name: plugin
  path: ./banana.so
  curvature: 0.3
train:
  iterations: 6
  batch_size: 64
sampler:
  T: 10
  langevin: true
local_search:
  enabled: true
  cycle: 3
  max_iter: 10
  burn_in: 5
eval:
  every: 3
  samples: 128
output:
  checkpoint_every: 3
YAML
"$exe" train run.yaml --out run --resume never >"$tmp/out" 2>"$tmp/err"; rc=$?
check "training on the plugin exits 0" '[ $rc -eq 0 ] || { cat "$tmp/err"; false; }'
check "the start says what the plugin lacks" 'grep -q "energy plugin $tmp/banana.so: banana.*no exact sampler" "$tmp/err"'
check "metrics.csv has the evaluations" '[ $(wc -l < run/metrics.csv) -eq 3 ]'
check "the effective config has the plugin's keys" 'grep -q "^  curvature: 0.3" run/config.yaml && grep -q "^  scale: 2.0" run/config.yaml'
sha=$(sha256sum banana.so | cut -d" " -f1)
for f in run/checkpoint.h5 run/samples.h5; do
    check "$f records the library's path" 'h5dump -a energy_plugin "$f" | grep -q "\"$tmp/banana.so\""'
    check "$f records the library's SHA-256" 'h5dump -a energy_plugin_sha256 "$f" | grep -q "\"$sha\""'
done
"$exe" sample --checkpoint run/checkpoint.h5 -n 50 -o more.h5 >/dev/null 2>&1
check "diffsamp sample works from the checkpoint" 'h5dump -a energy_plugin_sha256 more.h5 | grep -q "\"$sha\""'

# The same energy built other bytes (-O1): resuming is refused, naming both
# SHA-256s and the way past; DS_ALLOW_PLUGIN_CHANGE=1 continues with it.
cp banana.so banana_O2.so
cc -shared -fPIC -O1 -I"$src/include" "$src/energies/examples/banana.c" -o banana.so
sha1=$(sha256sum banana.so | cut -d" " -f1)
check "the -O1 library has other bytes" '[ "$sha1" != "$sha" ]'
"$exe" train run.yaml --out run --resume auto --set train.iterations=9 >"$tmp/out" 2>"$tmp/err"; rc=$?
check "resume with a changed plugin library: exit 2" '[ $rc -eq 2 ]'
check "... naming both SHA-256s and DS_ALLOW_PLUGIN_CHANGE" \
    'grep -q "SHA-256 $sha, but this run.s library has SHA-256 $sha1" "$tmp/err" && grep -q DS_ALLOW_PLUGIN_CHANGE=1 "$tmp/err"'
check "... and the run is untouched (iteration 6)" '[ $(wc -l < run/metrics.csv) -eq 3 ]'
"$exe" eval --checkpoint run/checkpoint.h5 >"$tmp/out" 2>"$tmp/err"; rc=$?
check "eval with a changed plugin library: exit 2" '[ $rc -eq 2 ] && grep -q DS_ALLOW_PLUGIN_CHANGE "$tmp/err"'
DS_ALLOW_PLUGIN_CHANGE=1 "$exe" train run.yaml --out run --resume auto --set train.iterations=9 >"$tmp/out" 2>"$tmp/err"; rc=$?
check "DS_ALLOW_PLUGIN_CHANGE=1: resumes at 6 and finishes 9" \
    '[ $rc -eq 0 ] && grep -q "resumed at iteration 6" "$tmp/out" "$tmp/err" && [ $(wc -l < run/metrics.csv) -eq 4 ]'
check "... and the new checkpoint records the new library" 'h5dump -a energy_plugin_sha256 run/checkpoint.h5 | grep -q "\"$sha1\""'
mv banana_O2.so banana.so

# An energy with a gradient and no HVP (tests/plugin_bad.c, no define): PIS +
# LP differentiated through grad log R takes its HVPs by central differences,
# and says so on stderr, in config.yaml and in the files' config attribute.
cc -shared -fPIC -O2 -I"$src/include" "$src/tests/plugin_bad.c" -o no_hvp.so
"$exe" train --set energy.name=plugin --set energy.path=./no_hvp.so --set objective.name=pis \
    --set sampler.langevin=true --set objective.lp_through_grad=true --set sampler.T=6 --set train.batch_size=16 \
    --set train.iterations=3 --set eval.every=3 --set eval.samples=16 --set eval.ground_truth_samples=0 \
    --set local_search.enabled=false --set exploration.factor=0 --set output.checkpoint_every=3 \
    --out fdhvp --resume never >"$tmp/out" 2>"$tmp/err"; rc=$?
check "PIS + LP through grad log R on an energy without HVP exits 0" '[ $rc -eq 0 ] || { cat "$tmp/err"; false; }'
check "the finite-difference HVP is announced on stderr" 'grep -q "has no Hessian-vector product" "$tmp/err"'
check "... and noted in config.yaml" 'grep -q "^# note: the energy has no Hessian-vector product" fdhvp/config.yaml'
check "... and in the checkpoint's config attribute" \
    'h5dump -a config fdhvp/checkpoint.h5 | grep -q "note: the energy has no Hessian-vector product"'

printf 'energy:\n  name: plugin\n  path: ./wrong_abi.so\n' > wrong.yaml
"$exe" train wrong.yaml --out wrong --resume never >/dev/null 2>"$tmp/err"; rc=$?
check "a wrong-ABI library: exit 2" '[ $rc -eq 2 ]'
check "a wrong-ABI library: FILE:LINE:COL, the file and both versions" \
    'head -n 1 "$tmp/err" | grep -q "^wrong.yaml:3:9: error: energy plugin $tmp/wrong_abi.so was built for energy ABI version 42; this diffsamp has version 1"'
"$exe" config --set energy.name=plugin --set energy.path=./none.so --set energy.x=1 >/dev/null 2>"$tmp/err"; rc=$?
check "a missing library: exit 2 naming it" '[ $rc -eq 2 ] && grep -q "cannot find the energy plugin library ./none.so" "$tmp/err"'
printf 'energy:\n  name: plugin\n  path: ./banana.so\n  curvatur: 2\n' > key.yaml
"$exe" config key.yaml >/dev/null 2>"$tmp/err"; rc=$?
check "a bad plugin key: exit 2 at its FILE:LINE:COL" \
    '[ $rc -eq 2 ] && head -n 1 "$tmp/err" | grep -q "^key.yaml:4:3: error: unknown key .energy.curvatur. for energy .plugin. (did you mean .energy.curvature.?)"'

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null 2>"$tmp/err"
check "install puts the header and diffsamp.pc in place" \
    '[ -f "$tmp/prefix/include/diffsamp/energy.h" ] && ls "$tmp"/prefix/lib*/pkgconfig/diffsamp.pc >/dev/null'
pc=$(dirname "$(ls "$tmp"/prefix/lib*/pkgconfig/diffsamp.pc | head -n 1)")
PKG_CONFIG_PATH="$pc" cc -shared -fPIC -O2 $(PKG_CONFIG_PATH="$pc" pkg-config --cflags diffsamp) \
    "$src/energies/examples/banana.c" -o banana_pc.so
check "the example builds through pkg-config against the installed header" '[ -f banana_pc.so ]'
"$exe" config --set energy.name=plugin --set energy.path=./banana_pc.so >/dev/null 2>&1
check "and loads" '[ $? -eq 0 ]'
exit $fail
