#!/usr/bin/python3
"""Plot a diffsamp sample set against its target. PNG output.

  25gmm, 9gmm   the samples over contours of the target density, with a
                marker on every mode (the grid of the run's energy.spacing)
  many_well     two 2-D marginals against exact samples: (x1, x3), two
                double-well coordinates (4 modes), and (x1, x2), a double-well
                coordinate and its Gaussian partner (coordinates are numbered
                from 1 here; the pairs are (x1, x2), (x3, x4), ..., the first
                of each pair being the double well, as in the reference)
  funnels       (x1, x2) = (x0, x_1) of the funnel against exact samples
  gaussian      the first two coordinates against exact samples
Contours are of the exact 2-D marginal density.

What was drawn is reported as JSON in the PNG itself (text chunk
"diffsamp-report"; with --report also in a file): per panel the coordinate
pair, the model and exact points drawn, the contour levels, the mode markers
with their positions in data and in image pixels (x right, y down), and how
many modes hold a sample (within 0.4 spacings, the trainer's rule).

  /usr/bin/python3 analysis/plot_samples.py run/samples.h5 [-o samples.png] [--report r.json]
"""

import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
import yaml  # noqa: E402

import targets  # noqa: E402

REPORT_KEY = "diffsamp-report"
MODE_COLOR = "#1f3fff"  # the mode markers: a blue nothing else in the plot uses

_LOG_2PI = math.log(2.0 * math.pi)


def _log_normal(x, mean, std):
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * _LOG_2PI


def gmm_spec(energy, config_text):
    """(modes (M, 2), std, spacing) of a 2-D mixture as the run configured it:
    the reference's grid unless the config's energy section sets spacing,
    std (9gmm) or variance (25gmm)."""
    per_axis, spacing, std = (5, 5.0, math.sqrt(0.3)) if energy == "25gmm" else (3, 5.0, 0.5477222)
    try:
        section = (yaml.safe_load(config_text) or {}).get("energy") or {}
    except (yaml.YAMLError, AttributeError):
        section = {}
    spacing = float(section.get("spacing", spacing))
    if "std" in section:
        std = float(section["std"])
    if "variance" in section:
        std = math.sqrt(float(section["variance"]))
    grid = spacing * (np.arange(per_axis) - per_axis // 2)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], axis=1), std, spacing


def gmm_log_density(modes, std, a, b):
    pts = np.stack([a.ravel(), b.ravel()], axis=1)
    lp = -0.5 * ((pts[:, None, :] - modes[None, :, :]) ** 2).sum(axis=2) / std ** 2
    mx = lp.max(axis=1, keepdims=True)
    lse = mx[:, 0] + np.log(np.exp(lp - mx).sum(axis=1))
    return (lse - math.log(modes.shape[0]) - (_LOG_2PI + 2.0 * math.log(std))).reshape(a.shape)


def marginal_log_density(energy, dim, i, j, a, b, gmm=None):
    """Exact log density of the (x_i, x_j) marginal (0-based) at (a, b)."""
    if energy in ("9gmm", "25gmm"):
        return gmm_log_density(gmm[0], gmm[1], a, b)
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


def limits(energy, exact, model, i, j, gmm=None):
    if energy in ("9gmm", "25gmm"):
        # the reference's views (+-14, +-8) at the default spacing of 5
        h = (14.0 if energy == "25gmm" else 8.0) * gmm[2] / 5.0
        return (-h, h), (-h, h)
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
    p.add_argument("--report", default=None, help="also write the JSON report of what was drawn here")
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
    gmm = gmm_spec(energy, s["config"]) if two_d_gmm else None
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 5.0), squeeze=False, dpi=args.dpi)
    panels = []
    for ax, (i, j) in zip(axes[0], pairs):
        panel = {"pair": [i, j], "model_points": int(x.shape[0]), "exact_points": 0,
                 "contour_levels": 0, "mode_markers": 0}
        xl, yl = limits(energy, exact, x, i, j, gmm)
        ga, gb = np.meshgrid(np.linspace(xl[0], xl[1], 300), np.linspace(yl[0], yl[1], 300))
        lp = marginal_log_density(energy, dim, i, j, ga, gb, gmm)
        if lp is not None:
            top = float(np.max(lp))
            # levels from the peak down: contours of a density spanning many scales
            levels = top - np.array([30.0, 20.0, 12.0, 8.0, 5.0, 3.0, 1.5, 0.5])[::1]
            ax.contour(ga, gb, lp, levels=levels, colors="0.55", linewidths=0.7, linestyles="solid")
            panel["contour_levels"] = len(levels)
        if not two_d_gmm:
            ax.scatter(exact[:, i], exact[:, j], s=3, c="0.3", alpha=0.35, label="exact", rasterized=True)
            panel["exact_points"] = int(exact.shape[0])
        ax.scatter(x[:, i], x[:, j], s=3, c="tab:red", alpha=0.6, label="model", rasterized=True)
        markers = None
        if two_d_gmm:
            modes = gmm[0]
            markers = ax.scatter(modes[:, 0], modes[:, 1], s=70, marker="x", c=MODE_COLOR, linewidths=1.8,
                                 zorder=5, label="modes (%d)" % modes.shape[0])
            d2 = ((x[:, None, :2] - modes[None, :, :]) ** 2).sum(axis=2)
            held = int(np.sum(np.any(d2 <= (0.4 * gmm[2]) ** 2, axis=0)))
            panel["modes_with_samples"] = held
        ax.set_xlim(xl)
        ax.set_ylim(yl)
        ax.set_xlabel("x%d (column %d)" % (i + 1, i))
        ax.set_ylabel("x%d (column %d)" % (j + 1, j))
        ax.legend(loc="upper right", fontsize=8, markerscale=1.5)
        panels.append((ax, markers, panel))
    m = s["metrics"]
    shown = [("%s %.4g" % (k, m[k])) for k in ("elbo", "log_z_is", "ess", "delta_log_z", "delta_log_z_is") if k in m]
    if two_d_gmm:
        shown.append("modes with samples %d of %d" % (panels[0][2]["modes_with_samples"], gmm[0].shape[0]))
    info = "\n".join(", ".join(shown[i:i + 3]) for i in range(0, len(shown), 3))
    fig.suptitle("%s (d = %d), %d of %d samples%s" % (energy, dim, x.shape[0], s["x"].shape[0],
                                                     ("\n" + info) if info else ""), fontsize=10)
    fig.tight_layout()
    # The report is read from what the figure holds after layout: the marker
    # positions as drawn, converted to pixels of the saved image.
    fig.canvas.draw()
    width, height = fig.canvas.get_width_height()
    report = {"script": "plot_samples.py", "file": args.file, "energy": energy, "dim": dim,
              "image": [width, height], "panels": []}
    for ax, markers, panel in panels:
        if markers is not None:
            pos = np.asarray(markers.get_offsets(), dtype=float)
            pix = ax.transData.transform(pos)
            panel["mode_markers"] = int(pos.shape[0])
            panel["modes"] = pos.tolist()
            panel["mode_pixels"] = [[float(px), float(height - py)] for px, py in pix]
        report["panels"].append(panel)
    text = json.dumps(report)
    out = args.out or os.path.splitext(args.file)[0] + ".png"
    fig.savefig(out, dpi=args.dpi, metadata={REPORT_KEY: text})
    plt.close(fig)
    if args.report:
        with open(args.report, "w") as f:
            f.write(text + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
