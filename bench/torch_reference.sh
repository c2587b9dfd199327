#!/usr/bin/env bash
# ms/iteration of the PyTorch reference (GFNOrg/gfn-diffusion, branch stagger)
# at 1 and 2 threads next to diffsamp (1 process, 1 BLAS thread) on the same
# cases: T = 100, batch 300, the paper's settings.  The reference is not part
# of diffsamp: point --ref at its energy_sampling directory in a checkout of
# your own, e.g.
#   git clone -b stagger https://github.com/GFNOrg/gfn-diffusion /tmp/gfn-diffusion
#   bench/torch_reference.sh --ref /tmp/gfn-diffusion/energy_sampling
# Needs python3 with torch (Debian: apt-get install python3-torch); the
# reference's imports the training step never uses (wandb, einops, pandas)
# are stubbed by bench/torch_reference.py when missing.
#
# Options: --ref DIR (required)  --diffsamp EXE [build/diffsamp]
#          --python EXE [/usr/bin/python3]  --iters N [30]  --warmup N [5]
#          --ds-iters N [60]  --cases "a b ..." [the six unconditional ones]  --threads "1 2"
#          --vae-iters N [3: timed iterations of the case vae_vargrad_expl_lp, which is
#            opt-in (--cases vae_vargrad_expl_lp): the paper's VAE posterior row, 3000
#            trajectories with LP, about 5 s per iteration for diffsamp; it needs the
#            reference's vae directory beside energy_sampling and ../shared/data/mnist]
#          --omp-wait-policy P [PASSIVE, or $OMP_WAIT_POLICY; "unset" leaves it unset]
#          --coretype K [the OpenBLAS kernels diffsamp runs; "default" leaves OPENBLAS_CORETYPE unset]
# Runs one measurement at a time; read the numbers with the machine's load in mind.
# OMP_WAIT_POLICY=PASSIVE: with libgomp's default (spinning) policy, 2 torch
# threads on a machine whose other core is busy ran 15-35x slower than 1
# thread (10-16 s/iteration), measuring the spin-waits, not the reference.
# OPENBLAS_CORETYPE: Debian 12's OpenBLAS does not know recent Intel cores and
# falls back to its slowest kernels; diffsamp chooses better ones itself
# (include/diffsamp/blas.h), and torch's products go through the same
# OpenBLAS, so the reference runs with the kernels diffsamp runs (5x faster
# matrix products for torch on these machines), not with the fallback.
set -euo pipefail

ref=""
exe=build/diffsamp
py=/usr/bin/python3
iters=30
warmup=5
ds_iters=60
vae_iters=3
threads="1 2"
wait_policy=${OMP_WAIT_POLICY:-PASSIVE}
coretype=""
cases="25gmm_tb manywell_tb_expl 25gmm_pis manywell_pis 25gmm_pis_lp manywell_pis_lp"
usage() { sed -n '2,24s/^# \{0,1\}//p' "$0"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --ref) ref=${2:-}; shift 2 ;;
        --diffsamp) exe=${2:-}; shift 2 ;;
        --python) py=${2:-}; shift 2 ;;
        --iters) iters=${2:-}; shift 2 ;;
        --warmup) warmup=${2:-}; shift 2 ;;
        --ds-iters) ds_iters=${2:-}; shift 2 ;;
        --vae-iters) vae_iters=${2:-}; shift 2 ;;
        --cases) cases=${2:-}; shift 2 ;;
        --threads) threads=${2:-}; shift 2 ;;
        --omp-wait-policy) wait_policy=${2:-}; shift 2 ;;
        --coretype) coretype=${2:-}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "torch_reference.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

if [ -z "$ref" ]; then
    echo "torch_reference.sh: --ref DIR is required: the energy_sampling directory of a checkout" >&2
    echo "  of the reference, e.g. git clone -b stagger https://github.com/GFNOrg/gfn-diffusion /tmp/gfn-diffusion" >&2
    echo "  then: bench/torch_reference.sh --ref /tmp/gfn-diffusion/energy_sampling" >&2
    exit 2
fi
if [ ! -f "$ref/gflownet_losses.py" ] || [ ! -d "$ref/models" ]; then
    echo "torch_reference.sh: --ref $ref is not the reference's energy_sampling directory" \
        "(no gflownet_losses.py / models/ in it)" >&2
    exit 2
fi
ref=$(cd "$ref" && pwd)  # absolute, so that the vae directory beside it is found from any --ref
case " $cases " in
    *" vae_vargrad_expl_lp "*)
        if [ ! -f "$(dirname "$ref")/vae/energies/vae.py" ]; then
            echo "torch_reference.sh: the case vae_vargrad_expl_lp needs the reference's vae directory" \
                "beside $ref ($(dirname "$ref")/vae/energies/vae.py is missing)" >&2
            exit 2
        fi ;;
esac
if ! "$py" -c "import torch" 2>/dev/null; then
    echo "torch_reference.sh: $py cannot import torch (Debian: apt-get install python3-torch)" >&2
    exit 2
fi
if [ ! -x "$exe" ]; then
    echo "torch_reference.sh: diffsamp executable $exe not found (build it first, or pass --diffsamp)" >&2
    exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A private copy, so a rebuild during the benchmark cannot change the binary under it.
cp "$exe" "$tmp/diffsamp"
if [ -z "$coretype" ]; then
    # "BLAS: ... the rest by OpenBLAS, SkylakeX kernels ..." -> SkylakeX (the kernels diffsamp runs)
    coretype=$("$tmp/diffsamp" --version | sed -n 's/^ *BLAS: .*OpenBLAS, \([A-Za-z0-9]*\) kernels.*/\1/p')
    [ -n "$coretype" ] || coretype=default
fi
if [ "$coretype" = default ]; then unset OPENBLAS_CORETYPE; else export OPENBLAS_CORETYPE="$coretype"; fi

ds_ms() { # case -> diffsamp ms/iteration
    local extra=()
    # The PyTorch case uses a constant exploration std of 0.1 (--exploration_factor 0.1, no --exploration_wd).
    [ "$1" = manywell_tb_expl ] && extra=(--set exploration.factor=0.1 --set exploration.schedule=constant)
    local n=$ds_iters
    [ "$1" = vae_vargrad_expl_lp ] && n=$vae_iters
    if ! OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$tmp/diffsamp" train "configs/$1.yaml" \
        --set train.iterations="$n" --set eval.every=100000 --set eval.samples=10 \
        --set eval.ground_truth_samples=0 "${extra[@]}" --out "$tmp/ds_$1" --resume never >"$tmp/ds_$1.log" 2>&1; then
        echo "torch_reference.sh: diffsamp failed on $1:" >&2
        tail -5 "$tmp/ds_$1.log" >&2
        exit 1
    fi
    sed -n 's/.*training time *\([0-9.]*\) ms\/iteration.*/\1/p' "$tmp/ds_$1.log"
}

pt_ms() { # case threads -> PyTorch ms/iteration
    local log="$tmp/pt_$1_$2.log"
    if [ "$wait_policy" = unset ]; then unset OMP_WAIT_POLICY; else export OMP_WAIT_POLICY="$wait_policy"; fi
    local cmd=("$here/torch_reference.py" --ref "$ref" --case "$1" --threads "$2" --iters "$iters"
               --warmup "$warmup")
    # The VAE case: the reference's vae/train.py step (bench/torch_reference_vae.py), on the
    # paper-era uniform time grid, one untimed iteration first, no evaluation.
    [ "$1" = vae_vargrad_expl_lp ] && cmd=("$here/torch_reference_vae.py" --ref "$(dirname "$ref")/vae"
                                           --threads "$2" --iters $((vae_iters + 1)) --warmup 1 --eval-at ""
                                           --discretizer uniform)
    if ! OMP_NUM_THREADS="$2" MKL_NUM_THREADS="$2" OPENBLAS_NUM_THREADS="$2" \
        "$py" "${cmd[@]}" >"$log" 2>&1; then
        echo "torch_reference.sh: the PyTorch reference failed on $1 at $2 threads:" >&2
        tail -5 "$log" >&2
        exit 1
    fi
    sed -n 's/^RESULT .* ms_per_iter=\([0-9.]*\).*/\1/p' "$log"
}

commit=$(git -C "$ref" rev-parse --short HEAD 2>/dev/null || echo unknown)
branch=$(git -C "$ref" rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
echo "reference: $ref ($branch $commit), torch $("$py" -c 'import torch; print(torch.__version__)')"
echo "diffsamp: $exe, 1 process, OPENBLAS_NUM_THREADS=1, $ds_iters iterations ($vae_iters for the VAE case); $("$tmp/diffsamp" --version | sed -n 's/^ *BLAS: //p')"
echo "both: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
echo "PyTorch: $iters iterations after $warmup warm-up, CPU, OMP_WAIT_POLICY=$wait_policy; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo

header=$(printf "%-18s %10s" case diffsamp)
for t in $threads; do header+=$(printf " %11s" "torch ${t}t"); done
for t in $threads; do header+=$(printf " %12s" "ratio ${t}t"); done
rows=()
for c in $cases; do
    [ -f "configs/$c.yaml" ] || { echo "torch_reference.sh: configs/$c.yaml not found (run from the project root)" >&2; exit 2; }
    d=$(ds_ms "$c")
    [ -n "$d" ] || { echo "torch_reference.sh: no training-time line from diffsamp on $c" >&2; exit 1; }
    row=$(printf "%-18s %10.2f" "$c" "$d")
    ratios=""
    for t in $threads; do
        p=$(pt_ms "$c" "$t")
        [ -n "$p" ] || { echo "torch_reference.sh: no RESULT line from the PyTorch run on $c" >&2; exit 1; }
        echo "  $c: diffsamp $d ms, torch ${t} thread(s) $p ms" >&2
        row+=$(printf " %11.2f" "$p")
        ratios+=$(awk -v p="$p" -v d="$d" 'BEGIN { printf " %11.2fx", p / d }')
    done
    rows+=("$row$ratios")
done
echo
echo "ms/iteration (ratio = torch / diffsamp: how many times faster diffsamp is)"
echo "$header"
printf "%s\n" "${rows[@]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
