#!/usr/bin/env python3
"""Time the PyTorch reference (GFNOrg/gfn-diffusion) on diffsamp's benchmark cases.

Usage:
    python3 bench/torch_reference.py --ref /path/to/gfn-diffusion/energy_sampling \
        --case 25gmm_tb --threads 1 --iters 30 --warmup 5

The reference is not part of diffsamp: this driver imports its modules (models,
energies, utils) from the directory given by --ref and nothing else.  It builds
the model, energy and optimiser the way the reference's energy_sampling/train.py
does for the case (the README's flags: --pis_architectures --zero_init --clipping,
T = 100, batch 300), then runs the reference's training step -- forward
trajectories, loss, backward, Adam step, loss.item() -- `--warmup` times
untimed and `--iters` times timed, and prints the mean and median wall time
per iteration.  Evaluation, plotting, checkpointing and wandb are not run.

Written against the branch `stagger` of the reference (it has the PIS loss in
get_gfn_forward_loss); `main` works for the TB cases.

The last line of output is machine-readable:
    RESULT case=<name> threads=<n> ms_per_iter=<mean> median_ms=<median>
"""
import argparse
import importlib.util
import os
import statistics
import sys
import time
import types

# The cases, named as diffsamp's configs/<case>.yaml.  Each lists the
# train.py flags that differ from its defaults (besides the common ones below).
CASES = {
    "25gmm_tb": dict(energy="25gmm", mode_fwd="tb", t_scale=5.0, lr_flow=1e-1),
    "manywell_tb_expl": dict(energy="many_well", mode_fwd="tb", t_scale=1.0, lr_flow=1e-1,
                             exploratory=True, exploration_factor=0.1),
    "25gmm_pis": dict(energy="25gmm", mode_fwd="pis", t_scale=5.0),
    "manywell_pis": dict(energy="many_well", mode_fwd="pis", t_scale=1.0),
    "25gmm_pis_lp": dict(energy="25gmm", mode_fwd="pis", t_scale=5.0, langevin=True),
    "manywell_pis_lp": dict(energy="many_well", mode_fwd="pis", t_scale=1.0, langevin=True),
}

# train.py's argparse defaults (the ones the training step reads), plus the
# README's --pis_architectures --zero_init --clipping.
DEFAULTS = dict(
    lr_policy=1e-3, lr_flow=1e-2, lr_back=1e-3, hidden_dim=64, s_emb_dim=64, t_emb_dim=64,
    harmonics_dim=64, batch_size=300, T=100, subtb_lambda=2, t_scale=5.0, log_var_range=4.0,
    energy="25gmm", mode_fwd="tb", exploratory=False, exploration_factor=0.1, exploration_wd=False,
    langevin=False, langevin_scaling_per_dimension=False, conditional_flow_model=False,
    learn_pb=False, pb_scale_range=0.1, learned_variance=False, partial_energy=False,
    clipping=True, lgv_clip=1e2, gfn_clip=1e4, zero_init=True, pis_architectures=True,
    lgv_layers=3, joint_layers=2, seed=12345, weight_decay=1e-7, use_weight_decay=False,
    discretizer="uniform", discretizer_max_ratio=10.0,
)


def _stub(name, **attrs):
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    mod.__diffsamp_stub__ = True
    sys.modules[name] = mod
    return mod


def _missing(name):
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def stub_optional_imports():
    """Stand-ins for the reference's imports the training step never uses
    (plotting, logging, data loading).  Only installed when missing."""

    class _Anything:
        def __init__(self, *a, **k):
            pass

        def __call__(self, *a, **k):
            return _Anything()

        def __getattr__(self, name):
            return _Anything()

    if _missing("wandb"):
        _stub("wandb", init=_Anything(), log=_Anything(), Image=_Anything)
    if _missing("matplotlib"):
        mpl = _stub("matplotlib", use=_Anything())
        mpl.pyplot = _stub("matplotlib.pyplot")
        mpl.pyplot.__getattr__ = lambda name: _Anything()
    if _missing("pandas"):
        _stub("pandas").__getattr__ = lambda name: _Anything()
    if _missing("PIL"):
        pil = _stub("PIL")
        pil.Image = _stub("PIL.Image")
    if _missing("einops"):
        import torch

        def rearrange(tensors, pattern):
            # The only pattern the reference's architectures use.
            if pattern.replace(" ", "") != "dbw->b(dw)":
                raise NotImplementedError("einops stub: pattern %r" % pattern)
            return torch.cat(list(tensors), dim=-1)

        _stub("einops", rearrange=rearrange)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", required=True,
                    help="the reference's energy_sampling directory (a GFNOrg/gfn-diffusion checkout)")
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--iters", type=int, default=30, help="timed iterations")
    ap.add_argument("--warmup", type=int, default=5, help="untimed iterations before timing")
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ap.add_argument("--discretizer", default="uniform", choices=("uniform", "random"),
                    help="time grid: uniform (dt = 1/T, as diffsamp and the reference's main branch) "
                         "or random (the default of branch stagger's train.py)")
    opt = ap.parse_args()

    ref = os.path.abspath(opt.ref)
    needed = ("models", "energies", "utils.py", "gflownet_losses.py")
    if not os.path.isdir(ref) or not all(os.path.exists(os.path.join(ref, n)) for n in needed):
        sys.exit("torch_reference.py: --ref %s is not the reference's energy_sampling directory "
                 "(expected %s in it)" % (opt.ref, ", ".join(needed)))
    if opt.threads < 1 or opt.iters < 1 or opt.warmup < 0:
        sys.exit("torch_reference.py: --threads and --iters must be >= 1, --warmup >= 0")

    import torch

    torch.set_num_threads(opt.threads)
    try:
        torch.set_num_interop_threads(opt.threads)
    except RuntimeError:
        pass  # only allowed before any inter-op work; harmless to skip

    stub_optional_imports()
    sys.path.insert(0, ref)
    from models import GFN  # noqa: E402  (the reference's modules)
    from energies import TwentyFiveGaussianMixture, ManyWell
    from utils import (set_seed, get_gfn_optimizer, get_gfn_forward_loss, get_exploration_std,
                       uniform_discretizer, random_discretizer, cal_subtb_coef_matrix)

    a = types.SimpleNamespace(**DEFAULTS)
    a.__dict__.update(CASES[opt.case])
    a.discretizer = opt.discretizer
    if a.pis_architectures:
        a.zero_init = True  # as train.py does
    device = torch.device(opt.device)

    set_seed(a.seed)
    energy = (TwentyFiveGaussianMixture if a.energy == "25gmm" else ManyWell)(device=device)
    coeff_matrix = cal_subtb_coef_matrix(a.subtb_lambda, a.T).to(device)
    gfn_model = GFN(energy.data_ndim, a.s_emb_dim, a.hidden_dim, a.harmonics_dim, a.t_emb_dim,
                    clipping=a.clipping, lgv_clip=a.lgv_clip, gfn_clip=a.gfn_clip,
                    langevin=a.langevin, learned_variance=a.learned_variance,
                    partial_energy=a.partial_energy, log_var_range=a.log_var_range,
                    pb_scale_range=a.pb_scale_range, t_scale=a.t_scale,
                    langevin_scaling_per_dimension=a.langevin_scaling_per_dimension,
                    conditional_flow_model=a.conditional_flow_model, learn_pb=a.learn_pb,
                    pis_architectures=a.pis_architectures, lgv_layers=a.lgv_layers,
                    joint_layers=a.joint_layers, zero_init=a.zero_init, device=device).to(device)
    optimizer = get_gfn_optimizer(gfn_model, a.lr_policy, a.lr_flow, a.lr_back, a.learn_pb,
                                  a.conditional_flow_model, a.use_weight_decay, a.weight_decay)
    if a.discretizer == "uniform":
        discretizer = lambda bsz: uniform_discretizer(bsz, a.T)
    else:
        discretizer = lambda bsz: random_discretizer(bsz, a.T, max_ratio=a.discretizer_max_ratio)

    def step(it):
        # One forward-only training iteration, as train.py's train_step /
        # fwd_train_step run it (no both_ways, no bwd, no local search).
        gfn_model.zero_grad()
        expl = get_exploration_std(it, a.exploratory, a.exploration_factor, a.exploration_wd)
        init_state = torch.zeros(a.batch_size, energy.data_ndim).to(device)
        loss = get_gfn_forward_loss(a.mode_fwd, init_state, gfn_model, energy.log_reward, coeff_matrix,
                                    discretizer, exploration_std=expl)
        loss.backward()
        optimizer.step()
        return loss.item()

    gfn_model.train()
    it = 0
    for _ in range(opt.warmup):
        step(it)
        it += 1
    times = []
    loss = float("nan")
    for _ in range(opt.iters):
        t0 = time.perf_counter()
        loss = step(it)
        times.append((time.perf_counter() - t0) * 1e3)
        it += 1
    mean = sum(times) / len(times)
    med = statistics.median(times)
    stubs = sorted(n for n, m in sys.modules.items() if getattr(m, "__diffsamp_stub__", False))
    print("case %s: energy %s, mode_fwd %s, t_scale %g, langevin %s, exploration %s, T %d, batch %d, "
          "discretizer %s, device %s" % (opt.case, a.energy, a.mode_fwd, a.t_scale, a.langevin,
                                          a.exploration_factor if a.exploratory else "off", a.T,
                                          a.batch_size, a.discretizer, device))
    print("torch %s, intra-op threads %d, inter-op threads %d, stubbed imports: %s"
          % (torch.__version__, torch.get_num_threads(), torch.get_num_interop_threads(),
             ", ".join(stubs) or "none"))
    print("%d iterations after %d warm-up: %.2f ms/iteration (median %.2f, min %.2f), last loss %.4g"
          % (opt.iters, opt.warmup, mean, med, min(times), loss))
    print("RESULT case=%s threads=%d ms_per_iter=%.3f median_ms=%.3f" % (opt.case, opt.threads, mean, med))


if __name__ == "__main__":
    main()
