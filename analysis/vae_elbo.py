#!/usr/bin/python3
"""The VAE's own encoder on the evaluation images: the scale for a posterior sampler.

Usage:
    /usr/bin/python3 analysis/vae_elbo.py ../shared/data/mnist/vae_bce_mnist_100ep.h5 \
        ../shared/data/mnist/t10k-images-idx3-ubyte.gz --first 0 --count 100 --samples 100

For each image x of [first, first + count) of an idx file (pixels / 255), draws
--samples latents z ~ q(z | x) from the VAE's Gaussian encoder (fc1, fc21 =
mean, fc22 = log-variance, in the layout `diffsamp vae-train` writes and the
`vae` energy reads) and weighs each by log R(z; x) - log q(z | x), where
log R(z; x) = log N(z; 0, I) + sum_pixels [x log p + (1 - x) log(1 - p)],
p = clamp(decoder(z), 1e-5, 1 - 1e-5) is the target of diffsamp's VAE runs.
Prints, as means over the images, the encoder's ELBO (mean log weight) and
its importance-weighted log p(x) (log-mean-exp over the image's samples):
the same two numbers as a conditional run's `elbo` and `log_z_is`, with the
amortised Gaussian encoder in place of the diffusion sampler. Everything is
in double precision. The last line is machine-readable:
    RESULT images=<n> samples=<K> elbo=<mean> log_p_is=<mean>
"""

import argparse
import gzip
import sys
import zlib

import numpy as np


LOG_2PI = np.log(2.0 * np.pi)
EPS = 1e-5


def read_idx_images(path):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (EOFError, OSError, zlib.error) as e:  # truncated or corrupt gzip, unreadable file
        raise ValueError("%s is damaged or truncated (%s)" % (path, e))
    if len(raw) < 16 or int.from_bytes(raw[0:4], "big") != 0x00000803:
        raise ValueError("%s is not an idx image file (magic 0x00000803)" % path)
    n, rows, cols = (int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(3))
    if len(raw) != 16 + n * rows * cols:
        raise ValueError("%s is truncated: %d images of %dx%d need %d bytes, it has %d"
                         % (path, n, rows, cols, 16 + n * rows * cols, len(raw)))
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows * cols).astype(np.float64) / 255.0


def read_vae(path):
    import h5py
    layers = {}
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError("%s: not a readable HDF5 file (%s)" % (path, e))
    with f:
        for name in ("fc1", "fc21", "fc22", "fc3", "fc4"):
            for part in ("weight", "bias"):
                key = "%s/%s" % (name, part)
                if key not in f:
                    raise ValueError("%s has no dataset /%s (the encoder and decoder layout of "
                                     "`diffsamp vae-train`)" % (path, key))
            try:
                layers[name] = (np.asarray(f[name]["weight"], dtype=np.float64),
                                np.asarray(f[name]["bias"], dtype=np.float64))
            except OSError as e:
                raise ValueError("%s: /%s cannot be read (%s)" % (path, name, e))
            if layers[name][0].ndim != 2 or layers[name][1].ndim != 1:
                raise ValueError("%s: /%s/weight must be 2-D and /%s/bias 1-D" % (path, name, name))
    pixels = layers["fc1"][0].shape[1]
    latent = layers["fc21"][0].shape[0]
    hidden = layers["fc1"][0].shape[0]
    shapes = {"fc1": (hidden, pixels), "fc21": (latent, hidden), "fc22": (latent, hidden),
              "fc3": (hidden, latent), "fc4": (pixels, hidden)}
    for name, shape in shapes.items():
        w, b = layers[name]
        if w.shape != shape or b.shape != (shape[0],):
            raise ValueError("%s: /%s/weight is %s and /%s/bias %s; expected %s and (%d,)"
                             % (path, name, w.shape, name, b.shape, shape, shape[0]))
    return layers, pixels, latent


def linear(layer, x):
    w, b = layer
    return x @ w.T + b


def log_reward(layers, z, x):
    """log N(z; 0, I) + the clamped Bernoulli log-likelihood, rows of z with rows of x."""
    p = 1.0 / (1.0 + np.exp(-linear(layers["fc4"], np.maximum(linear(layers["fc3"], z), 0.0))))
    p = np.clip(p, EPS, 1.0 - EPS)
    prior = -0.5 * (z.shape[1] * LOG_2PI + (z * z).sum(1))
    return prior + (x * np.log(p) + (1.0 - x) * np.log(1.0 - p)).sum(1)


def encoder_estimates(layers, images, samples, rng):
    """Per image: (ELBO, importance-weighted log p(x)) over `samples` encoder draws."""
    h = np.maximum(linear(layers["fc1"], images), 0.0)
    mu, logvar = linear(layers["fc21"], h), linear(layers["fc22"], h)
    elbo = np.empty(images.shape[0])
    log_p = np.empty(images.shape[0])
    for i in range(images.shape[0]):
        eps = rng.standard_normal((samples, mu.shape[1]))
        z = mu[i] + np.exp(0.5 * logvar[i]) * eps
        log_q = -0.5 * (mu.shape[1] * LOG_2PI + logvar[i].sum() + (eps * eps).sum(1))
        w = log_reward(layers, z, np.broadcast_to(images[i], (samples, images.shape[1]))) - log_q
        elbo[i] = w.mean()
        m = w.max()
        log_p[i] = m + np.log(np.mean(np.exp(w - m)))
    return elbo, log_p


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("vae", help="the VAE (HDF5, the layout of `diffsamp vae-train`)")
    p.add_argument("images", help="idx image file (plain or gzip)")
    p.add_argument("--first", type=int, default=0, help="first image (default 0)")
    p.add_argument("--count", type=int, default=100, help="number of images (default 100)")
    p.add_argument("--samples", type=int, default=100, help="encoder samples per image (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    args = p.parse_args(argv)
    try:
        layers, pixels, latent = read_vae(args.vae)
        images = read_idx_images(args.images)
    except (OSError, ValueError) as e:
        print("vae_elbo.py: %s" % e, file=sys.stderr)
        return 1
    if images.shape[1] != pixels:
        print("vae_elbo.py: %s has %d pixels per image, the VAE %s takes %d"
              % (args.images, images.shape[1], args.vae, pixels), file=sys.stderr)
        return 1
    if args.first < 0 or args.count < 1 or args.first + args.count > images.shape[0] or args.samples < 1:
        print("vae_elbo.py: images [%d, %d) outside the %d of %s, or --samples < 1"
              % (args.first, args.first + args.count, images.shape[0], args.images), file=sys.stderr)
        return 2
    x = images[args.first:args.first + args.count]
    elbo, log_p = encoder_estimates(layers, x, args.samples, np.random.default_rng(args.seed))
    print("VAE %s (latent %d), images %d..%d of %s, %d encoder samples each"
          % (args.vae, latent, args.first, args.first + args.count - 1, args.images, args.samples))
    print("  encoder ELBO            %.4f per image (mean over images; std over images %.2f)"
          % (elbo.mean(), elbo.std()))
    print("  IS log p(x), K = %-6d %.4f per image" % (args.samples, log_p.mean()))
    print("RESULT images=%d samples=%d elbo=%.6f log_p_is=%.6f" % (x.shape[0], args.samples, elbo.mean(),
                                                                    log_p.mean()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
