#!/usr/bin/env python3
"""Train the PyTorch reference's conditional VAE-posterior sampler and print its learning curve.

Usage:
    /usr/bin/python3 bench/torch_reference_vae.py --ref /path/to/gfn-diffusion/vae \
        --iters 200 --eval-at 0,50,100,200 --out ref_curve.csv

The reference is not part of diffsamp: this driver imports its modules (models,
gflownet_losses, utils, energies.vae, energies.vae_utils) from the directory
given by --ref.  It builds the sampler, optimiser and training step the way the
reference's vae/train.py does for the paper's VarGrad + Expl. + LP row
(the README's flags: --pis_architectures --zero_init --clipping
--mode_fwd cond-tb-avg --repeats 10 --lr_policy 1e-3 --lr_flow 1e-1 --langevin
--lgv_clip 1e2 --gfn_clip 1e4 --epochs 10000 --exploratory --exploration_wd
--exploration_factor 0.1; T 100, 300 images per iteration, train.py's default
time grid `random`), on the data diffsamp's configs/vae_*.yaml use: the
pretrained VAE from diffsamp's HDF5 layout (--vae) and training conditions drawn
at random from MNIST test images 100..9999 (the reference draws MNIST training
images, which are not available here), 300 distinct images per iteration.

Evaluation (at the iterations of --eval-at) is diffsamp's, not the reference's
single sample per image: --eval-repeats forward samples (uniform grid, no
exploration) for each of the test images 0..99, giving the per-image ELBO (mean
log weight) and the per-image importance-weighted log p(x) (log-mean-exp over
that image's samples), both averaged over images -- the `elbo` and `log_z_is`
columns of diffsamp's metrics.csv for the same configuration.

Output: a CSV (--out, and stdout) with iteration, elbo, log_z_is, loss and the
wall seconds of training so far (evaluation not counted).  The last line is
    RESULT case=vae_vargrad_expl_lp threads=<n> ms_per_iter=<mean after --warmup>
(bench/torch_reference.sh runs it so, next to diffsamp, for its case
vae_vargrad_expl_lp).
torchvision is imported by the reference's VAE module but never used here; it
is stubbed when missing, as are the imports bench/torch_reference.py stubs.
"""
import argparse
import math
import os
import sys
import time
import types


def stub_torchvision():
    try:
        import torchvision  # noqa: F401
        return False
    except ImportError:
        pass
    tv = types.ModuleType("torchvision")
    for sub in ("datasets", "transforms", "utils"):
        m = types.ModuleType("torchvision." + sub)
        setattr(tv, sub, m)
        sys.modules["torchvision." + sub] = m
    tv.utils.save_image = lambda *a, **k: None
    sys.modules["torchvision"] = tv
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", required=True, help="the reference's vae directory (a GFNOrg/gfn-diffusion checkout)")
    ap.add_argument("--vae", default="../shared/data/mnist/vae_bce_mnist_100ep.h5",
                    help="the VAE, in diffsamp's HDF5 layout (fc1, fc21, fc22, fc3, fc4: weight (out, in), bias)")
    ap.add_argument("--images", default="../shared/data/mnist/t10k-images-idx3-ubyte.gz")
    ap.add_argument("--train-first", type=int, default=100)
    ap.add_argument("--train-count", type=int, default=9900)
    ap.add_argument("--eval-first", type=int, default=0)
    ap.add_argument("--eval-count", type=int, default=100)
    ap.add_argument("--eval-repeats", type=int, default=10)
    ap.add_argument("--iters", type=int, default=200, help="training iterations to run")
    ap.add_argument("--epochs", type=int, default=10000,
                    help="the run's full budget (--epochs of train.py): sets the exploration decay")
    ap.add_argument("--eval-at", default="0,50,100,200",
                    help="comma-separated iterations to evaluate after ('' for none: timing only)")
    ap.add_argument("--warmup", type=int, default=0,
                    help="iterations at the start left out of ms_per_iter (they still train)")
    ap.add_argument("--discretizer", default="random", choices=("random", "uniform"),
                    help="training time grid (train.py's default is random, max ratio 10)")
    ap.add_argument("--no-langevin", action="store_true", help="VarGrad + Expl. without LP")
    ap.add_argument("--batch-size", type=int, default=300, help="images per iteration")
    ap.add_argument("--repeats", type=int, default=10, help="trajectories per image")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="CSV file for the curve")
    opt = ap.parse_args()

    ref = os.path.abspath(opt.ref)
    needed = ("models", "energies/vae.py", "energies/vae_utils.py", "utils.py", "gflownet_losses.py")
    if not os.path.isdir(ref) or not all(os.path.exists(os.path.join(ref, n)) for n in needed):
        sys.exit("torch_reference_vae.py: --ref %s is not the reference's vae directory (expected %s in it)"
                 % (opt.ref, ", ".join(needed)))
    eval_at = sorted({int(s) for s in opt.eval_at.split(",") if s.strip()})
    if opt.iters < 0 or any(e < 0 or e > opt.iters for e in eval_at):
        sys.exit("torch_reference_vae.py: --eval-at values must lie in [0, --iters]")
    if opt.warmup < 0 or opt.warmup >= max(opt.iters, 1):
        sys.exit("torch_reference_vae.py: --warmup must lie in [0, --iters)")

    import h5py
    import numpy as np
    import torch

    torch.set_num_threads(opt.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_reference import stub_optional_imports  # wandb, einops, ... when missing
    stub_optional_imports()
    stubbed = stub_torchvision()
    sys.path.insert(0, ref)
    from models import GFN  # the reference's modules
    from gflownet_losses import fwd_tb_avg_cond
    from utils import set_seed, get_gfn_optimizer, get_exploration_std, uniform_discretizer, random_discretizer
    from energies.vae import VAE
    from energies.vae_utils import log_standard_normal, log_bernoulli

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "analysis"))
    from vae_elbo import read_idx_images  # diffsamp's idx reader (analysis/vae_elbo.py)
    try:
        images = read_idx_images(opt.images).astype(np.float32)
    except (OSError, ValueError) as e:
        sys.exit("torch_reference_vae.py: %s" % e)
    for first, count, what in ((opt.train_first, opt.train_count, "train"), (opt.eval_first, opt.eval_count, "eval")):
        if first < 0 or count < 1 or first + count > images.shape[0]:
            sys.exit("torch_reference_vae.py: --%s-first/--%s-count outside the %d images of %s"
                     % (what, what, images.shape[0], opt.images))
    train_x = torch.from_numpy(images[opt.train_first:opt.train_first + opt.train_count].copy())
    eval_x = torch.from_numpy(images[opt.eval_first:opt.eval_first + opt.eval_count].copy())
    if opt.batch_size > train_x.shape[0]:
        sys.exit("torch_reference_vae.py: --batch-size %d exceeds the %d training images"
                 % (opt.batch_size, train_x.shape[0]))

    set_seed(opt.seed)
    vae = VAE()
    state = {}
    with h5py.File(opt.vae, "r") as f:
        for layer in ("fc1", "fc21", "fc22", "fc3", "fc4"):
            for p in ("weight", "bias"):
                state["%s.%s" % (layer, p)] = torch.from_numpy(np.asarray(f[layer][p], dtype=np.float32))
    vae.load_state_dict(state)
    for p in vae.parameters():
        p.requires_grad = False

    def log_reward(z, x):
        return log_standard_normal(z) + log_bernoulli(x, vae.decode(z))

    dim, T = 20, 100
    model = GFN(dim, 64, 64, 64, 64, trajectory_length=T, clipping=True, lgv_clip=1e2, gfn_clip=1e4,
                langevin=not opt.no_langevin, learned_variance=False, partial_energy=False, log_var_range=4.0,
                pb_scale_range=0.1, t_scale=5.0, langevin_scaling_per_dimension=False,
                conditional_flow_model=False, learn_pb=False, pis_architectures=True, lgv_layers=3,
                joint_layers=2, zero_init=True, device=torch.device("cpu"), energy="vae")
    optimizer = get_gfn_optimizer(model, 1e-3, 1e-1, 1e-3, False, False, False, 1e-7, "vae")
    if opt.discretizer == "random":
        train_grid = lambda bsz: random_discretizer(bsz, T, max_ratio=10.0)
    else:
        train_grid = lambda bsz: uniform_discretizer(bsz, T)

    def evaluate():
        model.eval()
        k = opt.eval_repeats
        cond = eval_x.repeat_interleave(k, dim=0)
        with torch.no_grad():
            states, logpf, logpb, _ = model.get_trajectory_fwd(torch.zeros(cond.shape[0], dim),
                                                               lambda bsz: uniform_discretizer(bsz, T), None,
                                                               log_reward, condition=cond)
            logw = (log_reward(states[:, -1], cond) + logpb.sum(-1) - logpf.sum(-1)).view(-1, k).double()
        model.train()
        elbo = logw.mean(1).mean().item()
        is_ll = (torch.logsumexp(logw, 1) - math.log(k)).mean().item()
        return elbo, is_ll

    lines = ["iteration,elbo,log_z_is,loss,seconds"]
    print("torch %s, %d thread(s), training grid %s, langevin %s, %d images x %d trajectories, seed %d%s"
          % (torch.__version__, torch.get_num_threads(), opt.discretizer, not opt.no_langevin, opt.batch_size,
             opt.repeats, opt.seed, ", torchvision stubbed" if stubbed else ""), flush=True)
    print(lines[0], flush=True)
    train_seconds = 0.0
    times = []
    loss = float("nan")
    model.train()
    for it in range(opt.iters + 1):
        if it in eval_at:
            elbo, is_ll = evaluate()
            lines.append("%d,%.6f,%.6f,%.6g,%.3f" % (it, elbo, is_ll, loss, train_seconds))
            print(lines[-1], flush=True)
            if opt.out:
                with open(opt.out, "w") as f:
                    f.write("\n".join(lines) + "\n")
        if it == opt.iters:
            break
        # One training iteration as train.py's train_step runs it without --both_ways: the
        # conditions, then cond-tb-avg's forward loss (VarGrad, baseline per image), backward, Adam.
        t0 = time.perf_counter()
        model.zero_grad()
        cond = train_x[torch.randperm(train_x.shape[0])[:opt.batch_size]]
        expl = get_exploration_std(it, True, opt.epochs, 0.1, True)
        loss_t = fwd_tb_avg_cond(torch.zeros(opt.batch_size, dim), model, log_reward, train_grid,
                                 exploration_std=expl, condition=cond, repeats=opt.repeats)
        loss_t.backward()
        optimizer.step()
        loss = loss_t.item()
        train_seconds += time.perf_counter() - t0
        if it >= opt.warmup:
            times.append(time.perf_counter() - t0)
    ms = 1e3 * sum(times) / max(len(times), 1)
    print("%d iterations timed after %d warm-up: %.1f ms/iteration (min %.1f), last loss %.6g"
          % (len(times), opt.warmup, ms, 1e3 * min(times) if times else float("nan"), loss), flush=True)
    print("RESULT case=vae_vargrad_expl_lp threads=%d ms_per_iter=%.3f" % (opt.threads, ms), flush=True)


if __name__ == "__main__":
    main()
