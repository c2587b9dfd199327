/* vae_train: the VAE's BCE + KL loss with its exact gradient, torch's Adam,
 * and the training loop of `diffsamp vae-train` (vae.h). */
#include "diffsamp/vae.h"

#include "diffsamp/blas.h"

#include "diffsamp/idx.h"
#include "diffsamp/rng.h"

#include <cblas.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

ds_status ds_vae_train_work_create(const ds_vae *v, int cap, ds_vae_train_work **out)
{
    DS_CHECK(v && out && cap >= 1, DS_ERR_INVALID, "ds_vae_train_work_create: bad arguments");
    *out = NULL;
    ds_vae_train_work *w = calloc(1, sizeof *w);
    DS_ALLOC_CHECK(w);
    w->cap = cap;
    const size_t c = (size_t)cap, X = (size_t)v->x_dim, H = (size_t)v->hidden, Z = (size_t)v->z_dim;
    double **views[] = {&w->pre1, &w->h1, &w->mu, &w->lv, &w->z, &w->pre3, &w->h3,
                        &w->a4, &w->da4, &w->dh3, &w->dz, &w->dmu, &w->dlv, &w->dh1};
    const size_t sizes[] = {c * H, c * H, c * Z, c * Z, c * Z, c * H, c * H, c * X, c * X, c * H, c * Z, c * Z, c * Z,
                            c * H};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *views[i] = ds_calloc(sizes[i], sizeof(double));
        if (!*views[i]) {
            ds_vae_train_work_destroy(&w);
            DS_CHECK(0, DS_ERR_NOMEM, "out of memory for the VAE training workspace of %d rows", cap);
        }
    }
    *out = w;
    return DS_OK;
}

void ds_vae_train_work_destroy(ds_vae_train_work **wp)
{
    if (!wp || !*wp) return;
    ds_vae_train_work *w = *wp;
    double *views[] = {w->pre1, w->h1, w->mu, w->lv, w->z, w->pre3, w->h3,
                       w->a4, w->da4, w->dh3, w->dz, w->dmu, w->dlv, w->dh1};
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) ds_free(views[i]);
    free(w);
    *wp = NULL;
}

/* out (m, o) = in (m, i) W^T + b, W (o, i) */
static void fwd(double *out, const double *in, const double *W, const double *b, int m, int i, int o)
{
    for (int r = 0; r < m; r++) memcpy(out + (size_t)r * o, b, sizeof(double) * (size_t)o);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, o, i, 1.0, in, i, W, i, 1.0, out, o);
    ds_blas_done(); /* diffsamp/blas.h: why */
}
/* dW += dout^T in, db += column sums of dout; din = dout W when din != NULL (beta: 0 overwrite, 1 add) */
static void bwd(double *din, double beta, double *dW, double *db, const double *dout, const double *in,
                const double *W, int m, int i, int o)
{
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o, i, m, 1.0, dout, o, in, i, 1.0, dW, i);
    ds_blas_done(); /* diffsamp/blas.h: why */
    for (int r = 0; r < m; r++)
        for (int j = 0; j < o; j++) db[j] += dout[(size_t)r * o + j];
    if (din) cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, i, o, 1.0, dout, o, W, i, beta, din, i);
    ds_blas_done(); /* diffsamp/blas.h: why */
}

static double softplus(double a) { return a > 0 ? a + log1p(exp(-a)) : log1p(exp(a)); }

void ds_vae_loss(const ds_vae *v, ds_vae_train_work *w, int m, const double *x, const double *eps, double *bce,
                 double *kl, double *grad)
{
    const int X = v->x_dim, H = v->hidden, Z = v->z_dim;
#define P(t) ds_vae_param(v, t)
    // encoder: h1 = relu(fc1 x), mu = fc21 h1, logvar = fc22 h1; z = mu + exp(logvar / 2) eps
    fwd(w->pre1, x, P(DS_VAE_FC1_W), P(DS_VAE_FC1_B), m, X, H);
    for (size_t i = 0; i < (size_t)m * H; i++) w->h1[i] = w->pre1[i] > 0 ? w->pre1[i] : 0;
    fwd(w->mu, w->h1, P(DS_VAE_FC21_W), P(DS_VAE_FC21_B), m, H, Z);
    fwd(w->lv, w->h1, P(DS_VAE_FC22_W), P(DS_VAE_FC22_B), m, H, Z);
    double k = 0;
    for (size_t i = 0; i < (size_t)m * Z; i++) {
        w->z[i] = w->mu[i] + exp(0.5 * w->lv[i]) * eps[i];
        k += 1.0 + w->lv[i] - w->mu[i] * w->mu[i] - exp(w->lv[i]);
    }
    // decoder: logits a = fc4 relu(fc3 z)
    fwd(w->pre3, w->z, P(DS_VAE_FC3_W), P(DS_VAE_FC3_B), m, Z, H);
    for (size_t i = 0; i < (size_t)m * H; i++) w->h3[i] = w->pre3[i] > 0 ? w->pre3[i] : 0;
    fwd(w->a4, w->h3, P(DS_VAE_FC4_W), P(DS_VAE_FC4_B), m, H, X);
    double b = 0;
    for (size_t i = 0; i < (size_t)m * X; i++) {
        const double a = w->a4[i];
        b += x[i] * softplus(-a) + (1.0 - x[i]) * softplus(a);
        w->da4[i] = 1.0 / (1.0 + exp(-a)) - x[i];  /* d BCE / d a = p - x */
    }
    *bce = b;
    *kl = -0.5 * k;
    if (!grad) return;
#define G(t) (grad + v->off[t])
    bwd(w->dh3, 0.0, G(DS_VAE_FC4_W), G(DS_VAE_FC4_B), w->da4, w->h3, P(DS_VAE_FC4_W), m, H, X);
    for (size_t i = 0; i < (size_t)m * H; i++)
        if (!(w->pre3[i] > 0)) w->dh3[i] = 0;
    bwd(w->dz, 0.0, G(DS_VAE_FC3_W), G(DS_VAE_FC3_B), w->dh3, w->z, P(DS_VAE_FC3_W), m, Z, H);
    for (size_t i = 0; i < (size_t)m * Z; i++) {
        const double s = exp(0.5 * w->lv[i]);
        w->dmu[i] = w->dz[i] + w->mu[i];                                       /* KL: d/dmu = mu */
        w->dlv[i] = w->dz[i] * eps[i] * 0.5 * s + 0.5 * (exp(w->lv[i]) - 1.0); /* KL: (e^lv - 1) / 2 */
    }
    bwd(w->dh1, 0.0, G(DS_VAE_FC21_W), G(DS_VAE_FC21_B), w->dmu, w->h1, P(DS_VAE_FC21_W), m, H, Z);
    bwd(w->dh1, 1.0, G(DS_VAE_FC22_W), G(DS_VAE_FC22_B), w->dlv, w->h1, P(DS_VAE_FC22_W), m, H, Z);
    for (size_t i = 0; i < (size_t)m * H; i++)
        if (!(w->pre1[i] > 0)) w->dh1[i] = 0;
    bwd(NULL, 0.0, G(DS_VAE_FC1_W), G(DS_VAE_FC1_B), w->dh1, x, P(DS_VAE_FC1_W), m, X, H);
#undef G
#undef P
}

ds_status ds_vae_adam_init(ds_vae_adam *a, size_t n, double lr)
{
    memset(a, 0, sizeof *a);
    a->lr = lr;
    a->beta1 = 0.9;
    a->beta2 = 0.999;
    a->eps = 1e-8;
    a->m = ds_calloc(n, sizeof(double));
    a->v = ds_calloc(n, sizeof(double));
    if (!a->m || !a->v) {
        ds_vae_adam_free(a);
        DS_CHECK(0, DS_ERR_NOMEM, "out of memory for Adam's moments (%zu parameters)", n);
    }
    return DS_OK;
}

void ds_vae_adam_step(ds_vae_adam *a, ds_vae *v, const double *grad)
{
    a->step++;
    const double bc1 = 1.0 - pow(a->beta1, (double)a->step), bc2 = 1.0 - pow(a->beta2, (double)a->step);
    const double step = a->lr / bc1, sbc2 = sqrt(bc2);
    for (size_t i = 0; i < v->n; i++) {
        a->m[i] = a->beta1 * a->m[i] + (1.0 - a->beta1) * grad[i];
        a->v[i] = a->beta2 * a->v[i] + (1.0 - a->beta2) * grad[i] * grad[i];
        v->theta[i] -= step * a->m[i] / (sqrt(a->v[i]) / sbc2 + a->eps);
    }
}

void ds_vae_adam_free(ds_vae_adam *a)
{
    ds_free(a->m);
    ds_free(a->v);
    a->m = a->v = NULL;
}

/* Images [i, i + m) of perm (or in order when perm is NULL) into xb (m, X). */
static void gather(double *xb, const ds_real *px, const size_t *perm, size_t i, int m, int X)
{
    for (int r = 0; r < m; r++) {
        const size_t k = perm ? perm[i + (size_t)r] : i + (size_t)r;
        for (int j = 0; j < X; j++) xb[(size_t)r * X + j] = (double)px[k * X + j];
    }
}

ds_status ds_vae_train(const ds_vae_train_opts *o, FILE *log, double *final_loss, double *final_elbo)
{
    DS_CHECK(o && o->train_images && o->test_images && o->out, DS_ERR_INVALID, "ds_vae_train: missing arguments");
    DS_CHECK(o->epochs >= 1 && o->batch >= 1 && o->hidden >= 1 && o->z_dim >= 1 && o->lr > 0, DS_ERR_CONFIG,
             "vae-train: epochs, batch, hidden and latent size must be positive and lr > 0");
    ds_real *tr = NULL, *te = NULL;
    size_t ntr = 0, nte = 0, X = 0, X2 = 0;
    DS_TRY(ds_idx_read_images(o->train_images, 0, o->subset > 0 ? (size_t)o->subset : 0, &tr, &ntr, &X));
    ds_status rc = ds_idx_read_images(o->test_images, 0, 0, &te, &nte, &X2);
    if (rc == DS_OK && X2 != X)
        rc = ds_error_set(DS_ERR_CONFIG, __FILE__, __LINE__, __func__,
                          "%s has images of %zu pixels, %s of %zu: they must agree", o->train_images, X,
                          o->test_images, X2);
    ds_vae *v = NULL;
    ds_vae_train_work *w = NULL;
    ds_vae_adam adam;
    memset(&adam, 0, sizeof adam);
    double *grad = NULL, *xb = NULL, *eps = NULL;
    size_t *perm = NULL;
    const int B = o->batch, Z = o->z_dim;
    if (rc == DS_OK) rc = ds_vae_create((int)X, o->hidden, Z, &v);
    if (rc == DS_OK) rc = ds_vae_train_work_create(v, B, &w);
    if (rc == DS_OK) rc = ds_vae_adam_init(&adam, v->n, o->lr);
    if (rc == DS_OK) {
        ds_vae_init(v, o->seed);
        grad = ds_calloc(v->n, sizeof(double));
        xb = ds_calloc((size_t)B * X, sizeof(double));
        eps = ds_calloc((size_t)B * Z, sizeof(double));
        perm = malloc(sizeof(size_t) * ntr);
        if (!grad || !xb || !eps || !perm)
            rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for vae-train");
    }
    const ds_rng r_perm = ds_rng_make(o->seed, DS_RNG_BUFFER), r_eps = ds_rng_make(o->seed, DS_RNG_FORWARD),
                 r_test = ds_rng_make(o->seed, DS_RNG_EVAL);
    long step = 0;
    double loss_img = NAN, elbo_img = NAN;
    if (rc == DS_OK && log)
        fprintf(log, "vae-train: %zu training images of %zu pixels (%s), %zu test images, VAE %zu-%d-%d, %zu "
                     "parameters, Adam lr %g, batch %d, %d epochs\n", ntr, X, o->train_images, nte, X, o->hidden, Z,
                v->n, o->lr, B, o->epochs);
    for (int ep = 0; ep < o->epochs && rc == DS_OK; ep++) {
        const double t0 = ds_wtime();
        /* a fresh permutation per epoch (Fisher-Yates on the epoch's uniforms) */
        for (size_t i = 0; i < ntr; i++) perm[i] = i;
        for (size_t i = ntr; i > 1; i--) {
            double u;
            ds_rng_uniform_d(r_perm, (uint64_t)ep, i, 0, 1, &u);
            size_t j = (size_t)(u * (double)i);
            if (j >= i) j = i - 1;
            size_t tmp = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = tmp;
        }
        double sum = 0;
        for (size_t i0 = 0; i0 < ntr; i0 += (size_t)B, step++) {
            const int m = ntr - i0 < (size_t)B ? (int)(ntr - i0) : B;
            gather(xb, tr, perm, i0, m, (int)X);
            ds_rng_normal_d(r_eps, (uint64_t)step, 0, 0, m * Z, eps);
            memset(grad, 0, sizeof(double) * v->n);
            double bce, kl;
            ds_vae_loss(v, w, m, xb, eps, &bce, &kl, grad);
            if (!isfinite(bce + kl)) {
                rc = ds_error_set(DS_ERR_NUMERIC, __FILE__, __LINE__, __func__,
                                  "vae-train: the loss is %g at epoch %d step %ld; lower the learning rate", bce + kl,
                                  ep + 1, step);
                break;
            }
            sum += bce + kl;
            ds_vae_adam_step(&adam, v, grad);
        }
        if (rc != DS_OK) break;
        double test = 0;
        for (size_t i0 = 0; i0 < nte; i0 += (size_t)B) {
            const int m = nte - i0 < (size_t)B ? (int)(nte - i0) : B;
            gather(xb, te, NULL, i0, m, (int)X);
            ds_rng_normal_d(r_test, (uint64_t)ep, i0, 0, m * Z, eps);
            double bce, kl;
            ds_vae_loss(v, w, m, xb, eps, &bce, &kl, NULL);
            test += bce + kl;
        }
        loss_img = sum / (double)ntr;
        elbo_img = -test / (double)nte;
        char desc[512];
        snprintf(desc, sizeof desc, "VAE trained by diffsamp vae-train on %s (%zu-%d-%d encoder with ReLU, "
                 "%d-%d-%zu decoder with ReLU then sigmoid, BCE + KL, Adam lr %g, batch %d, %d epochs); Linear weights "
                 "(out, in)", o->train_images, X, o->hidden, Z, Z, o->hidden, X, o->lr, B, ep + 1);
        rc = ds_vae_save(v, o->out, desc);
        if (log) {
            fprintf(log, "[epoch %d/%d] %.1f s  train loss %.4f per image  test ELBO %.4f per image  -> %s\n", ep + 1,
                    o->epochs, ds_wtime() - t0, loss_img, elbo_img, o->out);
            fflush(log);
        }
    }
    if (final_loss) *final_loss = loss_img;
    if (final_elbo) *final_elbo = elbo_img;
    free(perm);
    ds_free(grad);
    ds_free(xb);
    ds_free(eps);
    ds_vae_adam_free(&adam);
    ds_vae_train_work_destroy(&w);
    ds_vae_destroy(&v);
    ds_free(tr);
    ds_free(te);
    if (rc != DS_OK) ds_error_trace(__FILE__, __LINE__, __func__);
    return rc;
}
