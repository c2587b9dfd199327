/* vae: the variational autoencoder of the paper's VAE experiment (Kingma &
 * Welling 2014, as in gfn-diffusion's vae/energies/vae.py), in double:
 *
 *   encoder  h1 = relu(fc1 x),  mu = fc21 h1,  logvar = fc22 h1
 *   decoder  h3 = relu(fc3 z),  p = sigmoid(fc4 h3)
 *
 * with x_dim 784, hidden 400, z_dim 20 for MNIST. Weights are PyTorch's
 * (out, in). One flat double array holds every parameter (the offsets of
 * the ten tensors are in ds_vae.off), so Adam and the file are one loop.
 *
 * File layout (that of ../shared/data/mnist/vae_bce_mnist_100ep.h5): the
 * datasets fc1/weight (hidden, x_dim), fc1/bias (hidden), fc21/weight and
 * fc22/weight (z_dim, hidden), fc21/bias and fc22/bias (z_dim), fc3/weight
 * (hidden, z_dim), fc3/bias (hidden), fc4/weight (x_dim, hidden), fc4/bias
 * (x_dim), float32 or float64; sizes are read from the shapes, which must
 * agree with one another. Other datasets (reference_values/) are ignored.
 *
 * Posterior target of a trained VAE (DESIGN.md's conditional energies):
 *   log R(z; x) = log N(z; 0, I) + sum_j [x_j log p_j + (1 - x_j) log(1 - p_j)],
 *   p = clamp(decoder(z), 1e-5, 1 - 1e-5)
 * (torch.clamp: no gradient through a clamped pixel). */
#ifndef DS_VAE_H
#define DS_VAE_H

#include "diffsamp/core.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DS_VAE_EPS 1e-5

enum { DS_VAE_FC1_W = 0, DS_VAE_FC1_B, DS_VAE_FC21_W, DS_VAE_FC21_B, DS_VAE_FC22_W, DS_VAE_FC22_B,
       DS_VAE_FC3_W, DS_VAE_FC3_B, DS_VAE_FC4_W, DS_VAE_FC4_B, DS_VAE_NTENSOR };

typedef struct ds_vae {
    int x_dim, hidden, z_dim;
    size_t n;                      /* parameters in all */
    double *theta;                 /* (n) */
    size_t off[DS_VAE_NTENSOR];    /* offset of each tensor in theta */
} ds_vae;

/* The dataset name ("fc1/weight", ...) of tensor t. */
const char *ds_vae_tensor_name(int t);
/* (rows, cols) of tensor t (a bias is (rows, 1)). */
void ds_vae_tensor_shape(const ds_vae *v, int t, int *rows, int *cols);

/* A VAE of the given sizes with zero parameters. */
ds_status ds_vae_create(int x_dim, int hidden, int z_dim, ds_vae **out);
void ds_vae_destroy(ds_vae **v);
/* PyTorch's default Linear initialisation (uniform +-1/sqrt(fan_in)) from seed. */
void ds_vae_init(ds_vae *v, uint64_t seed);
static inline double *ds_vae_param(const ds_vae *v, int t) { return v->theta + v->off[t]; }

/* Reads a VAE from an HDF5 file (serial, any process). DS_ERR_IO when the
 * file cannot be opened, DS_ERR_FORMAT naming the dataset when one is
 * missing, has the wrong rank or a shape that disagrees with the others, or
 * holds a non-finite number. */
ds_status ds_vae_load(const char *path, ds_vae **out);
/* Writes v to path (float32 datasets, the layout above) with a root
 * `description` attribute; through "<path>.tmp" and a rename. */
ds_status ds_vae_save(const ds_vae *v, const char *path, const char *description);

/* Scratch of the batched passes: rows at a time (no allocation after create). */
typedef struct ds_vae_work {
    int cap;
    double *z, *x, *pre3, *h3, *a4, *p, *ga, *gh, *gz, *dh, *da, *v;
} ds_vae_work;
ds_status ds_vae_work_create(const ds_vae *v, int cap, ds_vae_work **out);
void ds_vae_work_destroy(ds_vae_work **w);

/* Posterior target, in double, n rows of z (n, z_dim) with images x
 * (n, x_dim): log_r (n); grad (n, z_dim) when not NULL. Processes w->cap
 * rows at a time. */
void ds_vae_log_posterior(const ds_vae *v, ds_vae_work *w, int n, const double *z, const double *x,
                          double *log_r, double *grad);
/* Hessian of log R(z; x) in z times dz, per row: hv (n, z_dim). ReLU's
 * second derivative is 0 (almost everywhere), as autograd has it. */
void ds_vae_posterior_hvp(const ds_vae *v, ds_vae_work *w, int n, const double *z, const double *x,
                          const double *dz, double *hv);

/* The decoder in float with its scratch (vae_float.c): log R(z; x) and its
 * z-gradient for the sampler's hot loops, in float like the reference's
 * torch code. The products run through smm.c's kernel (sgemm where it does
 * not apply), the pixel pass is vectorised in the logit (one exp and one log
 * per pixel), each row's sum is kept in double.
 * Agrees with the double path to float rounding: measured 1e-7 relative
 * on log R and 1e-6 on the gradient (tests/test_vae.c allows 5e-7 and
 * 2e-5); a
 * pixel within rounding of the clamp may fall on the other side of it. */
typedef struct ds_vae_f {
    int x_dim, hidden, z_dim, cap;
    float *w3, *b3, *w4, *b4;   /* fc3 (hidden, z_dim), fc4 (x_dim, hidden), PyTorch's layout */
    float *w3t, *w4t;           /* their transposes (z_dim, hidden), (hidden, x_dim) */
    float *h3, *mask, *a4, *ga, *gh, *gz; /* cap rows of scratch (mask: relu' of the hidden layer) */
} ds_vae_f;
ds_status ds_vae_f_create(const ds_vae *v, int cap, ds_vae_f **out);
void ds_vae_f_destroy(ds_vae_f **f);
/* n rows of z (n, z_dim), images x (n, x_dim): log_r (n); grad (n, z_dim)
 * when not NULL; f->cap rows at a time, no allocation. */
void ds_vae_log_posterior_f(ds_vae_f *f, int n, const float *z, const float *x, float *log_r, float *grad);

/* ---- training (vae_train.c) -------------------------------------------------
 * The loss of gfn-diffusion's vae/energies/vae.py: for a batch of images x
 * (m, x_dim) and standard normals eps (m, z_dim),
 *   z = mu + exp(logvar / 2) eps,
 *   BCE = -sum [x log p + (1 - x) log(1 - p)], p = sigmoid(fc4 h3), computed
 *         from the logits (log p = -softplus(-a)), which matches torch's
 *         binary_cross_entropy but where it clamps log p at -100,
 *   KL  = -1/2 sum (1 + logvar - mu^2 - exp(logvar)),
 * summed over the batch (reduction 'sum'). */
typedef struct ds_vae_train_work {
    int cap;
    double *pre1, *h1, *mu, *lv, *z, *pre3, *h3, *a4, *da4, *dh3, *dz, *dmu, *dlv, *dh1;
} ds_vae_train_work;
ds_status ds_vae_train_work_create(const ds_vae *v, int cap, ds_vae_train_work **out);
void ds_vae_train_work_destroy(ds_vae_train_work **w);
/* bce and kl (sums over the m <= cap rows); when grad != NULL, adds
 * d (bce + kl) / d theta into grad (n). */
void ds_vae_loss(const ds_vae *v, ds_vae_train_work *w, int m, const double *x, const double *eps, double *bce,
                 double *kl, double *grad);

/* Adam exactly as torch.optim.Adam (no weight decay) on theta. */
typedef struct ds_vae_adam {
    double lr, beta1, beta2, eps;
    long step;
    double *m, *v; /* (n) */
} ds_vae_adam;
ds_status ds_vae_adam_init(ds_vae_adam *a, size_t n, double lr);
void ds_vae_adam_step(ds_vae_adam *a, ds_vae *v, const double *grad);
void ds_vae_adam_free(ds_vae_adam *a);

/* diffsamp vae-train: training on an idx image set. */
typedef struct ds_vae_train_opts {
    const char *train_images, *test_images; /* idx files (pixels / 255) */
    long subset;                            /* first images of the training set; 0 = all */
    int epochs, batch, hidden, z_dim;
    double lr;
    uint64_t seed;
    const char *out;                        /* the HDF5 file written after every epoch */
} ds_vae_train_opts;
/* Trains and writes opts->out after every epoch; one progress line per
 * epoch on log: mean training loss per image and the test-set ELBO per image
 * (one z sample per image). final_loss / final_elbo (may be NULL) get the
 * last epoch's numbers. */
ds_status ds_vae_train(const ds_vae_train_opts *opts, FILE *log, double *final_loss, double *final_elbo);

#endif
