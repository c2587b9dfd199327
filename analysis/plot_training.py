#!/usr/bin/python3
"""Training curves of diffsamp runs from their metrics.csv.

One panel per quantity that has values: loss, log Z estimates (ELBO,
importance-weighted, learned) with the known log Z of the run's target (from
the diffsamp program: `diffsamp energies`, or a one-sample `diffsamp
ground-truth` for a target with its own keys), |log Z - estimate|,
ESS, mean log-likelihood of true samples, modes found, local-search
acceptance. Empty cells (not applicable) are skipped. Several run folders
are overlaid. PNG output.

What was drawn is reported as JSON in the PNG itself (text chunk
"diffsamp-report"; with --report also in a file): the known log Z of each
run (null where unknown), per panel its title, its pixel box in the image
(left, top, right, bottom; y down), every curve with its number of points,
and the log Z lines drawn.

  /usr/bin/python3 analysis/plot_training.py runs/gmm [-o curves.png] [--report r.json]
"""

import argparse
import csv
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import yaml  # noqa: E402

import dsio  # noqa: E402

REPORT_KEY = "diffsamp-report"

# (title, columns, log scale when all values are positive)
PANELS = [
    ("training loss", ["loss"], True),
    ("log Z estimates", ["elbo", "log_z_is", "log_z_learned"], False),
    ("|log Z - estimate|", ["delta_log_z", "delta_log_z_is"], True),
    ("effective sample size", ["ess"], False),
    ("mean log-likelihood of true samples", ["mean_log_likelihood"], False),
    ("modes with samples", ["modes"], False),
    ("local search acceptance", ["ls_acceptance"], False),
]


def read_metrics(path):
    """{column: [(iteration, value), ...]} skipping empty or non-numeric cells."""
    with open(path, "r", newline="") as f:
        rows = list(csv.DictReader(f))
    series = {}
    for r in rows:
        try:
            it = float(r["iteration"])
        except (KeyError, TypeError, ValueError):
            continue
        for k, v in r.items():
            if k is None or k == "iteration" or v is None or v.strip() == "":
                continue
            try:
                val = float(v)
            except ValueError:
                continue
            if math.isfinite(val):
                series.setdefault(k, []).append((it, val))
    return series


def known_log_z(run_dir, find_exe):
    """log Z of the run's target (its config.yaml's energy section, keys
    included) as the program knows it; None without a config.yaml or where
    the program knows no log Z. find_exe() returns the program (asked only
    when there is a config)."""
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(path):
        return None
    with open(path, "r") as f:
        text = f.read()
    name, dim, keys = dsio.target_of(text)
    return dsio.known_log_z(find_exe(), name, dim, keys)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folder(s) holding metrics.csv")
    p.add_argument("-o", "--out", default=None, help="PNG to write (default RUN_DIR/training.png)")
    p.add_argument("--dpi", type=int, default=110)
    p.add_argument("--report", default=None, help="also write the JSON report of what was drawn here")
    dsio.add_diffsamp_option(p)
    args = p.parse_args(argv)

    exe = []

    def find_exe():
        if not exe:
            exe.append(dsio.find_diffsamp(args.diffsamp))
        return exe[0]

    data, log_zs = [], []
    for d in args.runs:
        path = d if d.endswith(".csv") else os.path.join(d, "metrics.csv")
        try:
            run_dir = os.path.dirname(path) or "."
            data.append((os.path.basename(os.path.normpath(run_dir)), read_metrics(path)))
            log_zs.append(known_log_z(run_dir, find_exe))
        except (OSError, KeyError, ValueError, yaml.YAMLError, dsio.DiffsampError) as e:
            print("plot_training.py: %s: %s" % (path, e), file=sys.stderr)
            return 1
    panels = [pn for pn in PANELS if any(c in s for _, s in data for c in pn[1])]
    if not panels:
        print("plot_training.py: no numeric metrics in %s" % ", ".join(args.runs), file=sys.stderr)
        return 1
    ncol = 2 if len(panels) > 1 else 1
    nrow = (len(panels) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.0 * ncol, 3.2 * nrow), squeeze=False, dpi=args.dpi)
    drawn = []
    for ax, (title, cols, logy) in zip(axes.ravel(), panels):
        curves, lines = [], []
        drawn.append((ax, title, curves, lines))
        allpos = True
        for name, s in data:
            for c in cols:
                if c not in s:
                    continue
                xs = [a for a, _ in s[c]]
                ys = [b for _, b in s[c]]
                allpos = allpos and min(ys) > 0
                label = c if len(data) == 1 else "%s: %s" % (name, c)
                ax.plot(xs, ys, marker="." if len(xs) < 50 else None, label=label)
                curves.append({"label": label, "points": len(xs)})
        if "elbo" in cols:
            for lz in sorted({z for z in log_zs if z is not None}):
                ax.axhline(lz, color="k", ls="--", lw=0.8, label="true log Z = %.4g" % lz)
                lines.append(lz)
        if logy and allpos:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if len(cols) > 1 or len(data) > 1:
            ax.legend(fontsize=7)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.suptitle(", ".join(name for name, _ in data), fontsize=11)
    fig.tight_layout()
    fig.canvas.draw()
    width, height = fig.canvas.get_width_height()
    report = {"script": "plot_training.py", "runs": args.runs, "known_log_z": log_zs,
              "image": [width, height], "panels": []}
    for ax, title, curves, lines in drawn:
        box = ax.get_window_extent()
        report["panels"].append({"title": title, "curves": curves, "log_z_lines": lines,
                                 "box": [float(box.x0), float(height - box.y1), float(box.x1), float(height - box.y0)]})
    text = json.dumps(report)
    out = args.out or os.path.join(args.runs[0], "training.png")
    fig.savefig(out, dpi=args.dpi, metadata={REPORT_KEY: text})
    plt.close(fig)
    if args.report:
        with open(args.report, "w") as f:
            f.write(text + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
