"""Targets of diffsamp in numpy: exact samplers and log-densities, and the
sample-set reader shared by the analysis scripts.

The densities match energies/*.c exactly (same normalisation, so log_reward
here equals the /log_reward dataset of a sample set up to float rounding):
  25gmm        25 equal-weight Gaussians at {-10,-5,0,5,10}^2, covariance 0.3 I
  9gmm         9 equal-weight Gaussians at {-5,0,5}^2, std 0.5477222
  easy_funnel  x0 ~ N(0, 1),   x_i | x0 ~ N(0, exp(x0)), d = 10
  hard_funnel  x0 ~ N(0, 3^2), x_i | x0 ~ N(0, exp(x0)), d = 10
  many_well    d/2 pairs (a, b): log R = -a^4 + 6a^2 + a/2 - b^2/2 (unnormalised),
               a = x_{2p} (the double-well coordinate), b = x_{2p+1}, d = 32
  gaussian     mu_j = 0.5((j%3)-1), s_j = 0.75+0.25(j%4), unnormalised, d = 4
Exact samples come from numpy's generator (not the C program's Philox
streams), so they are independent of the program's ground-truth samples.
"""

import math

import h5py
import numpy as np

SAMPLES_FORMAT = "diffsamp-samples"
SAMPLES_FORMAT_VERSION = 1  # the newest layout these scripts understand

# name -> (default dimension, known log Z or None)
DEFAULT_DIM = {
    "9gmm": 2,
    "25gmm": 2,
    "easy_funnel": 10,
    "hard_funnel": 10,
    "many_well": 32,
    "gaussian": 4,
}

# diffsamp energy name -> the paper's target name (table1.csv), where it has one
PAPER_TARGET = {"25gmm": "25gmm", "hard_funnel": "funnel", "many_well": "manywell"}

_LOG_2PI = math.log(2.0 * math.pi)


def known_energies():
    return sorted(DEFAULT_DIM)


def _check(name, dim):
    if name not in DEFAULT_DIM:
        raise ValueError("unknown energy '%s'; known: %s" % (name, ", ".join(known_energies())))
    if dim is None or dim == 0:
        dim = DEFAULT_DIM[name]
    if name in ("9gmm", "25gmm") and dim != 2:
        raise ValueError("%s is 2-dimensional, got dim %d" % (name, dim))
    if name == "many_well" and dim % 2 != 0:
        raise ValueError("many_well needs an even dimension, got %d" % dim)
    return dim


# ---- Gaussian mixtures ------------------------------------------------------

def gmm_params(name):
    """(means (M, 2), std) of the 9gmm or 25gmm mixture."""
    if name == "25gmm":
        grid, std = np.array([-10.0, -5.0, 0.0, 5.0, 10.0]), math.sqrt(0.3)
    elif name == "9gmm":
        grid, std = np.array([-5.0, 0.0, 5.0]), 0.5477222
    else:
        raise ValueError("not a Gaussian mixture: %s" % name)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], axis=1), std


def _gmm_log_density(name, x):
    mu, std = gmm_params(name)
    r2 = ((x[:, None, :] - mu[None, :, :]) ** 2).sum(axis=2)  # (n, M)
    lp = -0.5 * r2 / std ** 2
    mx = lp.max(axis=1, keepdims=True)
    lse = mx[:, 0] + np.log(np.exp(lp - mx).sum(axis=1))
    return lse - math.log(mu.shape[0]) - 0.5 * 2 * (_LOG_2PI + 2.0 * math.log(std))


def _gmm_sample(name, n, rng):
    mu, std = gmm_params(name)
    m = rng.integers(0, mu.shape[0], size=n)
    return mu[m] + std * rng.standard_normal((n, 2))


# ---- funnels ----------------------------------------------------------------

def funnel_scale(name):
    return 1.0 if name == "easy_funnel" else 3.0


def _funnel_log_density(name, x):
    s = funnel_scale(name)
    d = x.shape[1]
    x0 = x[:, 0]
    s2 = (x[:, 1:] ** 2).sum(axis=1)
    return (-0.5 * x0 ** 2 / s ** 2 - math.log(s) - 0.5 * d * _LOG_2PI
            - 0.5 * (d - 1) * x0 - 0.5 * np.exp(-x0) * s2)


def _funnel_sample(name, n, dim, rng):
    x0 = funnel_scale(name) * rng.standard_normal(n)
    rest = np.exp(0.5 * x0)[:, None] * rng.standard_normal((n, dim - 1))
    return np.concatenate([x0[:, None], rest], axis=1)


# ---- many well --------------------------------------------------------------

def many_well_g(a):
    """Unnormalised log density of one double-well coordinate."""
    return -a ** 4 + 6.0 * a ** 2 + 0.5 * a


_MW_GRID = None


def _mw_grid():
    """(grid, cdf, log Z1) of the double-well coordinate on [-5, 5]; exp(g)
    is below 1e-170 of its peak outside, so nothing is lost."""
    global _MW_GRID
    if _MW_GRID is None:
        a = np.linspace(-5.0, 5.0, 400001)
        g = many_well_g(a)
        p = np.exp(g - g.max())
        h = a[1] - a[0]
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * h)])
        log_z1 = math.log(cdf[-1]) + g.max()
        _MW_GRID = (a, cdf / cdf[-1], log_z1)
    return _MW_GRID


def many_well_log_z1():
    return _mw_grid()[2]


def many_well_first_log_pdf(a):
    """Normalised log density of one double-well coordinate."""
    return many_well_g(a) - many_well_log_z1()


def _mw_log_density(x):
    a, b = x[:, 0::2], x[:, 1::2]
    return (many_well_g(a) - 0.5 * b ** 2).sum(axis=1)


def _mw_sample(n, dim, rng):
    grid, cdf, _ = _mw_grid()
    x = np.empty((n, dim))
    # inverse CDF, linear between grid points (step 2.5e-5)
    x[:, 0::2] = np.interp(rng.random((n, dim // 2)), cdf, grid)
    x[:, 1::2] = rng.standard_normal((n, dim // 2))
    return x


# ---- diagonal Gaussian ------------------------------------------------------

def gaussian_params(dim):
    j = np.arange(dim)
    return 0.5 * ((j % 3) - 1), 0.75 + 0.25 * (j % 4)


def _gaussian_log_density(x):
    mu, s = gaussian_params(x.shape[1])
    return -0.5 * (((x - mu) / s) ** 2).sum(axis=1)


# ---- public interface -------------------------------------------------------

def log_density(name, x):
    """log R(x) of energy `name` for x (n, d), exactly as the C energy."""
    x = np.asarray(x, dtype=np.float64)
    _check(name, x.shape[1])
    if name in ("9gmm", "25gmm"):
        return _gmm_log_density(name, x)
    if name in ("easy_funnel", "hard_funnel"):
        return _funnel_log_density(name, x)
    if name == "many_well":
        return _mw_log_density(x)
    return _gaussian_log_density(x)


def log_z(name, dim=None):
    """Known log Z of the energy (the normalised ones have 0)."""
    dim = _check(name, dim)
    if name == "many_well":
        return 0.5 * dim * (many_well_log_z1() + 0.5 * _LOG_2PI)
    if name == "gaussian":
        return float(np.sum(np.log(math.sqrt(2.0 * math.pi) * gaussian_params(dim)[1])))
    return 0.0


def sample(name, n, dim=None, rng=None):
    """n exact samples (n, d) of energy `name` (dim 0/None = the default)."""
    dim = _check(name, dim)
    if rng is None:
        rng = np.random.default_rng()
    if name in ("9gmm", "25gmm"):
        return _gmm_sample(name, n, rng)
    if name in ("easy_funnel", "hard_funnel"):
        return _funnel_sample(name, n, dim, rng)
    if name == "many_well":
        return _mw_sample(n, dim, rng)
    mu, s = gaussian_params(dim)
    return mu + s * rng.standard_normal((n, dim))


def _attr_str(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _attr_str(v[()])
    return str(v)


def load_samples(path):
    """Reads a diffsamp sample set (read-only). Returns a dict with x (N, d)
    float64, log_reward/log_pf/log_pb/log_weight (N) float64 where present,
    energy, dim, config (YAML text), format_version and metrics (the other
    numeric root attributes). Raises ValueError for a file of another format
    or a newer format_version."""
    with h5py.File(path, "r") as f:
        fmt = _attr_str(f.attrs.get("format", ""))
        if fmt != SAMPLES_FORMAT:
            raise ValueError("%s is not a diffsamp sample set: format attribute is '%s', expected '%s'"
                             % (path, fmt, SAMPLES_FORMAT))
        version = int(f.attrs.get("format_version", 0))
        if version > SAMPLES_FORMAT_VERSION:
            raise ValueError("%s has format_version %d; these scripts read up to %d (update analysis/)"
                             % (path, version, SAMPLES_FORMAT_VERSION))
        if "x" not in f:
            raise ValueError("%s has no /x dataset" % path)
        out = {
            "x": np.asarray(f["x"][()], dtype=np.float64),
            "energy": _attr_str(f.attrs["energy"]),
            "dim": int(f.attrs["dim"]),
            "config": _attr_str(f.attrs.get("config", "")),
            "format_version": version,
        }
        for key in ("log_reward", "log_pf", "log_pb", "log_weight"):
            if key in f:
                out[key] = np.asarray(f[key][()], dtype=np.float64)
        reserved = {"format", "format_version", "config", "code_version", "library_versions",
                    "precision", "energy", "dim", "n_samples"}
        metrics = {}
        for key, v in f.attrs.items():
            if key in reserved:
                continue
            try:
                metrics[key] = float(v)
            except (TypeError, ValueError):
                pass
        out["metrics"] = metrics
    if out["x"].ndim != 2 or out["x"].shape[1] != out["dim"]:
        raise ValueError("%s: /x has shape %s, expected (N, %d)" % (path, out["x"].shape, out["dim"]))
    return out
