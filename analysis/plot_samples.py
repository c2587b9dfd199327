#!/usr/bin/python3
"""Plot a diffsamp sample set against its target. PNG output.

  25gmm, 9gmm   the samples over contours of the target density
  many_well     two 2-D marginals against exact samples: (x1, x3), two
                double-well coordinates (4 modes), and (x1, x2), a double-well
                coordinate and its Gaussian partner (coordinates are numbered
                from 1 here; the pairs are (x1, x2), (x3, x4), ..., the first
                of each pair being the double well, as in the reference)
  funnels       (x1, x2) = (x0, x_1) of the funnel against exact samples
  gaussian      the first two coordinates against exact samples
Contours are of the exact 2-D marginal density.

  /usr/bin/python3 analysis/plot_samples.py run/samples.h5 [-o samples.png]
"""

import argparse
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

import targets  # noqa: E402

_LOG_2PI = math.log(2.0 * math.pi)


def _log_normal(x, mean, std):
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * _LOG_2PI


def marginal_log_density(energy, dim, i, j, a, b):
    """Exact log density of the (x_i, x_j) marginal (0-based) at (a, b)."""
    if energy in ("9gmm", "25gmm"):
        pts = np.stack([a.ravel(), b.ravel()], axis=1)
        return targets.log_density(energy, pts).reshape(a.shape)
    if energy == "many_well":
        def one(k, v):
            if k % 2 == 0:
                return targets.many_well_first_log_pdf(v)
            return _log_normal(v, 0.0, 1.0)
        return one(i, a) + one(j, b)
    if energy in ("easy_funnel", "hard_funnel") and i == 0:
        # x0 ~ N(0, s^2), x_j | x0 ~ N(0, exp(x0))
        return _log_normal(a, 0.0, targets.funnel_scale(energy)) + _log_normal(b, 0.0, np.exp(0.5 * a))
    if energy == "gaussian":
        mu, s = targets.gaussian_params(dim)
        return _log_normal(a, mu[i], s[i]) + _log_normal(b, mu[j], s[j])
    return None


def panels_for(energy):
    """[(i, j), ...] 0-based coordinate pairs to plot."""
    if energy == "many_well":
        return [(0, 2), (0, 1)]
    return [(0, 1)]


def limits(energy, exact, model, i, j):
    if energy == "25gmm":
        return (-14.0, 14.0), (-14.0, 14.0)
    if energy == "9gmm":
        return (-8.0, 8.0), (-8.0, 8.0)
    if energy in ("easy_funnel", "hard_funnel"):
        lo, hi = np.quantile(exact[:, i], [0.002, 0.998])
        yl = np.quantile(np.abs(exact[:, j]), 0.98)
        return (lo - 0.5, hi + 0.5), (-yl, yl)
    out = []
    for k in (i, j):
        lo, hi = np.quantile(exact[:, k], [0.001, 0.999])
        pad = 0.15 * (hi - lo)
        out.append((lo - pad, hi + pad))
    return out[0], out[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("file", help="sample set written by diffsamp (samples.h5)")
    p.add_argument("-o", "--out", default=None, help="PNG to write (default: FILE with .png)")
    p.add_argument("--max-points", type=int, default=2000, help="model and exact points drawn (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the exact samples")
    p.add_argument("--dpi", type=int, default=110)
    args = p.parse_args(argv)

    try:
        s = targets.load_samples(args.file)
        energy, dim = s["energy"], s["dim"]
        x = s["x"][: args.max_points]
        exact = targets.sample(energy, args.max_points, dim, np.random.default_rng(args.seed))
    except (OSError, ValueError, KeyError) as e:
        print("plot_samples.py: %s" % e, file=sys.stderr)
        return 1
    if dim < 2:
        print("plot_samples.py: %s is %d-dimensional; nothing 2-D to draw" % (args.file, dim), file=sys.stderr)
        return 1

    pairs = panels_for(energy)
    two_d_gmm = energy in ("9gmm", "25gmm")
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 5.0), squeeze=False)
    for ax, (i, j) in zip(axes[0], pairs):
        xl, yl = limits(energy, exact, x, i, j)
        ga, gb = np.meshgrid(np.linspace(xl[0], xl[1], 300), np.linspace(yl[0], yl[1], 300))
        lp = marginal_log_density(energy, dim, i, j, ga, gb)
        if lp is not None:
            top = float(np.max(lp))
            # levels from the peak down: contours of a density spanning many scales
            levels = top - np.array([30.0, 20.0, 12.0, 8.0, 5.0, 3.0, 1.5, 0.5])[::1]
            ax.contour(ga, gb, lp, levels=levels, colors="0.55", linewidths=0.7, linestyles="solid")
        if not two_d_gmm:
            ax.scatter(exact[:, i], exact[:, j], s=3, c="0.3", alpha=0.35, label="exact", rasterized=True)
        ax.scatter(x[:, i], x[:, j], s=3, c="tab:red", alpha=0.6, label="model", rasterized=True)
        ax.set_xlim(xl)
        ax.set_ylim(yl)
        ax.set_xlabel("x%d (column %d)" % (i + 1, i))
        ax.set_ylabel("x%d (column %d)" % (j + 1, j))
        ax.legend(loc="upper right", fontsize=8, markerscale=3)
    m = s["metrics"]
    shown = [("%s %.4g" % (k, m[k])) for k in ("elbo", "log_z_is", "ess", "delta_log_z", "delta_log_z_is") if k in m]
    info = "\n".join(", ".join(shown[i:i + 3]) for i in range(0, len(shown), 3))
    fig.suptitle("%s (d = %d), %d of %d samples%s" % (energy, dim, x.shape[0], s["x"].shape[0],
                                                     ("\n" + info) if info else ""), fontsize=10)
    fig.tight_layout()
    out = args.out or os.path.splitext(args.file)[0] + ".png"
    fig.savefig(out, dpi=args.dpi)
    plt.close(fig)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
