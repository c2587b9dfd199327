#!/usr/bin/env bash
# jobs/ on a real Slurm (issue #18). Installs slurm-wlm and munge when
# missing, starts a private single-node cluster on localhost (its own munged,
# slurmctld and slurmd, on free ports, with their files in a temporary
# folder; stopped by pid on exit, also on failure), then:
#  A. submits a sweep of two short runs with `jobs/sweep submit`; requeues
#     task 0 from outside (`scontrol requeue`) and cancels task 1 (`scancel`)
#     while they run; checks that status says requeued / stopped, that task 0
#     resumes and finishes and task 1 stays cancelled, that the summary job
#     (afterany) summarizes 1 of 2 runs; resubmits: only task 1 is queued, it
#     continues from its checkpoint; checks both sample files, the summary
#     table (numbers = the runs' last metrics, the paper's numbers under each
#     row) and that a third submit queues nothing;
#  B. submits a 2-rank run by hand (sbatch -n 2 --time=1 jobs/train.sbatch
#     CONFIG --set ...): the first start stops itself before the job's time
#     limit and requeues, the second gets SIGUSR1 in the batch shell (what
#     --signal=B:USR1 delivers; sent with `scancel --batch` so that it comes at
#     a known moment), forwards it, checkpoints and requeues; the final
#     parameters, Adam state and metrics equal an uninterrupted
#     `mpirun -np 2` run's bitwise;
#  C. runs the same sweep with `jobs/sweep local` (mpirun, no Slurm): both
#     runs equal the interrupted Slurm runs bitwise, the summary is written,
#     and a second `local` redoes nothing.
# Requeued jobs wait for their begin time (cred_expire + 1 s); the test
# releases them with `scontrol update StartTime=now` once it has looked at
# them. Needs root (packages, daemons) and /usr/bin/python3 with h5py, numpy
# and yaml.
set -euo pipefail
exe=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
src=$(cd "$2" && pwd)
py=/usr/bin/python3
sweep_cmd="$src/jobs/sweep"
sbatch_script="$src/jobs/train.sbatch"
t_start=$(date +%s)
deadline=$((t_start + 330))   # below the ctest TIMEOUT: fail cleanly, daemons stopped

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIPPED: needs root to install and start Slurm and munge"
    exit 77
fi
"$py" -c "import h5py, numpy, yaml" || { echo "FAIL: $py lacks h5py, numpy or yaml (scripts/deps.sh installs them)"; exit 1; }

# ---- packages ----------------------------------------------------------------
pkgs=(slurm-wlm slurmctld slurmd slurm-client munge)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# ---- a private cluster -------------------------------------------------------
tmp=$(mktemp -d)
pids=()
fail=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ] && [ ${#pids[@]} -gt 0 ]; then
        scancel --user="$(id -un)" >/dev/null 2>&1 || true
        for _ in $(seq 60); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
    fi
    if [ $rc -ne 0 ] || [ $fail -ne 0 ]; then
        for f in "$tmp"/log/slurmctld.log "$tmp"/log/slurmd.log; do
            [ -f "$f" ] && { echo "--- tail of $f"; tail -n 25 "$f"; }
        done
    fi
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [ -n "${DS_TEST_KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
    echo "cli_slurm: $(( $(date +%s) - t_start )) s"
    exit $(( rc != 0 ? rc : fail ))
}
trap cleanup EXIT
trap 'exit 1' INT TERM

el() { printf '[%3d s]' $(( $(date +%s) - t_start )); }
check() { if eval "$2"; then echo "$(el) ok: $1"; else echo "$(el) FAIL: $1"; fail=1; fi; }
fatal() { echo "FAIL: $*"; fail=1; exit 1; }

mkdir -p "$tmp/munge" "$tmp/spool" "$tmp/state" "$tmp/log" "$tmp/work"
chmod 711 "$tmp" "$tmp/munge"  # munged wants its socket's folders traversable
dd if=/dev/urandom of="$tmp/munge/key" bs=128 count=1 2>/dev/null
chmod 400 "$tmp/munge/key"
read -r port_ctld port_d < <("$py" -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
mem=$(awk '/^MemTotal/ { print int($2 / 1024 * 0.8) }' /proc/meminfo)
cat > "$tmp/slurm.conf" <<EOF
ClusterName=dstest
SlurmctldHost=localhost
SlurmctldPort=$port_ctld
SlurmdPort=$port_d
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge/socket,cred_expire=30
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobRequeue=1
KillWait=10
ReturnToService=2
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$tmp/slurm.conf"
/usr/sbin/munged -F --socket="$tmp/munge/socket" --key-file="$tmp/munge/key" --log-file="$tmp/log/munged.log" \
    --pid-file="$tmp/munge/munged.pid" --seed-file="$tmp/munge/seed" >"$tmp/log/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$tmp/munge/socket" ] && break; sleep 0.1; done
munge -S "$tmp/munge/socket" -n | unmunge -S "$tmp/munge/socket" >/dev/null || fatal "munged does not answer"
setsid /usr/sbin/slurmctld -D -f "$SLURM_CONF" >"$tmp/log/slurmctld.out" 2>&1 </dev/null &
pids+=($!)
setsid /usr/sbin/slurmd -D -N localhost -f "$SLURM_CONF" >"$tmp/log/slurmd.out" 2>&1 </dev/null &
pids+=($!)
for _ in $(seq 100); do
    [ "$(sinfo -h -o %T 2>/dev/null | head -n 1)" = idle ] && break
    sleep 0.2
done
check "the private cluster is up (node idle)" '[ "$(sinfo -h -o %T | head -n 1)" = idle ]'
[ $fail -eq 0 ] || { cat "$tmp"/log/*.out; fatal "Slurm did not start"; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export DS_EXE="$exe" PYTHONDONTWRITEBYTECODE=1
cd "$tmp/work"

# ---- helpers -------------------------------------------------------------------
field() { # field JOB NAME: a field of `scontrol show job`
    scontrol show job -o "$1" 2>/dev/null | head -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}
release=1
declare -A pending_since=()
# A requeued job waits for its begin time (cred_expire + 1 s, which covers
# slurmd's clean-up of the previous start); start it now, but only once the
# node has finished that clean-up: not "completing" any more, the old step's
# PMIx sockets gone from the spool, and at least 2 s after the test first saw
# it pending. slurmd revokes the old start's credential with a time stamp in
# whole seconds, and refuses a new credential made in that same second, so a
# release within the second of the requeue kills the new start ("Job
# credential revoked", the job ends with exit 1 and is never restarted);
# released before the clean-up, PMIx fails ("Cannot bind() UNIX socket").
release_requeued() {
    [ $release -eq 1 ] || return 0
    case $(sinfo -h -n localhost -o %T 2>/dev/null) in *comp*|"") return 0 ;; esac
    local jid id reason now
    now=$(date +%s)
    while read -r jid id reason; do
        [ "$reason" = BeginTime ] || continue
        [ -n "${pending_since[$id]:-}" ] || pending_since[$id]=$now
        [ $((now - pending_since[$id])) -ge 2 ] || continue
        if compgen -G "$tmp/spool/*pmix.$jid.*" >/dev/null; then continue; fi
        scontrol update JobId="$id" StartTime=now >/dev/null 2>&1 || true
        unset "pending_since[$id]"
    done < <(squeue -h -t PD -o '%A %i %r' 2>/dev/null)
}
wait_for() { # wait_for WHAT SECONDS COMMAND...
    local what=$1 end=$(( $(date +%s) + $2 ))
    shift 2
    [ $end -le $deadline ] || end=$deadline
    until "$@"; do
        release_requeued
        if [ "$(date +%s)" -ge $end ]; then
            echo "$(el) FAIL: timed out waiting for: $what"; fail=1
            squeue; return 1
        fi
        sleep 0.2
    done
}
running_with_checkpoint() { [ "$(field "$1" JobState)" = RUNNING ] && [ -s "$2/checkpoint.h5" ]; }
pending_after_restart() { [ "$(field "$1" JobState)" = PENDING ] && [ "$(field "$1" Restarts)" -ge "$2" ]; }
state_is() { [ "$(field "$1" JobState)" = "$2" ]; }
starts() { grep -c ' start host=' "$1/job.log" 2>/dev/null || true; }
# same A B: checkpoints A and B hold the same parameters, Adam state and
# iteration bitwise, and their metrics agree in every column but seconds
same() {
    "$py" - "$1" "$2" <<'PY'
import csv, sys
import h5py
import numpy as np
a, b = sys.argv[1], sys.argv[2]
with h5py.File(a + "/checkpoint.h5", "r") as fa, h5py.File(b + "/checkpoint.h5", "r") as fb:
    for name in ["/model/params", "/optimizer/m", "/optimizer/v", "/optimizer/step", "/state/iteration"]:
        x, y = np.asarray(fa[name][()]), np.asarray(fb[name][()])
        assert x.shape == y.shape and np.array_equal(x, y), name
def but_seconds(rows):  # every column but the wall time
    rows = list(rows); k = rows[0].index("seconds")
    return [r[:k] + r[k + 1:] for r in rows]
ra = but_seconds(csv.reader(open(a + "/metrics.csv")))
rb = but_seconds(csv.reader(open(b + "/metrics.csv")))
assert ra == rb and len(ra) > 1, (ra, rb)
PY
}
size() { stat -c %s "$1"; }

# ---- A. a sweep through Slurm ------------------------------------------------------
# Two 1-rank runs of about 10 s each (on this kind of machine), checkpointed
# every 20 iterations; 5 min limit, the time-limit signal far away. (At 800
# iterations a run could end, on a busy machine, between the check that both
# run and the scancel below, so task 1 completed instead of being cancelled.)
cat > "$tmp/sweep.yaml" <<EOF
name: pair
root: $tmp/sweep
configs: [$src/configs/25gmm_tb.yaml, $src/configs/25gmm_tb_expl.yaml]
seeds: [3]
set:
  train.iterations: 2400
  train.batch_size: 100
  sampler.T: 20
  eval.every: 400
  eval.samples: 200
  eval.ground_truth_samples: 20
  output.checkpoint_every: 20
slurm: {ntasks: 1, time: "00:05:00", signal: "B:USR1@1"}
EOF
r0="$tmp/sweep/25gmm_tb_s3"
r1="$tmp/sweep/25gmm_tb_expl_s3"
"$sweep_cmd" submit "$tmp/sweep.yaml" > "$tmp/submit1.txt" 2>&1 || { cat "$tmp/submit1.txt"; fatal "jobs/sweep submit"; }
cat "$tmp/submit1.txt"
arr=$(sed -n 's/.* as array job \([0-9]*\) .*/\1/p' "$tmp/submit1.txt")
sum1=$(sed -n 's/.*summary job \([0-9]*\) (afterany).*/\1/p' "$tmp/submit1.txt")
[ -n "$arr" ] && [ -n "$sum1" ] || fatal "no array or summary job id in the submit output"
check "the summary job depends on the array (afterany)" 'field "$sum1" Dependency | grep -q "^afterany:${arr}_"'
release=0
wait_for "both tasks running with a checkpoint" 60 \
    eval 'running_with_checkpoint ${arr}_0 "$r0" && running_with_checkpoint ${arr}_1 "$r1"' || fatal "the sweep did not start"
"$sweep_cmd" status "$tmp/sweep.yaml" > "$tmp/status_run.txt" 2>&1 || true
scontrol requeue "${arr}_0"
scancel "${arr}_1"
check "status said both were running" '[ "$(grep -c " running " "$tmp/status_run.txt")" -eq 2 ]'
wait_for "task 0 requeued (pending, restart 1)" 30 pending_after_restart "${arr}_0" 1
wait_for "task 1 cancelled" 30 state_is "${arr}_1" CANCELLED
"$sweep_cmd" status "$tmp/sweep.yaml" > "$tmp/status_rq.txt" 2>&1 || true
cat "$tmp/status_rq.txt"
check "status: task 0 requeued" 'grep "^25gmm_tb_s3 " "$tmp/status_rq.txt" | grep -q " requeued "'
check "status: task 1 stopped (cancelled)" 'grep "^25gmm_tb_expl_s3 " "$tmp/status_rq.txt" | grep -q " stopped .*cancelled"'
release=1
wait_for "task 0 finished" 90 test -f "$r0/DONE"
wait_for "the first summary job completed" 60 state_is "$sum1" COMPLETED
check "task 0: SIGTERM from the requeue checkpointed it" 'grep -q "^stopped by a signal at iteration [0-9]*; checkpoint written" "$r0/train.log"'
k0=$(sed -n 's/^resumed at iteration \([0-9]*\) .*/\1/p' "$r0/train.log" | head -n 1 || true)
check "task 0 resumed at iteration ${k0:-none} > 0 and finished (2 starts, Restarts=1)" \
    '[ "${k0:-0}" -gt 0 ] && [ "$(starts "$r0")" -eq 2 ] && [ "$(field "${arr}_0" Restarts)" -eq 1 ]'
check "task 0: job.log says Slurm requeued it" 'grep -q "requeued by Slurm" "$r0/job.log"'
check "task 1: cancelled, not requeued, not finished" \
    'grep -q "cancelled" "$r1/job.log" && [ ! -f "$r1/DONE" ] && [ "$(field "${arr}_1" Restarts)" -eq 0 ]'
check "first summary: 1 of 2 runs, task 1 named as not finished" \
    'grep -q "1 of 2 runs finished" "$tmp/sweep/summary.txt" && grep -q "not finished: 25gmm_tb_expl_s3" "$tmp/sweep/summary.txt"'

# resubmitting queues only the unfinished run, which continues
"$sweep_cmd" submit "$tmp/sweep.yaml" > "$tmp/submit2.txt" 2>&1 || { cat "$tmp/submit2.txt"; fatal "second submit"; }
cat "$tmp/submit2.txt"
arr2=$(sed -n 's/.* as array job \([0-9]*\) .*/\1/p' "$tmp/submit2.txt")
sum2=$(sed -n 's/.*summary job \([0-9]*\) (afterany).*/\1/p' "$tmp/submit2.txt")
check "second submit: task 0 skipped as finished, only task 1 queued" \
    'grep -q "skip 25gmm_tb_s3: finished" "$tmp/submit2.txt" && grep -q "submitted 1 run as array job [0-9]* (tasks 1)" "$tmp/submit2.txt"'
[ -n "$arr2" ] && [ -n "$sum2" ] || fatal "no job ids in the second submit"
wait_for "task 1 finished" 90 test -f "$r1/DONE"
wait_for "the second summary job completed" 60 state_is "$sum2" COMPLETED
k1=$(sed -n 's/^resumed at iteration \([0-9]*\) .*/\1/p' "$r1/train.log" | head -n 1 || true)
check "task 1 continued from its checkpoint (resumed at iteration ${k1:-none} > 0)" '[ "${k1:-0}" -gt 0 ]'
cat "$tmp/sweep/summary.txt"
check "final summary: 2 of 2 runs finished" 'grep -q "2 of 2 runs finished" "$tmp/sweep/summary.txt"'
check "summary in the paper's layout: TB then TB + Expl., the paper's numbers under each" \
    'grep -A1 "^TB  " "$tmp/sweep/summary.txt" | head -n 2 | grep -q "^  paper .*1.176 ± 0.109" &&
     grep -A1 "^TB + Expl.  " "$tmp/sweep/summary.txt" | head -n 2 | grep -q "^  paper .*0.560 ± 0.302"'
check "summary.csv: one row per run, its numbers = the run's last metrics row" '"$py" - "$tmp/sweep" <<"PY"
import csv, sys
root = sys.argv[1]
rows = {r["method"]: r for r in csv.DictReader(open(root + "/summary.csv"))}
assert set(rows) == {"TB", "TB + Expl."}, rows.keys()
for method, run in (("TB", "25gmm_tb_s3"), ("TB + Expl.", "25gmm_tb_expl_s3")):
    last = list(csv.DictReader(open("%s/%s/metrics.csv" % (root, run))))[-1]
    r = rows[method]
    assert r["n_runs"] == "1" and r["target"] == "25gmm", r
    for m in ("delta_log_z", "delta_log_z_is", "elbo", "ess"):
        a, b = float(r[m + "_mean"]), float(last[m])
        assert abs(a - b) <= 1e-9 * (1 + abs(b)), (method, m, a, b)
    assert float(r["paper_delta_log_z_mean"]) == {"TB": 1.176, "TB + Expl.": 0.560}[method], r
PY'
check "both sample files: 200 samples of 25gmm with consistent log-weights" '"$py" - "$r0" "$r1" <<"PY"
import sys
import h5py
import numpy as np
for run in sys.argv[1:]:
    with h5py.File(run + "/samples.h5", "r") as f:
        assert f.attrs["format"] == "diffsamp-samples" and f.attrs["energy"] == "25gmm", run
        assert f["x"].shape == (200, 2) and int(f.attrs["n_samples"]) == 200, run
        w = f["log_reward"][()] + f["log_pb"][()] - f["log_pf"][()]
        assert np.allclose(f["log_weight"][()], w) and np.all(np.isfinite(f["x"][()])), run
        assert int(f.attrs["iteration"]) == 2400, run
PY'
"$sweep_cmd" status "$tmp/sweep.yaml" > "$tmp/status_done.txt" 2>&1 || true
check "status: 2 finished" 'tail -n 1 "$tmp/status_done.txt" | grep -q "pair: 2 finished$"'
log0=$(size "$r0/train.log"); log1=$(size "$r1/train.log")
"$sweep_cmd" submit "$tmp/sweep.yaml" > "$tmp/submit3.txt" 2>&1 || true
check "third submit queues nothing and redoes nothing" \
    'grep -q "nothing to submit" "$tmp/submit3.txt" && [ -z "$(squeue -h)" ] &&
     [ "$(size "$r0/train.log")" = "$log0" ] && [ "$(size "$r1/train.log")" = "$log1" ]'

# ---- B. a 2-rank run: stopped before the time limit, then by SIGUSR1 --------------
# The uninterrupted run first; its wall time W sizes the slot S of each start:
# the job has --time=1 and DS_STOP_MARGIN = 59 - S, so every start gives the
# trainer train.time_limit = (about 59 s left) - DS_STOP_MARGIN = S. S is W/4,
# at least 2 s and at most 6 s. The run is 7200 iterations: at 2400 it took
# 3 s on an idle machine of this kind, which one start of the 2 s floor
# (plus start-up) finished, so no start was stopped by its time limit:
# the run needs several starts even if the machine gets faster (less loaded)
# after W was measured. --signal=B:USR1@1 keeps Slurm's own signal (sent on a
# 30 s tick, up to 30 s early) beyond any start.
two=(--set train.iterations=7200 --set train.batch_size=200 --set sampler.T=20 --set eval.every=600
     --set eval.samples=200 --set eval.ground_truth_samples=20 --set output.checkpoint_every=20)
t0=$(date +%s%N)
mpirun -np 2 --oversubscribe "$exe" train "$src/configs/25gmm_tb_expl.yaml" "${two[@]}" --out "$tmp/two_ref" \
    > "$tmp/two_ref.log" 2>&1 || fatal "the uninterrupted mpirun -np 2 run failed: $(tail -n 5 "$tmp/two_ref.log")"
W=$(( ($(date +%s%N) - t0) / 1000000000 ))
S=$(( W / 4 )); [ $S -ge 2 ] || S=2; [ $S -le 6 ] || S=6
echo "uninterrupted 2-rank run: ${W} s; slot per start: ${S} s"
job=$(DS_STOP_MARGIN=$((59 - S)) sbatch --parsable -n 2 --time=1 --signal=B:USR1@1 -o "$tmp/two.out" \
      "$sbatch_script" "$src/configs/25gmm_tb_expl.yaml" "${two[@]}" --out "$tmp/two") || fatal "sbatch of the 2-rank run"
release=0
wait_for "first start stopped by its time limit and requeued" 60 pending_after_restart "$job" 1
check "start 1: checkpointed by train.time_limit, requeued by the script" \
    'grep -q "^stopped by the time limit (train.time_limit) at iteration" "$tmp/two/train.log" &&
     grep -q "requeue (checkpointed at iteration [0-9]* (stopped by the time limit" "$tmp/two/job.log"'
release=1
resumed_once() { state_is "$job" RUNNING && [ "$(grep -c "^resumed at iteration" "$tmp/two/train.log")" -ge 1 ]; }
wait_for "second start running" 60 resumed_once
scancel --batch --signal=USR1 "$job"
release=0
wait_for "second start stopped by SIGUSR1 and requeued" 60 pending_after_restart "$job" 2
check "start 2: the batch shell got SIGUSR1 and forwarded it; checkpointed; requeued" \
    'grep -q "got SIGUSR1" "$tmp/two.out" && grep -q "^stopped by a signal at iteration" "$tmp/two/train.log" &&
     grep -q "requeue (checkpointed at iteration [0-9]* (stopped by a signal" "$tmp/two/job.log"'
release=1
# the starts cost more than their slots on a loaded machine (startup, requeue delay): a generous wait
wait_for "the 2-rank run finished" 300 test -f "$tmp/two/DONE"
n=$(starts "$tmp/two")
check "the 2-rank run took $n starts (>= 3) on 2 ranks" '[ "$n" -ge 3 ] && grep -q "batch 200 on 2 rank(s)" "$tmp/two/train.log"'
check "2-rank run after two requeues = uninterrupted mpirun -np 2 run (bitwise)" 'same "$tmp/two" "$tmp/two_ref"'
wait_for "the 2-rank job completed" 30 state_is "$job" COMPLETED

# ---- C. the same sweep without Slurm ---------------------------------------------
rc=0; "$sweep_cmd" local "$tmp/sweep.yaml" --root "$tmp/local" > "$tmp/local.txt" 2>&1 || rc=$?
check "jobs/sweep local runs both and exits 0" '[ $rc -eq 0 ] && [ -f "$tmp/local/25gmm_tb_s3/DONE" ] && [ -f "$tmp/local/25gmm_tb_expl_s3/DONE" ]'
check "local: the summary says 2 of 2" 'grep -q "2 of 2 runs finished" "$tmp/local/summary.txt"'
check "local runs use mpirun, not Slurm" '! grep -q srun "$tmp/local/25gmm_tb_s3/job.log" && grep -q "job=local" "$tmp/local/25gmm_tb_s3/job.log"'
check "requeued Slurm run = uninterrupted local run (bitwise)" 'same "$r0" "$tmp/local/25gmm_tb_s3"'
check "cancelled and resubmitted Slurm run = uninterrupted local run (bitwise)" 'same "$r1" "$tmp/local/25gmm_tb_expl_s3"'
l0=$(size "$tmp/local/25gmm_tb_s3/train.log")
rc=0; "$sweep_cmd" local "$tmp/sweep.yaml" --root "$tmp/local" > "$tmp/local2.txt" 2>&1 || rc=$?
check "a second local sweep redoes nothing" \
    '[ $rc -eq 0 ] && [ "$(grep -c ": finished$" "$tmp/local2.txt")" -eq 2 ] && [ "$(size "$tmp/local/25gmm_tb_s3/train.log")" = "$l0" ]'

# ---- refusals -------------------------------------------------------------------------
rc=0; bash "$sbatch_script" --set train.iterations=-1 --out "$tmp/bad" > "$tmp/bad.txt" 2>&1 || rc=$?
check "train.sbatch: a bad --set exits 2" '[ $rc -eq 2 ] && grep -q "train.iterations" "$tmp/bad.txt"'
printf 'configs: [%s]\nseed: [1]\n' "$src/configs/25gmm_tb.yaml" > "$tmp/badsweep.yaml"
rc=0; "$sweep_cmd" list "$tmp/badsweep.yaml" > "$tmp/bad.txt" 2>&1 || rc=$?
check "jobs/sweep: an unknown key is refused by name" '[ $rc -eq 2 ] && grep -q "unknown key seed" "$tmp/bad.txt"'
exit $fail
