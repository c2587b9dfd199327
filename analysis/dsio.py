"""What the analysis scripts share: the sample-set reader, the paper's target
names, and everything about the energies, which comes from the diffsamp
program itself (never from a second implementation here).

  load_samples(path)             a sample set (samples.h5, a ground-truth file)
  target_of(config_text, ...)    (name, dim, keys) of a run's energy section
  exact_samples(exe, name, n, seed, dim, keys)
                                 n exact samples from `diffsamp ground-truth`
  known_log_z(exe, name, dim, keys)
                                 the target's log Z where the program knows it
  energies(exe)                  `diffsamp energies`: default dims, log Z
  find_diffsamp(explicit)        the program: --diffsamp PATH, else $DIFFSAMP,
                                 else build/diffsamp of this repository, else
                                 diffsamp on PATH

Exact samples are a function of (energy, its keys, seed) and the sample index
alone (the program's counter-based streams), so the first n of a larger set
are the same as a set of n, and rows [n, 2n) are independent of rows [0, n).
"""

import os
import shutil
import subprocess
import tempfile

import h5py
import numpy as np
import yaml

SAMPLES_FORMAT = "diffsamp-samples"
SAMPLES_FORMAT_VERSION = 1  # the newest layout these scripts understand

# diffsamp energy name -> the paper's target name (table1.csv), where it has one
PAPER_TARGET = {"25gmm": "25gmm", "hard_funnel": "funnel", "many_well": "manywell"}

# The 2-D grid mixtures: modes per axis of the square grid (the program's
# mode-grid hook, which the CLI does not print); the spacing is the energy's
# key energy.spacing, read from the effective config the program writes.
GRID_PER_AXIS = {"25gmm": 5, "9gmm": 3}

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DiffsampError(Exception):
    """The diffsamp program is missing or failed; the message says which and why."""


# ---- the program ------------------------------------------------------------

def add_diffsamp_option(parser):
    parser.add_argument("--diffsamp", metavar="PATH", default=None,
                        help="the diffsamp program (default: $DIFFSAMP, else build/diffsamp of this "
                             "repository, else diffsamp on PATH)")


def find_diffsamp(explicit=None):
    """Path of the diffsamp executable: explicit (a --diffsamp option), else
    $DIFFSAMP, else REPO_ROOT/build/diffsamp, else `diffsamp` on PATH. An
    explicit or environment path that is not an executable is an error (no
    silent fallback to another build). Raises DiffsampError naming what was
    tried."""
    for what, path in (("--diffsamp", explicit), ("$DIFFSAMP", os.environ.get("DIFFSAMP") or None)):
        if path is not None:
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
            raise DiffsampError("%s %s is not an executable file" % (what, path))
    tried = []
    local = os.path.join(REPO_ROOT, "build", "diffsamp")
    if os.path.isfile(local) and os.access(local, os.X_OK):
        return local
    tried.append(local)
    on_path = shutil.which("diffsamp")
    if on_path:
        return on_path
    tried.append("diffsamp on PATH")
    raise DiffsampError("cannot find the diffsamp program: tried --diffsamp (not given), $DIFFSAMP (not set), "
                        "%s; build it (make build) or pass --diffsamp PATH" % ", ".join(tried))


def _run(exe, args):
    """stdout of `exe args...`; DiffsampError with the program's message on failure."""
    try:
        p = subprocess.run([exe] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, check=False)
    except OSError as e:
        raise DiffsampError("cannot run %s: %s" % (exe, e))
    if p.returncode != 0:
        msg = p.stderr.strip() or p.stdout.strip() or "no message"
        raise DiffsampError("`%s %s` failed (exit %d): %s" % (exe, " ".join(args), p.returncode, msg))
    return p.stdout


_ENERGIES = {}


def energies(exe):
    """{name: {"dim": default dim, "log_z": float or None, "doc": str}}
    parsed from `diffsamp energies` (name, default dim, known log Z or
    'unknown', description)."""
    if exe not in _ENERGIES:
        out = {}
        for line in _run(exe, ["energies"]).splitlines():
            parts = line.split(None, 3)
            if len(parts) < 3:
                continue
            try:
                dim = int(parts[1])
                lz = None if parts[2] == "unknown" else float(parts[2])
            except ValueError:
                raise DiffsampError("`%s energies`: cannot read the line '%s'" % (exe, line))
            out[parts[0]] = {"dim": dim, "log_z": lz, "doc": parts[3] if len(parts) > 3 else ""}
        if not out:
            raise DiffsampError("`%s energies` listed no energies" % exe)
        _ENERGIES[exe] = out
    return _ENERGIES[exe]


# ---- energy sections --------------------------------------------------------

def _yaml_value(v):
    """A config value as --set writes it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (int, str)):
        return str(v)
    raise ValueError("energy key value %r is not a scalar; --set cannot pass it" % (v,))


def energy_section(config_text):
    """The energy: section of a config (YAML text) as a dict ({} when absent)."""
    if not config_text:
        return {}
    try:
        cfg = yaml.safe_load(config_text) or {}
    except yaml.YAMLError as e:
        raise ValueError("cannot parse the config: %s" % e)
    if not isinstance(cfg, dict):
        raise ValueError("the config is not a YAML mapping")
    section = cfg.get("energy") or {}
    if not isinstance(section, dict):
        raise ValueError("the config's energy section is not a mapping")
    return section


def target_of(config_text, name=None, dim=None):
    """(name, dim, keys) of the energy a config describes: keys are the
    family's own keys of its energy section (e.g. 25gmm's spacing and
    variance), everything but name and dim. name and dim, where given (a
    sample set's energy and dim attributes), take precedence; dim 0 means the
    energy's default."""
    section = energy_section(config_text)
    if name is not None and section.get("name") not in (None, name):
        raise ValueError("energy '%s' but the config's energy section is of '%s'" % (name, section["name"]))
    name = name if name is not None else section.get("name")
    if name is None:
        raise ValueError("no energy name (the config has no energy.name)")
    if dim is None:
        dim = int(section.get("dim", 0) or 0)
    keys = {k: v for k, v in section.items() if k not in ("name", "dim")}
    return str(name), int(dim), keys


def settings(name, dim=0, keys=None, seed=None):
    """The diffsamp arguments selecting this target (and seed)."""
    args = ["--energy", str(name)]
    if dim:
        args += ["--set", "energy.dim=%d" % dim]
    for k, v in sorted((keys or {}).items()):
        args += ["--set", "energy.%s=%s" % (k, _yaml_value(v))]
    if seed is not None:
        args += ["--set", "train.seed=%d" % seed]
    return args


def parse_sets(items):
    """{key: value} from --set energy.KEY=VALUE strings (values as YAML scalars)."""
    keys = {}
    for item in items or []:
        k, sep, v = item.partition("=")
        if not sep or not k.startswith("energy.") or k.count(".") != 1 or not k[7:]:
            raise ValueError("--set '%s': expected energy.KEY=VALUE" % item)
        keys[k[7:]] = yaml.safe_load(v) if v.strip() else v
    return keys


# ---- exact samples ----------------------------------------------------------

_EXACT = {}


def exact_samples(exe, name, n, seed=0, dim=0, keys=None):
    """n exact samples of the target (name, dim, keys) with train.seed =
    seed, from `diffsamp ground-truth` into a temporary file. Returns the
    load_samples dict of that file plus log_z_true (None when the program
    knows no log Z) and config (the program's effective config, whose energy
    section holds every key with its default). Cached per argument set within
    the process."""
    if n < 1:
        raise ValueError("exact_samples: n must be >= 1, got %d" % n)
    args = settings(name, dim, keys, seed)
    key = (exe, n, tuple(args))
    if key not in _EXACT:
        with tempfile.TemporaryDirectory(prefix="diffsamp-gt-") as d:
            path = os.path.join(d, "ground_truth.h5")
            _run(exe, ["ground-truth"] + args + ["-n", str(n), "-o", path])
            s = load_samples(path)
        if s["x"].shape[0] != n:
            raise DiffsampError("`diffsamp ground-truth -n %d` wrote %d samples" % (n, s["x"].shape[0]))
        s["log_z_true"] = s["metrics"].get("log_z_true")
        _EXACT[key] = s
    return _EXACT[key]


def known_log_z(exe, name, dim=0, keys=None):
    """log Z of the target as the program knows it (None where it does not):
    from `diffsamp energies` for a default target, else from the log_z_true
    attribute of a one-sample ground-truth file."""
    if not keys:
        table = energies(exe)
        if name in table and dim in (0, table[name]["dim"]):
            return table[name]["log_z"]
    return exact_samples(exe, name, 1, 0, dim, keys)["log_z_true"]


# ---- sample sets ------------------------------------------------------------

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


def target_of_samples(s):
    """(name, dim, keys) of a load_samples dict: its energy and dim
    attributes and the energy section of its config attribute."""
    return target_of(s["config"], s["energy"], s["dim"])
