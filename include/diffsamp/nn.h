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
/* act = GELU(in @ W^T + b), gd = GELU'(in @ W^T + b): one Linear layer and
 * the GELU after it (fused in the float build; scratch (B, out_dim) holds
 * the pre-activation where it is not). */
void ds_linear_forward_gelu(ds_real *act, ds_real *gd, const ds_real *in, const ds_real *W, const ds_real *b,
                            int B, int in_dim, int out_dim, ds_real *scratch);
/* din (B, in_dim) = (dout @ W) * gd, elementwise: back through a Linear
 * layer and the GELU in front of it (gd = GELU' there). */
void ds_linear_backward_input_gelu(ds_real *din, const ds_real *dout, const ds_real *W, const ds_real *gd, int B,
                                   int in_dim, int out_dim);
/* acc (n) += the column sums of x (B, n), row after row (a bias gradient). */
void ds_col_sums(ds_real *acc, const ds_real *x, int B, int n);
/* out (B, out_dim) += in @ W^T (no bias). */
void ds_linear_forward_add(ds_real *out, const ds_real *in, const ds_real *W, int B, int in_dim, int out_dim);

/* Exact GELU with its derivative for the backward pass, n elements:
 * out = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), gd = GELU'(x) = Phi(x) + x phi(x).
 * The double build uses libm. The float build evaluates erfc by Abramowitz
 * & Stegun 7.1.26 (|error| < 1.5e-7) and exp by a vectorised polynomial,
 * 8 lanes at a time (tests/test_gelu.c bounds it against libm in double
 * over the whole float range). */
void ds_gelu_forward_grad(ds_real *out, ds_real *gd, const ds_real *x, size_t n);

/* A multilayer perceptron: nlinear Linear layers with a GELU between
 * consecutive ones and none after the last (the time, joint, flow and LP
 * scale networks of the policy are all one). The struct holds tensor
 * indices into an arena and views of the caller's workspace. Rows are
 * indexed over a whole pass: forward/backward work on rows [r0, r0+n) and
 * keep their activations there, so a pass can be differentiated later in
 * blocks without evaluating the network again. */
#define DS_MLP_MAX_LINEAR 10
typedef struct ds_mlp {
    int nlinear;
    int dims[DS_MLP_MAX_LINEAR + 1];                  /* dims[0] in .. dims[nlinear] out */
    int w[DS_MLP_MAX_LINEAR], b[DS_MLP_MAX_LINEAR];  /* arena tensors, PyTorch (out, in) weights */
    ds_real *act[DS_MLP_MAX_LINEAR];                 /* act[l], l = 1..nlinear-1: (rows, dims[l]) GELU outputs */
    ds_real *gd[DS_MLP_MAX_LINEAR];                  /* GELU' at the same places */
    int out_used;  /* outputs of the last layer computed (its first out_used; 0 = all dims[nlinear]):
                      the rest are read by nobody, so neither their product nor its gradient is formed */
} ds_mlp;

/* Width of the output the MLP computes: out_used, or dims[nlinear]. */
static inline int ds_mlp_out(const ds_mlp *m) { return m->out_used > 0 ? m->out_used : m->dims[m->nlinear]; }

/* Registers layer l as "<names[l]>.weight" and "<names[l]>.bias" in a. */
ds_status ds_mlp_add(ds_mlp *m, ds_arena *a, int nlinear, const int *dims, const char *const *names, int group);
/* ds_real elements of workspace the activations of rows rows need. */
size_t ds_mlp_workspace(const ds_mlp *m, size_t rows);
/* Widest hidden layer (0 for a single Linear): the size of a scratch row. */
int ds_mlp_max_hidden(const ds_mlp *m);
/* Points act/gd into ws (ds_mlp_workspace(m, rows) elements). */
void ds_mlp_bind(ds_mlp *m, ds_real *ws, size_t rows);
/* out (n, ds_mlp_out(m)) = MLP(in (n, dims[0])) for pass rows [r0, r0+n);
 * scratch (n, max hidden). */
void ds_mlp_forward(const ds_mlp *m, const ds_arena *a, ds_real *out, const ds_real *in, size_t r0, int n,
                    ds_real *scratch);
/* Adds the parameter gradients of dout (n, ds_mlp_out(m)) at rows [r0, r0+n) (in
 * as given to the forward pass) into the arena; din (n, dims[0]), when not
 * NULL, is overwritten (accumulate 0) or added to. s1, s2: scratch (n, max
 * hidden) each. */
void ds_mlp_backward(const ds_mlp *m, const ds_arena *a, ds_real *din, int accumulate, const ds_real *dout,
                     const ds_real *in, size_t r0, int n, ds_real *s1, ds_real *s2);
/* The same with din overwritten by d loss / d in times din_gd, elementwise
 * (in came out of a GELU whose derivative is din_gd): fused into the first
 * layer's input product. */
void ds_mlp_backward_gelu(const ds_mlp *m, const ds_arena *a, ds_real *din, const ds_real *din_gd,
                          const ds_real *dout, const ds_real *in, size_t r0, int n, ds_real *s1, ds_real *s2);

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
