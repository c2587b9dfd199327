"""An independent numpy implementation of diffsamp's energies, for tests only.

tests/cli_analysis.sh checks with it that the C program's /log_reward of
`diffsamp ground-truth` files equals these log densities at /x (same
normalisation) and that log_z_true equals log_z here. The analysis scripts
never use it: they get everything about the energies from the program.

  25gmm        25 equal-weight Gaussians on spacing * {-2..2}^2, variance 0.3
  9gmm         9 equal-weight Gaussians on spacing * {-1,0,1}^2, std 0.5477222
  easy_funnel  x0 ~ N(0, s^2), s = x0_std = 1, x_i | x0 ~ N(0, exp(x0)), d = 10
  hard_funnel  the same with x0_std = 3
  many_well    d/2 pairs (a, b): log R = -a^4 + 6a^2 + a/2 - b^2/2 (unnormalised),
               a = x_{2p} (the double-well coordinate), b = x_{2p+1}, d = 32
  gaussian     mu_j = 0.5((j%3)-1), s_j = 0.75+0.25(j%4), unnormalised, d = 4
Energy keys (as `--set energy.KEY=V`) are passed as a dict: spacing, variance
(25gmm), spacing, std (9gmm), x0_std (funnels).
"""

import math

import numpy as np

_LOG_2PI = math.log(2.0 * math.pi)


def gmm_params(name, keys=None):
    """(means (M, 2), std, spacing) of the 9gmm or 25gmm mixture."""
    keys = keys or {}
    spacing = float(keys.get("spacing", 5.0))
    if name == "25gmm":
        per_axis, std = 5, math.sqrt(float(keys.get("variance", 0.3)))
    elif name == "9gmm":
        per_axis, std = 3, float(keys.get("std", 0.5477222))
    else:
        raise ValueError("not a Gaussian mixture: %s" % name)
    grid = spacing * (np.arange(per_axis) - per_axis // 2)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], axis=1), std, spacing


def _gmm_log_density(name, x, keys):
    mu, std, _ = gmm_params(name, keys)
    r2 = ((x[:, None, :] - mu[None, :, :]) ** 2).sum(axis=2)  # (n, M)
    lp = -0.5 * r2 / std ** 2
    mx = lp.max(axis=1, keepdims=True)
    lse = mx[:, 0] + np.log(np.exp(lp - mx).sum(axis=1))
    return lse - math.log(mu.shape[0]) - (_LOG_2PI + 2.0 * math.log(std))


def funnel_scale(name, keys=None):
    return float((keys or {}).get("x0_std", 1.0 if name == "easy_funnel" else 3.0))


def _funnel_log_density(name, x, keys):
    s = funnel_scale(name, keys)
    d = x.shape[1]
    x0 = x[:, 0]
    s2 = (x[:, 1:] ** 2).sum(axis=1)
    return (-0.5 * x0 ** 2 / s ** 2 - math.log(s) - 0.5 * d * _LOG_2PI
            - 0.5 * (d - 1) * x0 - 0.5 * np.exp(-x0) * s2)


def many_well_g(a):
    """Unnormalised log density of one double-well coordinate."""
    return -a ** 4 + 6.0 * a ** 2 + 0.5 * a


def many_well_first(grid_points=400001):
    """(grid, normalised density) of one double-well coordinate on [-5, 5]
    (exp(g) is below 1e-170 of its peak outside), and its log Z1, by the
    trapezoidal rule."""
    a = np.linspace(-5.0, 5.0, grid_points)
    g = many_well_g(a)
    p = np.exp(g - g.max())
    z = float(np.sum(0.5 * (p[1:] + p[:-1]) * np.diff(a)))
    return a, p / z, math.log(z) + g.max()


def gaussian_params(dim):
    j = np.arange(dim)
    return 0.5 * ((j % 3) - 1), 0.75 + 0.25 * (j % 4)


def log_density(name, x, keys=None):
    """log R(x) of energy `name` with its keys for x (n, d), as the C energy."""
    x = np.asarray(x, dtype=np.float64)
    if name in ("9gmm", "25gmm"):
        return _gmm_log_density(name, x, keys)
    if name in ("easy_funnel", "hard_funnel"):
        return _funnel_log_density(name, x, keys)
    if name == "many_well":
        a, b = x[:, 0::2], x[:, 1::2]
        return (many_well_g(a) - 0.5 * b ** 2).sum(axis=1)
    if name == "gaussian":
        mu, s = gaussian_params(x.shape[1])
        return -0.5 * (((x - mu) / s) ** 2).sum(axis=1)
    raise ValueError("unknown energy '%s'" % name)


def log_z(name, dim):
    """Known log Z of the energy (the normalised ones have 0)."""
    if name == "many_well":
        return 0.5 * dim * (many_well_first()[2] + 0.5 * _LOG_2PI)
    if name == "gaussian":
        return float(np.sum(np.log(math.sqrt(2.0 * math.pi) * gaussian_params(dim)[1])))
    return 0.0
