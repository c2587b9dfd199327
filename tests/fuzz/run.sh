#!/usr/bin/env bash
# Runs the libFuzzer targets of a DS_FUZZ build (make fuzz) for SECONDS each,
# concurrently, at low priority: each grows a working corpus under
# BUILD/fuzz/<target>/corpus from tests/fuzz/corpus/<target> (the seeds in the
# repository are not touched) and leaves crashers, hangs and out-of-memory
# inputs in BUILD/fuzz/<target>/artifacts/ (add each as a regression input to
# tests/fuzz/regress/<target>/ once fixed). The log of each is
# BUILD/fuzz/<target>.log; the last lines of each are printed at the end.
# Usage: run.sh BUILD SECONDS TARGET...
set -u
build="$1"; seconds="$2"; shift 2
src="$(cd "$(dirname "$0")/../.." && pwd)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1
pids=()
for t in "$@"; do
    w="$build/fuzz/$t"
    mkdir -p "$w/corpus" "$w/artifacts" "$w/tmp"
    dict=()
    [ -f "$src/tests/fuzz/$t.dict" ] && dict=(-dict="$src/tests/fuzz/$t.dict")
    # fork mode: a crash, hang or OOM is saved and the run goes on
    TMPDIR="$w/tmp" nice -n 19 "$build/tests/fuzz_$t" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 \
        -ignore_ooms=1 -timeout=20 -rss_limit_mb=2048 -max_len=262144 -max_total_time="$seconds" \
        -print_final_stats=1 -artifact_prefix="$w/artifacts/" "${dict[@]}" \
        "$w/corpus" "$src/tests/fuzz/corpus/$t" > "$build/fuzz/$t.log" 2>&1 &
    pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
for t in "$@"; do
    echo "== fuzz_$t: $(grep -E '^#[0-9]+' "$build/fuzz/$t.log" | tail -1)"
    n=$(find "$build/fuzz/$t/artifacts" -type f | wc -l)
    echo "   artifacts (crashes, hangs, OOMs): $n in $build/fuzz/$t/artifacts"
    [ "$n" -eq 0 ] || fail=1
done
exit $fail
