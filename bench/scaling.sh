#!/usr/bin/env bash
# Weak and strong scaling of manywell TB + exploration + local search
# (issue #4). Usage: bench/scaling.sh [path/to/diffsamp] [iterations]
# Prints ms/iteration (rank 0's ds_trainer_step) and the fraction in MPI.
# np = 4 on a 2-core machine is oversubscribed: read it as a correctness run.
set -eu
exe=${1:-build/diffsamp}
iters=${2:-60}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { # np batch
    mpirun -np "$1" "$exe" train configs/manywell_tb_expl_ls.yaml --set train.iterations="$iters" \
        --set train.batch_size="$2" --set local_search.cycle=20 --set eval.every=100000 \
        --set eval.samples=64 --set eval.ground_truth_samples=0 --out "$tmp/np$1_b$2" --resume never 2>&1 |
        sed -n 's/.*training time *\([0-9.]*\) ms\/iteration on rank 0, \([0-9.]*\)% of it in MPI/\1 \2/p'
}
printf "%-8s %4s %6s %14s %8s\n" mode np batch ms/iteration MPI%
for np in 1 2 4; do
    read -r ms mpi <<<"$(run "$np" 300)"
    printf "%-8s %4d %6d %14s %8s\n" strong "$np" 300 "$ms" "$mpi"
done
for np in 1 2 4; do
    b=$((150 * np))
    read -r ms mpi <<<"$(run "$np" "$b")"
    printf "%-8s %4d %6d %14s %8s\n" weak "$np" "$b" "$ms" "$mpi"
done
