#!/usr/bin/env bash
# Integrity of the files diffsamp writes (issue 21): each crash class of the
# issue, made in a fresh run's checkpoint (tests/fuzz/make_regress.py), is
# refused by `eval` with exit 1 or 2, the file and the damaged dataset or
# part named; `train --resume auto` then falls back to checkpoint.h5.prev;
# a sample set with a flipped byte is refused by name (ds_samples_read,
# through the fuzz replay program when it is built); a file from before the
# checksums is refused unless DS_ALLOW_UNVERIFIED=1, then loads with a warning.
set -u
exe="$1"
src="${2:-$(dirname "$0")/..}"
/usr/bin/python3 -c "import h5py, numpy" 2>/dev/null || { echo "SKIPPED: /usr/bin/python3 lacks h5py"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }
tiny=(--set sampler.hidden=8 --set sampler.harmonics=4 --set sampler.joint_layers=1 --set sampler.T=5
      --set train.batch_size=16 --set local_search.cycle=2 --set local_search.max_iter=4 --set local_search.burn_in=1
      --set eval.samples=16 --set eval.ground_truth_samples=16 --set eval.every=4 --set output.checkpoint_every=4)
"$exe" train --resume never "${tiny[@]}" --set train.iterations=8 --out "$tmp/run" > "$tmp/run.log" 2>&1; rc=$?
check "a short run writes checkpoint.h5 and .prev" '[ $rc -eq 0 ] && [ -s "$tmp/run/checkpoint.h5" ] && [ -s "$tmp/run/checkpoint.h5.prev" ]'
"$exe" eval --checkpoint "$tmp/run/checkpoint.h5" > "$tmp/ok.log" 2>&1; rc=$?
check "the intact checkpoint loads without a warning" '[ $rc -eq 0 ] && ! grep -q warning "$tmp/ok.log"'
/usr/bin/python3 "$src/tests/fuzz/make_regress.py" "$tmp/run/checkpoint.h5" "$tmp/bad" checkpoint
/usr/bin/python3 "$src/tests/fuzz/make_regress.py" "$tmp/run/samples.h5" "$tmp/bads" samples

# what each damage must be refused as (the file is named in every message)
declare -A want=(
  [gheap_size_byte]="global heap" [gheap_index_byte]="metadata" [gheap_text_byte]="metadata"
  [gheap_length]="global heap|metadata" [gheap_length_small]="global heap|metadata"
  [truncated_half]="no completion record|truncated" [truncated_record]="no completion record"
  [metrics_rows_3]="dataset /metrics is damaged" [metrics_rows_huge]="dataset /metrics is damaged"
  [optimizer_v_flip]="dataset /optimizer/v is damaged")
for c in "${!want[@]}"; do
    f="$tmp/bad/sealed_$c"
    "$exe" eval --checkpoint "$f" > "$tmp/e.log" 2>&1; rc=$?
    check "$c: eval refuses it (exit $rc), naming the file and '${want[$c]}'" \
        '[ $rc -eq 1 -o $rc -eq 2 ] && grep -q "$f" "$tmp/e.log" && grep -Eq "${want[$c]}" "$tmp/e.log"'
done
# the same with the previous checkpoint beside it: resume falls back to it
for c in optimizer_v_flip gheap_length metrics_rows_huge truncated_half; do
    d="$tmp/resume_$c"
    mkdir -p "$d"
    cp "$tmp/run/checkpoint.h5.prev" "$d/checkpoint.h5.prev"
    cp "$tmp/bad/sealed_$c" "$d/checkpoint.h5"
    "$exe" train --resume auto "${tiny[@]}" --set train.iterations=12 --out "$d" > "$tmp/r.log" 2>&1; rc=$?
    check "$c: train --resume auto falls back to .prev and finishes" \
        '[ $rc -eq 0 ] && grep -q "skipped $d/checkpoint.h5" "$tmp/r.log" && grep -q "checkpoint.h5.prev" "$tmp/r.log"'
done
# a file written before the checksums is refused, naming DS_ALLOW_UNVERIFIED; with it, it loads with a
# warning, and damaged it is refused (its global heaps are checked) or loads unverified, never crashes
"$exe" eval --checkpoint "$tmp/bad/legacy_intact" > "$tmp/l.log" 2>&1; rc=$?
check "a checkpoint from before the checksums is refused by default" \
    '[ $rc -eq 1 ] && grep -q "no completion record" "$tmp/l.log" && grep -q DS_ALLOW_UNVERIFIED "$tmp/l.log"'
DS_ALLOW_UNVERIFIED=1 "$exe" eval --checkpoint "$tmp/bad/legacy_intact" > "$tmp/l.log" 2>&1; rc=$?
check "with DS_ALLOW_UNVERIFIED=1 it loads with a warning" \
    '[ $rc -eq 0 ] && grep -q "written before diffsamp kept checksums" "$tmp/l.log"'
for f in "$tmp"/bad/legacy_*; do
    DS_ALLOW_UNVERIFIED=1 "$exe" eval --checkpoint "$f" > "$tmp/l.log" 2>&1; rc=$?
    check "$(basename "$f") (DS_ALLOW_UNVERIFIED=1): no crash (exit $rc)" '[ $rc -le 2 ]'
done
# the dataset checksums do not depend on the number of ranks, and are the
# CRC-32C of the stored bytes (recomputed here in Python, bit by bit)
"$exe" ground-truth --energy 25gmm -n 1001 -o "$tmp/gt1.h5" > /dev/null 2>&1
mpirun -np 2 "$exe" ground-truth --energy 25gmm -n 1001 -o "$tmp/gt2.h5" > /dev/null 2>&1
check "np 1 and np 2 sample sets carry the same crc32c, that of their bytes" '/usr/bin/python3 - "$tmp/gt1.h5" "$tmp/gt2.h5" <<"PY"
import sys, h5py, numpy as np
def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xFFFFFFFF
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert a.attrs["integrity"] == "crc32c-record-1"
for n in a:
    x, y = a[n][()], b[n][()]
    assert np.array_equal(x, y), n
    assert int(a[n].attrs["crc32c"]) == int(b[n].attrs["crc32c"]) == crc32c(np.ascontiguousarray(x).tobytes()), n
PY'

# sample sets: through the reader's fuzz replay program, when built beside the binary
replay="$(dirname "$exe")/tests/fuzz_replay_samples"
if [ -x "$replay" ]; then
    DS_FUZZ_VERBOSE=1 "$replay" "$tmp/bads/sealed_x_flip" > "$tmp/s.log" 2>&1; rc=$?
    check "a sample set with a flipped byte in /x is refused by name" \
        '[ $rc -eq 0 ] && grep -q "dataset /x is damaged" "$tmp/s.log"'
    DS_FUZZ_VERBOSE=1 "$replay" "$tmp/run/samples.h5" > "$tmp/s.log" 2>&1; rc=$?
    check "the run's sample set reads back" '[ $rc -eq 0 ] && grep -q "fuzz: accepted" "$tmp/s.log"'
fi
exit $fail
