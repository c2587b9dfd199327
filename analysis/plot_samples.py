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
The exact samples come from the program (`diffsamp ground-truth` of the
run's energy with its energy keys, --seed); the contours are of the 2-D
marginal density estimated from a smoothed histogram of --density-samples
of them (default 200000), at 9, 6, 4, 2.5, 1.2 and 0.4 below its peak in
log density.

What was drawn is reported as JSON in the PNG itself (text chunk
"diffsamp-report"; with --report also in a file): the target (energy, dim,
energy keys), per panel the coordinate pair, the model and exact points
drawn, the exact samples behind the contours, the contour levels, the mode
markers with their positions in data and in image pixels (x right, y down),
and how many modes hold a sample (within 0.4 spacings, the trainer's rule).

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

import dsio  # noqa: E402

REPORT_KEY = "diffsamp-report"
MODE_COLOR = "#1f3fff"  # the mode markers: a blue nothing else in the plot uses
# contour levels of the log density, below its peak; a histogram of the
# default 200k samples resolves about 12 below the peak
LEVELS_BELOW_PEAK = [9.0, 6.0, 4.0, 2.5, 1.2, 0.4]
BINS = 160  # histogram bins per axis
SMOOTH = 1.5  # std (in bins) of the Gaussian smoothing of the histogram


def mode_grid(energy, config_text):
    """(modes (M, 2), spacing) of a 2-D grid mixture: the per-axis grid size
    of the family and energy.spacing from the effective config (the program's
    ground-truth file holds every key with its default)."""
    per_axis = dsio.GRID_PER_AXIS[energy]
    spacing = float(dsio.energy_section(config_text)["spacing"])
    grid = spacing * (np.arange(per_axis) - per_axis // 2)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], axis=1), spacing


def _smooth(h, sigma):
    """h convolved with a Gaussian of std sigma (in bins) along both axes."""
    r = int(math.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    h = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 0, h)
    return np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 1, h)


def histogram_log_density(exact, i, j, xl, yl):
    """(centres a, centres b, log density (len b, len a), floor) of the (x_i, x_j)
    marginal estimated from exact samples: a smoothed 2-D histogram over the
    plot limits, normalised by all samples; -inf where no sample fell near),
    and the log density below which it is set to -inf."""
    h, ea, eb = np.histogram2d(exact[:, i], exact[:, j], bins=BINS, range=[xl, yl])
    h = _smooth(h, SMOOTH)
    area = (ea[1] - ea[0]) * (eb[1] - eb[0])
    with np.errstate(divide="ignore"):
        lp = np.log(h / (exact.shape[0] * area))
    # below about one sample per smoothing kernel the histogram is noise
    floor = math.log(0.5 / (exact.shape[0] * area * 2 * math.pi * SMOOTH ** 2))
    lp[lp < floor] = -np.inf
    return 0.5 * (ea[1:] + ea[:-1]), 0.5 * (eb[1:] + eb[:-1]), lp.T, floor


def panels_for(energy):
    """[(i, j), ...] 0-based coordinate pairs to plot."""
    if energy == "many_well":
        return [(0, 2), (0, 1)]
    return [(0, 1)]


def limits(energy, exact, i, j, spacing=None):
    if energy in dsio.GRID_PER_AXIS:
        # the reference's views (+-14, +-8) at the default spacing of 5
        h = (14.0 if energy == "25gmm" else 8.0) * spacing / 5.0
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
    p.add_argument("--density-samples", type=int, default=200000,
                   help="exact samples behind the density contours (default 200000)")
    p.add_argument("--seed", type=int, default=0, help="seed (train.seed) of the exact samples (default 0)")
    p.add_argument("--dpi", type=int, default=110)
    p.add_argument("--report", default=None, help="also write the JSON report of what was drawn here")
    dsio.add_diffsamp_option(p)
    args = p.parse_args(argv)
    if args.max_points < 1 or args.density_samples < 1:
        p.error("--max-points and --density-samples must be >= 1")

    try:
        s = dsio.load_samples(args.file)
        energy, dim, keys = dsio.target_of_samples(s)
        if dim < 2:
            print("plot_samples.py: %s is %d-dimensional; nothing 2-D to draw" % (args.file, dim), file=sys.stderr)
            return 1
        x = s["x"][: args.max_points]
        exe = dsio.find_diffsamp(args.diffsamp)
        gt = dsio.exact_samples(exe, energy, max(args.density_samples, args.max_points), args.seed, dim, keys)
        exact_all = gt["x"]
        exact = exact_all[: args.max_points]
        if exact_all.shape[1] != dim:
            raise ValueError("the program's exact samples of %s have dim %d, the file %d"
                             % (energy, exact_all.shape[1], dim))
        density = exact_all[: args.density_samples]
        two_d_gmm = energy in dsio.GRID_PER_AXIS
        modes, spacing = mode_grid(energy, gt["config"]) if two_d_gmm else (None, None)
    except (OSError, ValueError, KeyError, dsio.DiffsampError) as e:
        print("plot_samples.py: %s" % e, file=sys.stderr)
        return 1

    pairs = panels_for(energy)
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 5.0), squeeze=False, dpi=args.dpi)
    panels = []
    for ax, (i, j) in zip(axes[0], pairs):
        panel = {"pair": [i, j], "model_points": int(x.shape[0]), "exact_points": 0,
                 "density_samples": int(density.shape[0]), "contour_levels": 0, "mode_markers": 0}
        xl, yl = limits(energy, density, i, j, spacing)
        ca, cb, lp, floor = histogram_log_density(density, i, j, xl, yl)
        top = float(np.max(lp[np.isfinite(lp)])) if np.isfinite(lp).any() else floor
        # only the levels the histogram resolves: clear of its noise floor
        levels = [top - v for v in LEVELS_BELOW_PEAK if top - v > floor + 1.0]
        if levels:
            # below every level where no sample fell: a finite stand-in keeps contour() quiet
            lp = np.where(np.isfinite(lp), lp, floor - 1.0)
            ax.contour(ca, cb, lp, levels=levels, colors="0.55", linewidths=0.7, linestyles="solid")
        panel["contour_levels"] = len(levels)
        panel["levels"] = [round(v, 6) for v in levels]
        if not two_d_gmm:
            ax.scatter(exact[:, i], exact[:, j], s=3, c="0.3", alpha=0.35, label="exact", rasterized=True)
            panel["exact_points"] = int(exact.shape[0])
        ax.scatter(x[:, i], x[:, j], s=3, c="tab:red", alpha=0.6, label="model", rasterized=True)
        markers = None
        if two_d_gmm:
            markers = ax.scatter(modes[:, 0], modes[:, 1], s=70, marker="x", c=MODE_COLOR, linewidths=1.8,
                                 zorder=5, label="modes (%d)" % modes.shape[0])
            d2 = ((x[:, None, :2] - modes[None, :, :]) ** 2).sum(axis=2)
            held = int(np.sum(np.any(d2 <= (0.4 * spacing) ** 2, axis=0)))
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
        shown.append("modes with samples %d of %d" % (panels[0][2]["modes_with_samples"], modes.shape[0]))
    info = "\n".join(", ".join(shown[i:i + 3]) for i in range(0, len(shown), 3))
    fig.suptitle("%s (d = %d), %d of %d samples%s" % (energy, dim, x.shape[0], s["x"].shape[0],
                                                     ("\n" + info) if info else ""), fontsize=10)
    fig.tight_layout()
    # The report is read from what the figure holds after layout: the marker
    # positions as drawn, converted to pixels of the saved image.
    fig.canvas.draw()
    width, height = fig.canvas.get_width_height()
    report = {"script": "plot_samples.py", "file": args.file, "energy": energy, "dim": dim,
              "energy_section": dsio.energy_section(gt["config"]), "exact_seed": args.seed,
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
