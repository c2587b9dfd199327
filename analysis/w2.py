#!/usr/bin/python3
"""Exact 2-Wasserstein distance between a diffsamp sample set and the target.

As in the paper (and GFNOrg/gfn-diffusion's compute_distribution_distances):
the first n model samples against n exact samples of the target, uniform
weights, squared-Euclidean cost, W2 = sqrt(ot.emd2(a, b, M)). With --self,
exact samples against independent exact samples: the noise floor of the
metric at this n (about 0.97 for 25gmm, 5.4 for many_well, 22 for the hard
funnel at n = 2000). Prints the value; writes nothing.

Run with the Debian interpreter that has numpy, h5py and POT:
  /usr/bin/python3 analysis/w2.py run/samples.h5 [--n 2000] [--seed 0]
  /usr/bin/python3 analysis/w2.py --self --energy many_well
"""

import argparse
import sys

import numpy as np
import ot

import targets


def wasserstein2(x, y):
    """Exact W2 between the empirical measures of x (n, d) and y (m, d)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    a = np.full(x.shape[0], 1.0 / x.shape[0])
    b = np.full(y.shape[0], 1.0 / y.shape[0])
    cost = ot.dist(x, y, metric="sqeuclidean")
    w2sq = ot.emd2(a, b, cost, numItermax=10000000)
    return float(np.sqrt(max(float(w2sq), 0.0)))


def w2_to_target(x, energy, n=2000, seed=0):
    """W2 between the first n rows of x and n exact samples of energy
    (fewer when x has fewer rows). Returns (w2, n used)."""
    n = min(n, x.shape[0])
    rng = np.random.default_rng(seed)
    exact = targets.sample(energy, n, x.shape[1], rng)
    return wasserstein2(x[:n], exact), n


def noise_floor(energy, dim=None, n=2000, seed=0):
    """W2 between two independent sets of n exact samples."""
    rng = np.random.default_rng(seed)
    a = targets.sample(energy, n, dim, rng)
    b = targets.sample(energy, n, dim, rng)
    return wasserstein2(a, b)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Energies: " + ", ".join(targets.known_energies()))
    p.add_argument("file", nargs="?", help="sample set written by diffsamp (samples.h5)")
    p.add_argument("--n", type=int, default=2000, help="samples on each side (default 2000, as the paper)")
    p.add_argument("--seed", type=int, default=0, help="seed of the exact samples (default 0)")
    p.add_argument("--self", dest="self_", action="store_true",
                   help="print the noise floor instead: exact vs independent exact samples")
    p.add_argument("--energy", help="target for --self without a file (default: the file's)")
    p.add_argument("--dim", type=int, default=0, help="dimension for --energy (default: the target's)")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error("--n must be >= 1")
    if args.file is None and not (args.self_ and args.energy):
        p.error("give a sample file, or --self --energy NAME")

    try:
        if args.file is not None:
            s = targets.load_samples(args.file)
            energy, dim = s["energy"], s["dim"]
        else:
            energy, dim = args.energy, args.dim
        if args.energy and args.file is not None and args.energy != energy:
            p.error("--energy %s contradicts the file's energy %s" % (args.energy, energy))
        if args.self_:
            value = noise_floor(energy, dim, args.n, args.seed)
        else:
            value, used = w2_to_target(s["x"], energy, args.n, args.seed)
            if used < args.n:
                print("w2.py: %s holds %d samples, fewer than --n %d; using %d on each side"
                      % (args.file, used, args.n, used), file=sys.stderr)
    except (OSError, ValueError, KeyError) as e:
        print("w2.py: %s" % e, file=sys.stderr)
        return 1
    print("%.6f" % value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
