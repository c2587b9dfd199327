/* nn: the small neural-network kit the samplers are built from.
 *
 * One flat arena holds every parameter; gradients and both Adam moments are
 * arrays of the same length and layout, so the MPI gradient all-reduce and the
 * checkpoint are one contiguous array each. Named tensors (PyTorch names, with
 * PyTorch's (out, in) weight layout) index into it.
 *
 * Layers are forward/backward pairs in the llm.c style: outputs first, inputs
 * const, sizes last; backward ADDS into gradients (and into the input gradient
 * when one is asked for); no layer allocates. Matrix work goes through BLAS. */
#ifndef DS_NN_H
#define DS_NN_H

#include "diffsamp/core.h"
#include "diffsamp/rng.h"

#include <stddef.h>

#define DS_TENSOR_NAME_MAX 96
#define DS_PARAM_GROUPS 2

/* Parameter groups with their own learning rate. */
enum { DS_GROUP_POLICY = 0, DS_GROUP_FLOW = 1 };

typedef struct ds_tensor_info {
    char name[DS_TENSOR_NAME_MAX];
    size_t offset;  /* into the arena arrays */
    int rows, cols; /* a vector is (1, n); a scalar (1, 1) */
    int group;
} ds_tensor_info;

typedef struct ds_arena {
    size_t n;             /* total number of parameters */
    ds_real *params;      /* (n) */
    ds_real *grads;       /* (n) */
    ds_real *m, *v;       /* Adam moments (n) */
    ds_tensor_info *tensors;
    int ntensors, cap;
    int allocated;
} ds_arena;

/* Lifecycle: init, add every tensor, alloc, use, free. */
void ds_arena_init(ds_arena *a);
/* Registers a (rows, cols) tensor in a group and returns its index in *index.
 * Only before ds_arena_alloc. */
ds_status ds_arena_add(ds_arena *a, const char *name, int rows, int cols, int group, int *index);
/* Allocates the four arrays (zeroed). */
ds_status ds_arena_alloc(ds_arena *a);
void ds_arena_free(ds_arena *a);
/* Index of the tensor called name, or -1. */
int ds_arena_find(const ds_arena *a, const char *name);
static inline ds_real *ds_arena_param(const ds_arena *a, int index) { return a->params + a->tensors[index].offset; }
static inline ds_real *ds_arena_grad(const ds_arena *a, int index) { return a->grads + a->tensors[index].offset; }
void ds_arena_zero_grad(ds_arena *a);

/* PyTorch's default Linear initialisation: weight and bias uniform in
 * +-1/sqrt(fan_in), drawn from the counter-based stream (iteration = tensor
 * index) so the initial network is a function of the seed alone. */
void ds_init_uniform(ds_real *w, size_t n, double bound, ds_rng r, uint64_t tensor_id);
void ds_init_normal(ds_real *w, size_t n, double std, ds_rng r, uint64_t tensor_id);

/* out (B, out_dim) = in (B, in_dim) @ W^T + b, W (out_dim, in_dim), b may be NULL. */
void ds_linear_forward(ds_real *out, const ds_real *in, const ds_real *W, const ds_real *b,
                       int B, int in_dim, int out_dim);
/* dW += dout^T @ in; db += column sums of dout (db may be NULL);
 * din += dout @ W when din != NULL. */
void ds_linear_backward(ds_real *din, ds_real *dW, ds_real *db, const ds_real *dout,
                        const ds_real *in, const ds_real *W, int B, int in_dim, int out_dim);

/* The two halves of ds_linear_backward, for callers that want to overwrite
 * din instead of adding to it (accumulate = 0 saves clearing it first). */
void ds_linear_backward_params(ds_real *dW, ds_real *db, const ds_real *dout, const ds_real *in, int B, int in_dim,
                               int out_dim);
void ds_linear_backward_input(ds_real *din, const ds_real *dout, const ds_real *W, int B, int in_dim, int out_dim,
                              int accumulate);
/* out (B, out_dim) += in @ W^T (no bias). */
void ds_linear_forward_add(ds_real *out, const ds_real *in, const ds_real *W, int B, int in_dim, int out_dim);

/* Exact GELU: out = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), n elements. */
void ds_gelu_forward(ds_real *out, const ds_real *x, size_t n);
/* din (+)= dout * GELU'(x); din is overwritten when accumulate == 0. */
void ds_gelu_backward(ds_real *din, const ds_real *dout, const ds_real *x, size_t n, int accumulate);

/* Fourier time features: out (2H) = [sin(t*w + phase), cos(t*w + phase)]. */
void ds_fourier_forward(ds_real *out, ds_real t, const ds_real *w, const ds_real *phase, int H);
/* dphase (H) += d/dphase of <dout, features(t)>. */
void ds_fourier_backward(ds_real *dphase, const ds_real *dout, ds_real t, const ds_real *w,
                         const ds_real *phase, int H);

/* Adam exactly as torch.optim.Adam (no weight decay, no amsgrad):
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps), t = step (1-based).
 * lr[group] per parameter group. */
typedef struct ds_adam {
    double beta1, beta2, eps;
    double lr[DS_PARAM_GROUPS];
    long step;  /* number of steps taken */
} ds_adam;
void ds_adam_init(ds_adam *opt, double lr_policy, double lr_flow);
void ds_adam_step(ds_adam *opt, ds_arena *a);

#endif
