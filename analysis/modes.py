#!/usr/bin/python3
"""Per-mode diagnostic of many_well states in a sample set or a checkpoint's
replay buffers, against the exact mode weights (the same quantities as
metrics.csv's wells_* columns; include/diffsamp/modes.h).

A pair (x_2p, x_2p+1) is in its right-hand well when x_2p > a*, the barrier
between the wells (the root of g'(a) = -4a^3 + 12a + 1/2 near 0); its exact
probability w = int_{a*}^inf e^g / int e^g (g(a) = -a^4 + 6a^2 + a/2) is
the same for every pair, and the number of right-hand wells per sample is
Binomial(d/2, w). Prints, per dataset: rows, the mean right-hand fraction,
the worst pair's deviation, the TV distance of the count distribution, the
number of distinct well combinations seen, and their exact total mass.

  /usr/bin/python3 analysis/modes.py run/samples.h5
  /usr/bin/python3 analysis/modes.py run/checkpoint.h5      # /replay/buffer and /replay/buffer_ls
"""

import argparse
import math
import sys

import h5py
import numpy as np


def barrier():
    a = 0.0
    for _ in range(50):
        a -= (-4 * a ** 3 + 12 * a + 0.5) / (-12 * a * a + 12)
    return a


def right_weight():
    """int_{a*}^8 e^g / int_{-8}^8 e^g by the trapezoid rule on 4e6 points per side."""
    b = barrier()
    g = lambda a: -a ** 4 + 6 * a ** 2 + 0.5 * a - 10.0
    left = np.linspace(-8.0, b, 4000001)
    right = np.linspace(b, 8.0, 4000001)
    zl = np.trapz(np.exp(g(left)), left)
    zr = np.trapz(np.exp(g(right)), right)
    return zr / (zl + zr)


def diagnose(x, w):
    pairs = x.shape[1] // 2
    r = x[:, 0::2] > barrier()
    frac = r.mean(0)
    k = r.sum(1)
    pmf = np.array([math.comb(pairs, j) * w ** j * (1 - w) ** (pairs - j) for j in range(pairs + 1)])
    hist = np.bincount(k, minlength=pairs + 1) / len(k)
    combos, counts = np.unique(np.packbits(r, axis=1, bitorder="little"), axis=0, return_counts=True)
    ks = np.unpackbits(combos, axis=1, bitorder="little")[:, :pairs].sum(1)
    mass = float(np.sum(w ** ks * (1 - w) ** (pairs - ks)))
    return dict(rows=len(x), right=float(frac.mean()), maxdev=float(np.abs(frac - w).max()),
                tv=0.5 * float(np.abs(hist - pmf).sum()), combos=len(combos), mass=mass)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="sample sets or checkpoints of many_well runs")
    args = p.parse_args()
    w = right_weight()
    print("exact right-hand weight %.6f, barrier a* = %.6f" % (w, barrier()))
    print("%-44s %8s %8s %8s %8s %8s %10s" % ("dataset", "rows", "right", "maxdev", "TV#", "combos", "mass seen"))
    for path in args.files:
        with h5py.File(path, "r") as f:
            names = [n for n in ("/x", "/replay/buffer/x", "/replay/buffer_ls/x", "/searcher/x") if n in f]
            if not names:
                print("%s: no /x or /replay/*/x" % path, file=sys.stderr)
                return 1
            for n in names:
                x = np.asarray(f[n], dtype=np.float64)
                if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] % 2:
                    continue
                d = diagnose(x, w)
                print("%-44s %8d %8.4f %8.4f %8.4f %8d %10.4g" % ((path[-30:] + ":" + n)[-44:], d["rows"], d["right"],
                      d["maxdev"], d["tv"], d["combos"], d["mass"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
