#!/usr/bin/python3
"""Table 1's SMC row from `diffsamp smc` (issue 20, section 3).

For each target and particle count, runs `diffsamp smc` with --seeds seeds
(train.seed = 0..seeds-1) and reports, as mean +- std over the seeds:
Delta log Z = |log Z_true - log Z_SMC| and W2 between 2000 particles drawn
from the final weighted particle set (multinomial resampling by the
normalised weights, numpy seed = the run's seed) and 2000 exact samples of
the target (analysis/w2.py; exact samples at train.seed = 0), next to the
paper's SMC row (../shared/paper/table1.csv). The budget is counted in
energy evaluations (each with its gradient), as the program reports it.

  /usr/bin/python3 bench/smc_table.py [--diffsamp build/diffsamp] [--seeds 5]
      [--particles 500,2000,8000] [--levels 100] [--out runs/smc_table]
"""

import argparse
import csv
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "analysis"))
import dsio  # noqa: E402
import w2  # noqa: E402

import h5py  # noqa: E402

# target -> (name in diffsamp, --set options): the reference's init variances
TARGETS = {
    "25gmm": ("25gmm", ["smc.init_var=100"]),
    "funnel": ("hard_funnel", ["smc.init_var=1"]),
    "manywell": ("many_well", ["smc.init_var=1"]),
}


def paper_rows(path):
    rows = {}
    if os.path.exists(path):
        for r in csv.DictReader(open(path)):
            if r["method"] == "SMC":
                rows[r["target"]] = r
    return rows


def run_one(exe, name, sets, particles, levels, seed, out):
    args = [exe, "smc", "--set", "energy.name=" + name, "--set", "smc.particles=%d" % particles,
            "--set", "smc.levels=%d" % levels, "--set", "train.seed=%d" % seed, "-o", out]
    for s in sets:
        args += ["--set", s]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, env=env)
    with h5py.File(out, "r") as f:
        x = np.asarray(f["x"], dtype=np.float64)
        lw = np.asarray(f["log_weight"], dtype=np.float64)
        attrs = {k: f.attrs[k] for k in ("log_z_smc", "log_z_true", "energy_evals", "dim")}
    p = np.exp(lw - lw.max())
    p /= p.sum()
    rng = np.random.default_rng(seed)
    idx = rng.choice(x.shape[0], size=2000, replace=True, p=p)
    return attrs, x[idx]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--diffsamp", default="build/diffsamp")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--particles", default="500,2000,8000")
    ap.add_argument("--levels", type=int, default=100)
    ap.add_argument("--targets", default="25gmm,funnel,manywell")
    ap.add_argument("--out", default="runs/smc_table")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    paper = paper_rows(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "paper",
                                    "table1.csv"))
    print("%-9s %9s %12s %22s %22s %18s %12s" % ("target", "particles", "energy calls", "Delta log Z",
                                                 "log Z_SMC - log Z", "W2", "paper dlogZ/W2"))
    for tname in args.targets.split(","):
        name, sets = TARGETS[tname]
        for n in [int(v) for v in args.particles.split(",")]:
            dz, sz, ws, calls = [], [], [], 0
            for seed in range(args.seeds):
                out = os.path.join(args.out, "%s_p%d_s%d.h5" % (tname, n, seed))
                attrs, xs = run_one(args.diffsamp, name, sets, n, args.levels, seed, out)
                err = float(attrs["log_z_smc"]) - float(attrs["log_z_true"])
                sz.append(err)
                dz.append(abs(err))
                calls = int(attrs["energy_evals"])
                ws.append(w2.w2_to_target(args.diffsamp, xs, (name, int(attrs["dim"]), {}), 2000, 0)[0])
            pr = paper.get(tname)
            ref = "%s / %s" % (pr["delta_log_z_mean"], pr["w2_mean"]) if pr else "-"
            print("%-9s %9d %12d %13.3f +- %6.3f %13.3f +- %6.3f %9.3f +- %5.3f %12s" % (
                tname, n, calls, np.mean(dz), np.std(dz), np.mean(sz), np.std(sz), np.mean(ws), np.std(ws), ref),
                flush=True)


if __name__ == "__main__":
    main()
