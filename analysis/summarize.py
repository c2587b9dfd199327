#!/usr/bin/python3
"""Table 1 of the paper from diffsamp run folders: mean +- std over seeds.

Each RUN_DIR holds config.yaml (the effective config) and metrics.csv; the
last row of metrics.csv is the run's result. Runs are grouped by (target,
method), the method labelled in the paper's naming from the config:
  objective  tb -> TB, vargrad -> VarGrad, db -> DB, subtb -> SubTB,
             fl-subtb -> FL-SubTB, mle -> MLE, pis -> PIS, dds -> DDS, dis -> DIS
  "+ Expl."  exploration.factor > 0 (off-policy objectives only: the
             simulation-based PIS/DDS/DIS do not explore)
  "+ LP"     sampler.langevin
  "+ LS"     local_search.enabled
Printed per group: mean +- sample std (ddof = 1; the value alone for one run)
of delta_log_z, delta_log_z_is and, with --w2, the 2-Wasserstein distance of
<run>/samples.h5 to exact samples of the run's target from `diffsamp
ground-truth` (w2.py; one program call per distinct target, n and seed),
laid out as Table 1 (rows =
methods, columns = targets x metrics); then elbo, log_z_is and ess. --csv
writes one row per (method, target) with the columns of the paper's
table1.csv. The published numbers of the same rows are printed under each
row ("  paper" lines) and added to the CSV: by default from analysis/table1.csv
(the paper's Table 1, copied from shared/paper/table1.csv), or --paper FILE;
--no-paper leaves them out. VAE runs (energy vae) get the paper's Table 2
under their ELBO in the estimates table: its log Z-hat column, the mean log
weight of one sample per test image (analysis/vae_table2.csv, or --paper-vae
FILE; the CSV then has paper_elbo_mean and paper_elbo_std, empty for other
targets). Rows (methods) and columns (targets) follow the
paper's order (25gmm, funnel, manywell; the paper's method order), then
anything else in the order first seen.

  /usr/bin/python3 analysis/summarize.py runs/* --csv table.csv
"""

import argparse
import csv
import math
import os
import sys

import numpy as np
import yaml

import dsio

PAPER_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "table1.csv")
PAPER_VAE_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vae_table2.csv")
PAPER_TARGETS = ["25gmm", "funnel", "manywell"]  # the paper's column order

OBJECTIVE_LABEL = {
    "tb": "TB", "vargrad": "VarGrad", "db": "DB", "subtb": "SubTB", "fl-subtb": "FL-SubTB",
    "mle": "MLE", "pis": "PIS", "dds": "DDS", "dis": "DIS",
}
ON_POLICY = {"pis", "dds", "dis"}
TABLE_METRICS = ["delta_log_z", "delta_log_z_is", "w2"]
EXTRA_METRICS = ["elbo", "log_z_is", "ess"]
ALL_METRICS = TABLE_METRICS + EXTRA_METRICS
HEADINGS = {"delta_log_z": "dlogZ", "delta_log_z_is": "dlogZ_RW", "w2": "W2",
            "elbo": "ELBO", "log_z_is": "logZ_IS", "ess": "ESS"}


def _get(cfg, path, default):
    node = cfg
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def method_label(cfg):
    """The paper's name of the method a config trains, e.g. 'TB + Expl. + LS'."""
    obj = str(_get(cfg, "objective.name", "tb")).lower()
    label = OBJECTIVE_LABEL.get(obj, obj)
    expl = float(_get(cfg, "exploration.factor", 0.0) or 0.0)
    if expl > 0 and obj not in ON_POLICY:
        label += " + Expl."
    if bool(_get(cfg, "sampler.langevin", False)):
        label += " + LP"
    if bool(_get(cfg, "local_search.enabled", False)):
        label += " + LS"
    return label


def target_label(cfg, exe=None):
    """The energy name, with the dimension appended when it is not the
    energy's default (`diffsamp energies`, asked only for a nonzero dim)."""
    name = str(_get(cfg, "energy.name", "?"))
    if name == "vae":  # one column per VAE: the paper's Table 2 is the MNIST one's
        stem = os.path.splitext(os.path.basename(str(_get(cfg, "energy.file", "") or "")))[0]
        return "vae" if stem in ("", "vae_bce_mnist_100ep") else "vae-" + stem
    dim = int(_get(cfg, "energy.dim", 0) or 0)
    if dim:
        default = dsio.energies(exe or dsio.find_diffsamp()).get(name, {}).get("dim")
        if default not in (None, dim):
            return "%s-d%d" % (name, dim)
    return name


def _num(cell):
    cell = (cell or "").strip()
    if cell == "":
        return math.nan
    try:
        return float(cell)
    except ValueError:
        return math.nan


def last_metrics(path):
    """The last data row of metrics.csv as {column: float} (nan = empty)."""
    with open(path, "r", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError("%s has no data rows" % path)
    return {k: _num(v) for k, v in rows[-1].items() if k is not None}


def read_run(run_dir, want_w2=False, w2_n=2000, w2_seed=0, exe=None):
    """One run's labels and last metrics; exe (the diffsamp program) is
    needed for --w2 and for a nonzero energy.dim, and found when None."""
    cfg_path = os.path.join(run_dir, "config.yaml")
    with open(cfg_path, "r") as f:
        cfg = yaml.safe_load(f) or {}
    row = last_metrics(os.path.join(run_dir, "metrics.csv"))
    run = {"dir": run_dir, "method": method_label(cfg), "target": target_label(cfg, exe),
           "energy": str(_get(cfg, "energy.name", "?")), "seed": _get(cfg, "train.seed", None),
           "iteration": row.get("iteration", math.nan)}
    for m in ALL_METRICS:
        run[m] = row.get(m, math.nan)
    if want_w2:
        h5 = os.path.join(run_dir, "samples.h5")
        if os.path.exists(h5):
            import w2  # needs POT only when asked for
            s = dsio.load_samples(h5)
            run["w2"], _ = w2.w2_to_target(exe or dsio.find_diffsamp(), s["x"], dsio.target_of_samples(s),
                                           w2_n, w2_seed)
        else:
            print("summarize.py: %s has no samples.h5; W2 left empty" % run_dir, file=sys.stderr)
    return run


def mean_std(values):
    """(mean, sample std, count) over the finite values; std nan for one."""
    v = np.array([x for x in values if not math.isnan(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan, 0
    if v.size == 1:
        return float(v[0]), math.nan, 1
    return float(v.mean()), float(v.std(ddof=1)), int(v.size)


def fmt(mean, std):
    if math.isnan(mean):
        return "-"
    if math.isnan(std):
        return "%.3f" % mean
    return "%.3f ± %.3f" % (mean, std)


def read_paper(path):
    """{(method, paper target): {metric: (mean, std)}} from table1.csv, in the
    file's order (lines starting with # are comments)."""
    out = {}
    with open(path, "r", newline="") as f:
        for r in csv.DictReader(line for line in f if not line.startswith("#")):
            cell = {}
            for m in TABLE_METRICS:
                cell[m] = (_num(r.get(m + "_mean")), _num(r.get(m + "_std")))
            out[(r["method"].strip(), r["target"].strip())] = cell
    return out


def read_paper_vae(path):
    """{(method, "vae"): {"elbo": (mean, std)}} from vae_table2.csv (the
    paper's log Z-hat column is the ELBO of diffsamp's metrics)."""
    out = {}
    with open(path, "r", newline="") as f:
        for r in csv.DictReader(line for line in f if not line.startswith("#")):
            out[(r["method"].strip(), "vae")] = {"elbo": (_num(r.get("log_z_mean")), _num(r.get("log_z_std")))}
    return out


def load_paper(path, default, reader):
    """reader(path), or reader(default) when path is None and default exists;
    None when neither. A file that cannot be read raises ValueError naming it."""
    if path is None and os.path.exists(default):
        path = default
    if not path:
        return None
    try:
        return reader(path)
    except (OSError, KeyError) as e:
        raise ValueError("%s: %s" % (path, e))


def paper_target(target):
    return dsio.PAPER_TARGET.get(target)


def print_table(groups, methods, tlist, metrics, paper, title):
    """Rows = methods, columns = targets x metrics; a 'paper' line under
    each row that has published numbers."""
    cw = 17
    print(title)
    head1 = "%-28s" % "" + "".join(("%-*s" % (cw * len(metrics), paper_target(t) or t)) for t in tlist)
    head2 = "%-28s" % "method" + "".join("%-*s" % (cw, HEADINGS[m]) for _ in tlist for m in metrics)
    print(head1.rstrip())
    print(head2.rstrip())
    for meth in methods:
        line = "%-28s" % meth
        for t in tlist:
            g = groups.get((t, meth))
            for m in metrics:
                line += "%-*s" % (cw, fmt(*g["stats"][m][:2]) if g else "")
        n = sorted({groups[(t, meth)]["n"] for t in tlist if (t, meth) in groups})
        print(line.rstrip() + "   (n = %s)" % "/".join(str(k) for k in n))
        if paper is not None:
            pl, any_p = "%-28s" % "  paper", False
            for t in tlist:
                cell = paper.get((meth, paper_target(t) or t)) if (t, meth) in groups else None
                for m in metrics:
                    if cell is not None and m in cell and not math.isnan(cell[m][0]):
                        pl += "%-*s" % (cw, fmt(*cell[m]))
                        any_p = True
                    else:
                        pl += "%-*s" % (cw, "")
            if any_p:
                print(pl.rstrip())
    print()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (config.yaml + metrics.csv)")
    p.add_argument("--csv", metavar="OUT.csv", help="also write the table as CSV ('-' = stdout)")
    p.add_argument("--paper", metavar="TABLE1.csv", default=None,
                   help="the paper's numbers (default: analysis/table1.csv)")
    p.add_argument("--paper-vae", metavar="TABLE2.csv", default=None,
                   help="the paper's VAE numbers (default: analysis/vae_table2.csv)")
    p.add_argument("--no-paper", action="store_true", help="leave the paper's numbers out")
    p.add_argument("--w2", action="store_true", help="compute W2 from each run's samples.h5 (needs POT)")
    p.add_argument("--w2-n", type=int, default=2000, help="samples per side for --w2 (default 2000)")
    p.add_argument("--w2-seed", type=int, default=0, help="seed (train.seed) of the exact samples for --w2")
    dsio.add_diffsamp_option(p)
    args = p.parse_args(argv)

    runs = []
    exe = None
    for d in args.runs:
        try:
            if exe is None and args.diffsamp is not None:
                exe = dsio.find_diffsamp(args.diffsamp)
            runs.append(read_run(d, args.w2, args.w2_n, args.w2_seed, exe))
        except (OSError, ValueError, KeyError, yaml.YAMLError, dsio.DiffsampError) as e:
            print("summarize.py: %s: %s" % (d, e), file=sys.stderr)
            return 1
    try:
        paper = None if args.no_paper else load_paper(args.paper, PAPER_DEFAULT, read_paper)
        paper_vae = None if args.no_paper else load_paper(args.paper_vae, PAPER_VAE_DEFAULT, read_paper_vae)
    except ValueError as e:
        print("summarize.py: %s" % e, file=sys.stderr)
        return 1

    groups = {}
    for r in runs:
        groups.setdefault((r["target"], r["method"]), {"runs": []})["runs"].append(r)
    for g in groups.values():
        g["n"] = len(g["runs"])
        g["stats"] = {m: mean_std([r[m] for r in g["runs"]]) for m in ALL_METRICS}
    # The paper's order where it has the row or column, then first-seen order.
    paper_methods = []
    for meth, _ in list(paper or {}) + list(paper_vae or {}):
        if meth not in paper_methods:
            paper_methods.append(meth)
    seen_m, seen_t = [], []
    for r in runs:
        if r["method"] not in seen_m:
            seen_m.append(r["method"])
        if r["target"] not in seen_t:
            seen_t.append(r["target"])
    methods = sorted(seen_m, key=lambda m: (paper_methods.index(m) if m in paper_methods else len(paper_methods),
                                            seen_m.index(m)))
    tlist = sorted(seen_t, key=lambda t: (PAPER_TARGETS.index(paper_target(t))
                                          if paper_target(t) in PAPER_TARGETS else len(PAPER_TARGETS),
                                          seen_t.index(t)))

    print_table(groups, methods, tlist, TABLE_METRICS, paper,
                "Table 1: |log Z - estimate| (ELBO, importance-weighted) and W2; mean ± std over runs")
    print_table(groups, methods, tlist, EXTRA_METRICS, paper_vae, "Estimates: ELBO, log Z (IS), ESS")

    if args.csv:
        cols = ["method", "target", "energy", "n_runs"]
        for m in ALL_METRICS:
            cols += [m + "_mean", m + "_std"]
        if paper is not None:
            cols += ["paper_" + m + "_" + s for m in TABLE_METRICS for s in ("mean", "std")]
        if paper_vae is not None:
            cols += ["paper_elbo_mean", "paper_elbo_std"]
        out = sys.stdout if args.csv == "-" else open(args.csv, "w", newline="")
        try:
            w = csv.writer(out, lineterminator="\n")
            w.writerow(cols)
            for meth in methods:
                for t in tlist:
                    g = groups.get((t, meth))
                    if g is None:
                        continue
                    row = [meth, paper_target(t) or t, t, g["n"]]
                    for m in ALL_METRICS:
                        mean, std, _ = g["stats"][m]
                        row += ["" if math.isnan(mean) else repr(mean), "" if math.isnan(std) else repr(std)]
                    if paper is not None:
                        cell = paper.get((meth, paper_target(t) or ""), {})
                        for m in TABLE_METRICS:
                            pm, ps = cell.get(m, (math.nan, math.nan))
                            row += ["" if math.isnan(pm) else repr(pm), "" if math.isnan(ps) else repr(ps)]
                    if paper_vae is not None:
                        pm, ps = paper_vae.get((meth, paper_target(t) or t), {}).get("elbo", (math.nan, math.nan))
                        row += ["" if math.isnan(pm) else repr(pm), "" if math.isnan(ps) else repr(ps)]
                    w.writerow(row)
        finally:
            if out is not sys.stdout:
                out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
