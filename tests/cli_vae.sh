#!/usr/bin/env bash
# End-to-end tests of the VAE experiment's command line: a short conditional
# run on the pretrained MNIST VAE of ../shared (TB + exploration with local
# search, both ways) whose sample set carries /condition and the per-image
# metrics, on 1 and 2 ranks; bitwise resume; refusals of conditional
# settings that are not supported; vae-train's help and refusals. Skipped
# (77) when ../shared is absent.
set -u
exe="$1"
src="$2"
shared="$src/../shared/data/mnist"
if [ ! -r "$shared/vae_bce_mnist_100ep.h5" ] || [ ! -r "$shared/t10k-images-idx3-ubyte.gz" ]; then
    echo "SKIPPED: $shared/vae_bce_mnist_100ep.h5 or the MNIST test images are absent (../shared)"
    exit 77
fi
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }
mpi() { mpirun --oversubscribe -n "$@"; }

cat > "$tmp/vae.yaml" <<YAML
energy: {name: vae, dim: 20, file: $shared/vae_bce_mnist_100ep.h5}
objective: {name: tb, backward: tb, both_ways: true}
train: {iterations: 8, batch_size: 6, lr_flow: 0.1, log_every: 4}
sampler: {T: 10, clipping: true}
exploration: {factor: 0.1}
local_search: {enabled: true, cycle: 4, max_iter: 12, burn_in: 3, ld_step: 0.001}
condition: {images: $shared/t10k-images-idx3-ubyte.gz, repeats: 1, train_count: 40, eval_count: 5, eval_repeats: 3}
eval: {every: 4, ground_truth_samples: 0}
output: {checkpoint_every: 4}
YAML
"$exe" train "$tmp/vae.yaml" --out "$tmp/a" --resume never >"$tmp/out" 2>&1; rc=$?
check "a conditional run ends" '[ $rc -eq 0 ]'
check "its closing line names the per-image and cross-image numbers" \
    'grep -q "3 per image of 5 evaluation images; over images: mean ELBO .*mean IS log p(x) .*(the reference.s \"RW\")" "$tmp/out"'
"$exe" train "$tmp/vae.yaml" --set searcher.enabled=true --out "$tmp/srch" --resume never >"$tmp/srch.out" 2>&1; rc=$?
check "the searcher with a conditional energy is refused (exit 2), saying why" \
    '[ $rc -eq 2 ] && grep -q "searcher.enabled is not available for conditional energies" "$tmp/srch.out"'
layout=$($py - "$tmp/a/samples.h5" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1])
c = f["condition"][:]
ok = f["x"].shape == (15, 20) and list(c) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
lw = f["log_weight"][:].reshape(5, 3)
m = lw.max(1, keepdims=True)
is_ = (m[:, 0] + np.log(np.exp(lw - m).mean(1))).mean()
ok = ok and abs(f.attrs["elbo"] - lw.mean()) < 1e-9 and abs(f.attrs["log_p_is"] - is_) < 1e-9
ok = ok and f.attrs["log_z_rw_cross_image"] >= f.attrs["log_p_is"] and f.attrs["samples_per_image"] == 3
w = np.exp(lw - m)
ess = (w.sum(1) ** 2 / (3 * (w * w).sum(1))).mean()
ok = ok and abs(f.attrs["ess_per_image"] - ess) < 1e-9 and 1 / 3 <= ess <= 1
print("ok" if ok else "bad: %s %s" % (c, dict(f.attrs)))
PY
)
check "the sample set has /condition per row and per-image metrics that h5py recomputes ($layout)" '[ "$layout" = ok ]'
# condition.eval_images: the evaluation images from another file (a test set beside a training set)
$py - "$shared/t10k-images-idx3-ubyte.gz" "$tmp/ev.idx" "$tmp/ev_rev.idx" <<'PY'
import gzip, struct, sys
raw = gzip.open(sys.argv[1]).read()
imgs = [raw[16 + i * 784:16 + (i + 1) * 784] for i in range(5)]
for path, order in ((sys.argv[2], imgs), (sys.argv[3], imgs[::-1])):
    open(path, "wb").write(struct.pack(">IIII", 0x803, 5, 28, 28) + b"".join(order))
PY
"$exe" train "$tmp/vae.yaml" --out "$tmp/ev" --resume never --set condition.eval_images="$tmp/ev.idx" >"$tmp/ev.out" 2>&1; rc=$?
"$exe" sample --checkpoint "$tmp/ev" -o "$tmp/ev_again.h5" >"$tmp/ev_s.out" 2>&1; rc2=$?
"$exe" sample --checkpoint "$tmp/ev" --images "$tmp/ev_rev.idx" -o "$tmp/ev_rev.h5" >"$tmp/ev_r.out" 2>&1; rc3=$?
same=$($py - "$tmp/a/samples.h5" "$tmp/ev/samples.h5" "$tmp/ev_again.h5" "$tmp/ev_rev.h5" <<'PY'
import sys, h5py, numpy as np
a, b, c, r = (h5py.File(p) for p in sys.argv[1:5])
ok = all(np.array_equal(a[k][:], b[k][:]) and np.array_equal(b[k][:], c[k][:]) for k in ("x", "log_weight", "condition"))
ok = ok and not np.array_equal(a["log_weight"][:], r["log_weight"][:]) and r["x"].shape == a["x"].shape
ok = ok and "eval_images: " in b.attrs["config"] and "ev.idx" in b.attrs["config"] and "ev_rev.idx" in r.attrs["config"]
print("ok" if ok else "bad")
PY
)
check "condition.eval_images holding the same 5 images gives the run's sample set bitwise, and sample of its checkpoint too; --images with them reversed, another ($same)" \
    '[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ $rc3 -eq 0 ] && [ "$same" = ok ] &&
     grep -q "of each of images 0..4 of $tmp/ev.idx written to" "$tmp/ev_s.out" &&
     grep -q "of each of images 0..4 of $tmp/ev_rev.idx written to" "$tmp/ev_r.out"'
"$exe" train "$tmp/vae.yaml" --out "$tmp/evb" --resume never --set condition.eval_images="$tmp/ev.idx" \
    --set condition.eval_first=3 >/dev/null 2>"$tmp/err"; rc=$?
check "an evaluation range past the end of condition.eval_images is refused, naming that file" \
    '[ $rc -ne 0 ] && grep -q "ev.idx: items \[3, 8) asked for; the file holds 5" "$tmp/err"'
mcsv=$($py - "$tmp/a/metrics.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
last = rows[-1]
ok = float(last["log_z_rw_cross_image"]) >= float(last["log_z_is"]) and 1 / 3 <= float(last["ess"]) <= 1
ok = ok and all(last[k] == "" for k in ("wells_right_fraction", "wells_count_tv", "modes_tv"))
print("ok" if ok else "bad: %s" % last)
PY
)
check "metrics.csv of a conditional run has the cross-image number and the per-image ESS, no mode columns ($mcsv)" \
    '[ "$mcsv" = ok ] && grep -q "^  cross-image RW  " "$tmp/out" && ! grep -q "ess nan" "$tmp/out"'
"$exe" sample --checkpoint "$tmp/a" -o "$tmp/again.h5" >"$tmp/sout" 2>&1; rc=$?
check "sample of the run's checkpoint (no -n) rewrites its sample set, bitwise" \
    '[ $rc -eq 0 ] && $py -c "import h5py,numpy as n,sys; a=h5py.File(sys.argv[1]); b=h5py.File(sys.argv[2]); sys.exit(not all(n.array_equal(a[k][:], b[k][:]) for k in (\"x\", \"log_weight\", \"log_reward\", \"log_pf\", \"log_pb\", \"condition\")))" "$tmp/a/samples.h5" "$tmp/again.h5"'
"$exe" sample --checkpoint "$tmp/a" --first 100 --count 4 -n 2 -o "$tmp/train_imgs.h5" >"$tmp/sout" 2>&1; rc=$?
other=$($py - "$tmp/train_imgs.h5" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1])
c = f["condition"][:]
lw = f["log_weight"][:].reshape(4, 2)
ok = list(c) == [100, 100, 101, 101, 102, 102, 103, 103] and f["x"].shape == (8, 20)
ok = ok and f.attrs["samples_per_image"] == 2 and abs(f.attrs["elbo"] - lw.mean()) < 1e-9
ok = ok and "eval_first: 100" in f.attrs["config"] and "eval_repeats: 2" in f.attrs["config"]
print("ok" if ok else "bad: %s %s" % (c, f.attrs["samples_per_image"]))
PY
)
check "sample --first 100 --count 4 -n 2: 2 samples of each of training images 100..103 ($other)" \
    '[ $rc -eq 0 ] && [ "$other" = ok ] && grep -q "^2 samples of iteration 8 of each of images 100..103 of " "$tmp/sout"'
"$exe" sample --checkpoint "$tmp/a" --first 9998 --count 5 -o "$tmp/past.h5" >/dev/null 2>"$tmp/err"; rc=$?
check "images past the end of the file are refused, naming the file and the range" \
    '[ $rc -ne 0 ] && grep -q "t10k-images-idx3-ubyte.gz: items \[9998, 10003) asked for; the file holds 10000" "$tmp/err" && [ ! -e "$tmp/past.h5" ]'
"$exe" sample --checkpoint "$tmp/a" --count 0 -o "$tmp/past.h5" >/dev/null 2>"$tmp/err"; rc=$?
check "--count 0 is refused (exit 2) in the words typed, with the key and what it allows" \
    '[ $rc -eq 2 ] && grep -q "^diffsamp: error: --count 0: key .condition.eval_count.: found .0., allowed: an integer in \[1, " "$tmp/err"'
"$exe" sample --checkpoint "$tmp/a" -n 7 -o "$tmp/past.h5" >/dev/null 2>"$tmp/err"; rc=$?
check "-n above one pass of a rank (6 trajectories) is refused, saying the most it can be" \
    '[ $rc -eq 2 ] && grep -q "condition.eval_repeats (7; -n of diffsamp sample) exceeds the 6 trajectories of one pass on a rank: ask for at most 6 samples per image" "$tmp/err"'
"$exe" sample --checkpoint "$tmp/a" --first 2 --count 2 -o "$tmp/f2.h5" >/dev/null 2>"$tmp/err"; rc=$?
check "an image's samples do not depend on the images sampled with it (--first 2 --count 2 = rows 6..11 of the run's set)" \
    '[ $rc -eq 0 ] && $py -c "import h5py,numpy as n,sys; a=h5py.File(sys.argv[1]); b=h5py.File(sys.argv[2]); sys.exit(not (n.array_equal(a[\"x\"][6:12], b[\"x\"][:]) and n.array_equal(b[\"condition\"][:], [2]*3 + [3]*3)))" "$tmp/a/samples.h5" "$tmp/f2.h5"'
# another idx file: 3 images (MNIST test 5..7), too few for the run's training range 100..139
$py - "$shared/t10k-images-idx3-ubyte.gz" "$tmp/three.idx" <<'PY'
import gzip, struct, sys
raw = gzip.open(sys.argv[1]).read()
open(sys.argv[2], "wb").write(struct.pack(">IIII", 0x803, 3, 28, 28) + raw[16 + 784 * 5:16 + 784 * 8])
PY
"$exe" sample --checkpoint "$tmp/a" --images "$tmp/three.idx" -n 2 -o "$tmp/three.h5" >"$tmp/sout" 2>"$tmp/err"; rc=$?
check "--images FILE samples every image of another file (3, smaller than the run's training range)" \
    '[ $rc -eq 0 ] && grep -q "^2 samples of iteration 8 of each of images 0..2 of $tmp/three.idx" "$tmp/sout" &&
     $py -c "import h5py,numpy as n,sys; f=h5py.File(sys.argv[1]); sys.exit(not (n.array_equal(f[\"condition\"][:], [0,0,1,1,2,2]) and f[\"x\"].shape == (6, 20)))" "$tmp/three.h5"'
printf '\0\0\10\1\0\0\0\3\1\2\3' > "$tmp/labels.idx"  # an idx label file of 3 labels
"$exe" sample --checkpoint "$tmp/a" --images "$tmp/labels.idx" -o "$tmp/lab.h5" >/dev/null 2>"$tmp/err"; rc=$?
check "--images of a label file is refused, naming it" '[ $rc -ne 0 ] && grep -q "labels.idx: a label file" "$tmp/err"'
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpi 2 "$exe" train "$tmp/vae.yaml" --out "$tmp/b" \
    --resume never >"$tmp/out2" 2>&1; rc=$?
check "the same run on 2 ranks ends" '[ $rc -eq 0 ]'
# rows land in rank order per round of appends, each image with its 3 samples (np 2 = np 1 without a
# buffer: tests/test_mpi_cond.c; with one, each rank draws from its own shard)
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpi 2 "$exe" sample --checkpoint "$tmp/b" --first 3 --count 1 \
    -o "$tmp/b1.h5" >/dev/null 2>&1; rc=$?
check "sample on 2 ranks with one image (a rank without an image) writes its 3 samples" \
    '[ $rc -eq 0 ] && $py -c "import h5py,numpy as n,sys; sys.exit(not n.array_equal(h5py.File(sys.argv[1])[\"condition\"][:], [3, 3, 3]))" "$tmp/b1.h5"'
check "2 ranks write every image 3 times" \
    '$py -c "import h5py,numpy as n,sys; c=h5py.File(sys.argv[1])[\"condition\"][:]; sys.exit(not n.array_equal(n.bincount(c), [3]*5))" "$tmp/b/samples.h5"'
"$exe" train "$tmp/vae.yaml" --out "$tmp/c" --resume never --set train.stop_iteration=4 >/dev/null 2>&1; rc=$?
check "a conditional run stops with a checkpoint (exit 3)" '[ $rc -eq 3 ]'
"$exe" train "$tmp/vae.yaml" --out "$tmp/c" >"$tmp/out3" 2>&1; rc=$?
check "and resumes to the same samples, bitwise" \
    '[ $rc -eq 0 ] && $py -c "import h5py,numpy as n,sys; a=h5py.File(sys.argv[1]); b=h5py.File(sys.argv[2]); sys.exit(not (n.array_equal(a[\"x\"][:], b[\"x\"][:]) and n.array_equal(a[\"log_weight\"][:], b[\"log_weight\"][:])))" "$tmp/a/samples.h5" "$tmp/c/samples.h5"'

"$exe" config "$tmp/vae.yaml" --set objective.name=subtb --set sampler.conditional_flow=true >/dev/null 2>"$tmp/err"; rc=$?
check "subtb on a conditional target is refused (exit 2, names the allowed objectives)" \
    '[ $rc -eq 2 ] && grep -q "conditional: objective.name must be tb or vargrad" "$tmp/err"'
"$exe" config "$tmp/vae.yaml" --set train.batch_size=7 --set condition.repeats=2 >/dev/null 2>"$tmp/err"; rc=$?
check "a batch that is not whole conditions is refused" '[ $rc -eq 2 ] && grep -q "multiple of condition.repeats" "$tmp/err"'
"$exe" train "$tmp/vae.yaml" --out "$tmp/d" --resume never --set condition.images=/nonexistent.idx >/dev/null 2>"$tmp/err"
check "a missing image file is named, with the reason" 'grep -q "the idx file /nonexistent.idx: No such file or directory" "$tmp/err"'
"$exe" train "$tmp/vae.yaml" --out "$tmp/d" --resume never --set energy.file=no/vae.h5 >/dev/null 2>"$tmp/err"
check "a missing VAE file at a relative path is named with the directory it was looked for in" \
    'grep -q "the VAE file no/vae.h5: No such file or directory (a relative path, looked for in $(pwd))" "$tmp/err"'

"$exe" vae-train --help > "$tmp/help"
check "vae-train --help documents the layout and the default data" \
    'grep -q "fashion-mnist" "$tmp/help" && grep -q "vae_bce_mnist_100ep.h5" "$tmp/help"'
"$exe" vae-train --epochs 1 >/dev/null 2>"$tmp/err"; rc=$?
check "vae-train without -o exits 2" '[ $rc -eq 2 ] && grep -q "needs -o FILE.h5" "$tmp/err"'
"$exe" vae-train --train "$tmp/none.idx" -o "$tmp/v.h5" >/dev/null 2>"$tmp/err"; rc=$?
check "vae-train names a missing image file" '[ $rc -ne 0 ] && grep -q "none.idx: No such file or directory" "$tmp/err"'

# vae-train from a config: its vae_train section, a short option after it, refusals at FILE:LINE:COL
cat > "$tmp/vt.yaml" <<YAML
vae_train:
  train_images: $shared/t10k-images-idx3-ubyte.gz
  test_images: $shared/t10k-images-idx3-ubyte.gz
  subset: 256
  epochs: 3
  hidden: 32
  latent: 4
YAML
"$exe" vae-train "$tmp/vt.yaml" --epochs 1 --set vae_train.batch_size=64 -o "$tmp/vt.h5" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "vae-train from a config exits 0 and writes the VAE" '[ $rc -eq 0 ] && [ -s "$tmp/vt.h5" ] || { cat "$tmp/err"; false; }'
check "... for one epoch (--epochs after the file), batch 64 (--set), at the config's widths" \
    'grep -q "VAE 784-32-4, .*batch 64, 1 epochs" "$tmp/out" && [ "$(grep -c "^\[epoch " "$tmp/out")" -eq 1 ] &&
     $py -c "import h5py,sys; sys.exit(h5py.File(sys.argv[1])[\"fc1/weight\"].shape != (32, 784))" "$tmp/vt.h5"'
printf 'vae_train:\n  epochs: 0\n' > "$tmp/vt_bad.yaml"
"$exe" vae-train "$tmp/vt_bad.yaml" -o "$tmp/vb.h5" >/dev/null 2>"$tmp/err"; rc=$?
check "vae_train.epochs 0 is refused at FILE:LINE:COL (exit 2)" '[ $rc -eq 2 ] && grep -q "vt_bad.yaml:2:" "$tmp/err" && grep -q "vae_train.epochs" "$tmp/err"'
"$exe" vae-train --lr -1 -o "$tmp/vb.h5" >/dev/null 2>"$tmp/err"; rc=$?
check "a bad short option is refused naming its key (exit 2)" '[ $rc -eq 2 ] && grep -q "vae_train.lr" "$tmp/err"'
"$exe" config --set vae_train.epochs=5 2>/dev/null | grep -q "^  epochs: 5"; rc=$?
check "diffsamp config shows the vae_train section" '[ $rc -eq 0 ]'
exit $fail
