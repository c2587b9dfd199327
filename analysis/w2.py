#!/usr/bin/python3
"""Exact 2-Wasserstein distance between a diffsamp sample set and the target.

As in the paper (and GFNOrg/gfn-diffusion's compute_distribution_distances):
the first n model samples against n exact samples of the target, uniform
weights, squared-Euclidean cost, W2 = sqrt(ot.emd2(a, b, M)). The exact
samples come from the program: `diffsamp ground-truth` of the file's energy
with the energy keys of its config (e.g. 25gmm's spacing and variance) and
train.seed = --seed. With --self, exact samples against independent exact
samples (rows n..2n-1 of the same ground-truth set): the noise floor of the
metric at this n (about 0.97 for 25gmm, 5.4 for many_well, 22 for the hard
funnel at n = 2000). Prints the value; writes nothing.

Run with the Debian interpreter that has numpy, h5py and POT:
  /usr/bin/python3 analysis/w2.py run/samples.h5 [--n 2000] [--seed 0]
  /usr/bin/python3 analysis/w2.py --self --energy many_well
  /usr/bin/python3 analysis/w2.py --self --energy 25gmm --set energy.spacing=3
"""

import argparse
import sys

import numpy as np

import dsio

# POT 0.8 imports every array backend it finds installed (torch alone costs
# about 1.6 s a run); W2 here is numpy only, so those not yet imported are
# hidden from it while it loads, and given back afterwards.
_HIDDEN = [m for m in ("torch", "jax", "cupy", "tensorflow") if m not in sys.modules]
for _m in _HIDDEN:
    sys.modules[_m] = None  # `import _m` raises ImportError, which POT catches
try:
    import ot
finally:
    for _m in _HIDDEN:
        if sys.modules.get(_m, 0) is None:
            del sys.modules[_m]


def wasserstein2(x, y):
    """Exact W2 between the empirical measures of x (n, d) and y (m, d)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    a = np.full(x.shape[0], 1.0 / x.shape[0])
    b = np.full(y.shape[0], 1.0 / y.shape[0])
    cost = ot.dist(x, y, metric="sqeuclidean")
    w2sq = ot.emd2(a, b, cost, numItermax=10000000)
    return float(np.sqrt(max(float(w2sq), 0.0)))


def w2_to_target(exe, x, target, n=2000, seed=0):
    """W2 between the first n rows of x and n exact samples of target
    (name, dim, keys) with train.seed = seed (fewer when x has fewer rows).
    Returns (w2, n used)."""
    n = min(n, x.shape[0])
    name, dim, keys = target
    exact = dsio.exact_samples(exe, name, n, seed, dim, keys)["x"]
    if exact.shape[1] != x.shape[1]:
        raise ValueError("the samples have dim %d, the program's exact samples of %s %d"
                         % (x.shape[1], name, exact.shape[1]))
    return wasserstein2(x[:n], exact), n


def noise_floor(exe, target, n=2000, seed=0):
    """W2 between two independent sets of n exact samples (rows [0, n) and
    [n, 2n) of one ground-truth set)."""
    name, dim, keys = target
    exact = dsio.exact_samples(exe, name, 2 * n, seed, dim, keys)["x"]
    return wasserstein2(exact[:n], exact[n:])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Energies and their keys: `diffsamp energies`, "
                                       "`diffsamp config --set energy.name=NAME`.")
    p.add_argument("file", nargs="?", help="sample set written by diffsamp (samples.h5)")
    p.add_argument("--n", type=int, default=2000, help="samples on each side (default 2000, as the paper)")
    p.add_argument("--seed", type=int, default=0, help="seed (train.seed) of the exact samples (default 0)")
    p.add_argument("--self", dest="self_", action="store_true",
                   help="print the noise floor instead: exact vs independent exact samples")
    p.add_argument("--energy", help="target for --self without a file (default: the file's)")
    p.add_argument("--dim", type=int, default=0, help="dimension for --energy (default: the target's)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="energy.KEY=VALUE",
                   help="an energy key for --energy (repeatable; default: the energy's defaults)")
    dsio.add_diffsamp_option(p)
    args = p.parse_args(argv)
    if args.n < 1:
        p.error("--n must be >= 1")
    if args.file is None and not (args.self_ and args.energy):
        p.error("give a sample file, or --self --energy NAME")
    if args.file is not None and (args.dim or args.sets):
        p.error("--dim and --set are for --self --energy without a file (a file's target is its own)")

    try:
        if args.file is not None:
            s = dsio.load_samples(args.file)
            target = dsio.target_of_samples(s)
            if args.energy and args.energy != target[0]:
                p.error("--energy %s contradicts the file's energy %s" % (args.energy, target[0]))
        else:
            target = (args.energy, args.dim, dsio.parse_sets(args.sets))
        exe = dsio.find_diffsamp(args.diffsamp)
        if args.self_:
            value = noise_floor(exe, target, args.n, args.seed)
        else:
            value, used = w2_to_target(exe, s["x"], target, args.n, args.seed)
            if used < args.n:
                print("w2.py: %s holds %d samples, fewer than --n %d; using %d on each side"
                      % (args.file, used, args.n, used), file=sys.stderr)
    except (OSError, ValueError, KeyError, dsio.DiffsampError) as e:
        print("w2.py: %s" % e, file=sys.stderr)
        return 1
    print("%.6f" % value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
