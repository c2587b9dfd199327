/* config: the run settings, read from YAML through one declarative key table
 * and one validator (see include/diffsamp/config.h).
 *
 * Every key of ds_settings is one row of `keys` below: its path, type, offset,
 * default (as YAML text, so defaults go through the same parser as user input),
 * bounds, allowed values and doc. Loading, --set, writing the effective config
 * and the error messages are all driven by that table; adding a setting is
 * adding a field and a row.
 *
 * Loads are atomic: a source is applied to a copy that replaces *s only when
 * the whole source was valid, so a failed load leaves *s unchanged. */
#define _POSIX_C_SOURCE 200809L
#include "diffsamp/config.h"
#include "diffsamp/local_search.h"
#include "diffsamp/policy.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

/* ---------------------------------------------------------------- the table */

/* K_OBJECTIVE: an objective of the table in objectives.h with the flags in
 * key_def.role (forward or backward use), stored as ds_objective.
 * K_ENERGY: the name of a registered energy family (energy.h), stored as a
 * string; choosing another family drops the keys set for the previous one. */
typedef enum key_type { K_BOOL, K_INT, K_LONG, K_U64, K_DOUBLE, K_STRING, K_ENUM, K_OBJECTIVE, K_ENERGY } key_type;

/* Bound flags: open interval ends (numbers) and "no upper bound";
 * ENERGY_DIM: the value must also suit the chosen family (its check_dim). */
enum { LO_OPEN = 1, HI_OPEN = 2, NO_MAX = 4, ENERGY_DIM = 8 };

typedef struct key_def {
    const char *path;            /* "section.key", as in config.h */
    key_type type;
    size_t offset;               /* offsetof(ds_settings, field) */
    size_t size;                 /* capacity of a K_STRING field (with the NUL) */
    const char *def;             /* default, as YAML scalar text */
    double min, max;             /* inclusive unless flags say otherwise; for
                                    K_STRING the length bounds */
    unsigned flags;
    const char *const *choices;  /* K_ENUM: NULL-terminated, in enum order */
    const char *doc;             /* one line */
    unsigned role;               /* K_OBJECTIVE: ds_objective_flags the objective must have */
} key_def;

/* Enumerations are stored through int: the enums of config.h have int size. */
_Static_assert(sizeof(ds_objective) == sizeof(int), "enum size");
_Static_assert(sizeof(ds_expl_schedule) == sizeof(int), "enum size");
_Static_assert(sizeof(ds_priority) == sizeof(int), "enum size");

static const char *const schedule_names[] = {"constant", "linear", NULL};
static const char *const priority_names[] = {"uniform", "reward", "rank", NULL};
static const char *const exchange_names[] = {"best", "random", NULL};

#define OFF(f) offsetof(ds_settings, f)
#define SZ(f) sizeof(((ds_settings *)0)->f)
#define IMAX ((double)INT_MAX)
#define LMAX 1e15 /* exactly representable, far beyond any run */
#define BOOL(p, f, d, doc) {p, K_BOOL, OFF(f), 0, d, 0, 1, 0, NULL, doc, 0}
#define INT(p, f, d, lo, hi, doc) {p, K_INT, OFF(f), 0, d, lo, hi, 0, NULL, doc, 0}
#define LONG(p, f, d, lo, hi, doc) {p, K_LONG, OFF(f), 0, d, lo, hi, 0, NULL, doc, 0}
#define U64(p, f, d, doc) {p, K_U64, OFF(f), 0, d, 0, 0, 0, NULL, doc, 0}
#define DBL(p, f, d, lo, hi, fl, doc) {p, K_DOUBLE, OFF(f), 0, d, lo, hi, fl, NULL, doc, 0}
#define STR(p, f, d, doc) {p, K_STRING, OFF(f), SZ(f), d, 1, (double)(SZ(f) - 1), 0, NULL, doc, 0}
/* A string that may be empty (empty: another key's value, as its doc says). */
#define STR0(p, f, d, doc) {p, K_STRING, OFF(f), SZ(f), d, 0, (double)(SZ(f) - 1), 0, NULL, doc, 0}
#define ENUM(p, f, d, ch, doc) {p, K_ENUM, OFF(f), 0, d, 0, 0, 0, ch, doc, 0}
#define OBJECTIVE(p, f, d, role, doc) {p, K_OBJECTIVE, OFF(f), 0, d, 0, 0, 0, NULL, doc, role}
#define ENERGY(p, f, d, doc) {p, K_ENERGY, OFF(f), SZ(f), d, 1, (double)(SZ(f) - 1), 0, NULL, doc, 0}
/* A C constant as a default: the text of its expansion ("0.1"). */
#define DEFAULT_TEXT(c) DEFAULT_TEXT_(c)
#define DEFAULT_TEXT_(c) #c

/* Grouped by section (sections must be contiguous); this order is the order
 * of config.h and of the written YAML. */
static const key_def keys[] = {
    ENERGY("energy.name", energy_name, "25gmm",
           "target energy, a registered name (list them with `diffsamp energies`)"),
    {"energy.dim", K_INT, OFF(energy_dim), 0, "0", 0, 1e6, ENERGY_DIM, NULL,
     "dimension of the target; 0 = the energy's default", 0},

    OBJECTIVE("objective.name", objective, "tb", DS_OBJF_FORWARD,
              "training objective; mle is only a backward objective (see objective.backward)"),
    OBJECTIVE("objective.backward", backward, "tb", DS_OBJF_BACKWARD,
              "objective of the backward (odd) iterations of both-ways training"),
    BOOL("objective.both_ways", both_ways, "false",
         "alternate forward and backward (replay buffer) iterations; local search turns it on"),
    DBL("objective.subtb_lambda", subtb_lambda, "2.0", 0, 100, LO_OPEN,
        "SubTB weight base: w_ij proportional to lambda^(j-i)"),
    INT("objective.recompute_every", recompute_every, "0", 0, 10000,
        "on-policy objectives (pis, dds, dis): keep the network activations of this many steps at a time and "
        "recompute the others in the reverse pass (less memory, one more network evaluation); 0 = keep all; "
        "off-policy objectives ignore it"),
    BOOL("objective.lp_through_grad", lp_through_grad, "false",
         "on-policy objectives with LP: also differentiate grad log R(x) in the drift (energy HVPs); the reference "
         "treats it as a constant"),

    LONG("train.iterations", iterations, "25000", 0, LMAX, "number of training iterations"),
    INT("train.batch_size", batch_size, "300", 1, 1e7,
        "global batch size (trajectories per iteration, split over the ranks)"),
    U64("train.seed", seed, "12345", "random seed (keys the counter-based generator)"),
    DBL("train.lr_policy", lr_policy, "1e-3", 0, 0, LO_OPEN | NO_MAX,
        "Adam learning rate of the policy network"),
    DBL("train.lr_flow", lr_flow, "1e-2", 0, 0, LO_OPEN | NO_MAX,
        "Adam learning rate of log Z or of the flow network"),
    INT("train.log_every", log_every, "100", 1, IMAX, "iterations between progress lines"),
    INT("train.check_every", check_every, "0", 0, IMAX,
        "iterations between checks that all ranks hold identical parameters; 0 = never"),
    DBL("train.time_limit", time_limit, "0.0", 0, 0, NO_MAX,
        "wall seconds after which the run checkpoints and exits with code 3; 0 = no limit"),
    LONG("train.stop_iteration", stop_iteration, "0", 0, LMAX,
         "checkpoint and exit with code 3 on reaching this iteration (cuts a run into job-sized pieces); 0 = never"),

    INT("sampler.T", T, "100", 1, 10000, "number of diffusion steps (dt = 1/T)"),
    DBL("sampler.t_scale", t_scale, "5.0", 0, 0, LO_OPEN | NO_MAX,
        "reference-process variance per unit time (sigma^2)"),
    INT("sampler.hidden", hidden, "64", 1, 65536, "hidden width of the policy network"),
    INT("sampler.harmonics", harmonics, "64", 1, 65536, "number of time-encoding frequencies"),
    /* The policy's own limit (policy.h), so the documented bound is the enforced one. */
    INT("sampler.joint_layers", joint_layers, "2", 0, DS_MAX_LAYERS,
        "hidden [Linear, GELU] blocks of the joint network"),
    INT("sampler.lgv_layers", lgv_layers, "3", 1, DS_MAX_LAYERS,
        "layers of the Langevin scaling network s(t)"),
    BOOL("sampler.langevin", langevin, "false",
         "Langevin parametrisation: add s(t) * grad log R(x) to the mean"),
    BOOL("sampler.langevin_per_dimension", lgv_per_dimension, "false",
         "s(t) has one output per dimension instead of one"),
    BOOL("sampler.learned_variance", learned_variance, "false",
         "learn the policy variance (else it is t_scale)"),
    DBL("sampler.log_var_range", log_var_range, "4.0", 0, 100, LO_OPEN,
        "learned log-variance = tanh(output) * log_var_range"),
    BOOL("sampler.clipping", clipping, "true", "clip the policy output to +-gfn_clip"),
    DBL("sampler.lgv_clip", lgv_clip, "100", 0, 0, LO_OPEN | NO_MAX,
        "clip of grad log R in the Langevin term"),
    DBL("sampler.gfn_clip", gfn_clip, "1e4", 0, 0, LO_OPEN | NO_MAX,
        "clip of the policy output when clipping is on"),
    BOOL("sampler.zero_init", zero_init, "true",
         "zero the last layer, so training starts from the reference process"),
    BOOL("sampler.conditional_flow", conditional_flow, "false",
         "learn a flow network log F(x, t) (needed by db, subtb, fl-subtb)"),
    BOOL("sampler.partial_energy", partial_energy, "false",
         "forward-looking flow: add the interpolated energy to log F (fl-subtb)"),
    DBL("sampler.beta_min", beta_min, "0.1", 0, 0, LO_OPEN | NO_MAX,
        "variance-preserving reference of dds and dis: beta(t) at t = 1 (the target end; sde_sampler vp_10)"),
    DBL("sampler.beta_max", beta_max, "10.0", 0, 0, LO_OPEN | NO_MAX,
        "variance-preserving reference of dds and dis: beta(t) at t = 0 (the prior end), linear in between"),

    DBL("exploration.factor", expl_factor, "0.0", 0, 0, NO_MAX,
        "std of the exploration noise added when sampling off-policy; 0 = off"),
    ENUM("exploration.schedule", expl_schedule, "constant", schedule_names,
         "constant, or linear decay to 0 over exploration.decay_iterations"),
    LONG("exploration.decay_iterations", expl_decay_iterations, "5000", 1, LMAX,
         "iterations of the linear decay"),

    BOOL("local_search.enabled", ls_enabled, "false",
         "MALA local search on buffer samples (turns objective.both_ways on)"),
    INT("local_search.cycle", ls_cycle, "100", 1, IMAX, "iterations between local-search rounds"),
    INT("local_search.max_iter", ls_max_iter, "200", 1, DS_LS_UNIFORM_STEP, "MALA steps per round"),
    INT("local_search.burn_in", ls_burn_in, "100", 0, IMAX,
        "MALA steps before accepted states are kept (< max_iter)"),
    DBL("local_search.ld_step", ls_step, DEFAULT_TEXT(DS_LS_DEFAULT_STEP), 0, 0, LO_OPEN | NO_MAX,
        "initial MALA step size"),
    DBL("local_search.target_acceptance", ls_target_acceptance, "0.574", 0, 1, LO_OPEN | HI_OPEN,
        "acceptance rate the step size adapts toward"),
    DBL("local_search.adapt_up", ls_adapt_up, "1.01", 1, 10, LO_OPEN,
        "step-size factor when the acceptance is above target"),
    DBL("local_search.adapt_down", ls_adapt_down, "0.99", 0, 1, LO_OPEN | HI_OPEN,
        "step-size factor when the acceptance is below target"),
    DBL("local_search.beta", ls_beta, "1.0", 0, 0, LO_OPEN | NO_MAX,
        "inverse temperature of the local-search target R(x)^beta"),
    BOOL("local_search.carry_step", ls_carry_step, "false",
         "start each round from the previous round's adapted step (the reference restarts from ld_step)"),
    BOOL("local_search.store_states", ls_store_states, "false",
         "buffer the chain state of every step after burn_in (distributed as the target) instead of the "
         "accepted proposals (the reference; distributed as target x acceptance probability)"),

    BOOL("searcher.enabled", searcher_enabled, "false",
         "long-running MALA chains fill the buffer backward iterations train on (turns objective.both_ways on)"),
    LONG("searcher.chains", searcher_chains, "300", 1, 1e8, "searcher chains (over all ranks)"),
    INT("searcher.every", searcher_every, "1", 1, IMAX, "backward iterations between searcher rounds"),
    INT("searcher.steps", searcher_steps, "10", 2, DS_LS_UNIFORM_STEP, "MALA steps per searcher round"),
    INT("searcher.keep", searcher_keep, "1", 1, IMAX,
        "states of the last `keep` steps of each round added to the buffer (< searcher.steps)"),
    DBL("searcher.ld_step", searcher_step, "0.01", 0, 0, LO_OPEN | NO_MAX,
        "initial MALA step of the searcher (adapted as local search's, carried across rounds)"),
    DBL("searcher.target_acceptance", searcher_target_acceptance, "0.574", 0, 1, LO_OPEN | HI_OPEN,
        "acceptance rate the searcher's step adapts toward (local_search.adapt_up / adapt_down)"),
    DBL("searcher.init_var", searcher_init_var, "1.0", 0, 0, LO_OPEN | NO_MAX,
        "variance of the Gaussian the chains start from"),
    INT("searcher.smc_levels", searcher_smc_levels, "0", 0, 1e6,
        "start the chains from an SMC run with this many levels (0: from the Gaussian)"),
    BOOL("searcher.own_buffer", searcher_own_buffer, "false",
         "the searcher's states go to a buffer of their own, the one backward iterations draw from (SGDS: the "
         "learner's on-policy samples are not replayed); false: into the replay buffer with them (the local-search "
         "buffer when local search is on, either way)"),
    LONG("searcher.reinit_every", searcher_reinit_every, "0", 0, LMAX,
         "iterations between re-initialisations of the learner (network and Adam; log Z and buffers kept); 0 = never"),

    LONG("replay.capacity", replay_capacity, "600000", 1, 4294967294.0, /* replay.c's limit */
         "maximum number of samples in the replay buffer"),
    ENUM("replay.priority", replay_priority, "rank", priority_names,
         "how buffer samples are drawn"),
    DBL("replay.beta", replay_beta, "1.0", 0, 0, NO_MAX,
        "reward priority: softmax(beta * log R)"),
    DBL("replay.rank_weight", replay_rank_weight, "0.01", 0, 0, LO_OPEN | NO_MAX,
        "rank priority: weight 1 / (rank_weight * N + rank)"),
    INT("replay.exchange_every", exchange_every, "0", 0, IMAX,
        "iterations between exchanges of local-search samples across ranks; 0 = after each round"),
    INT("replay.exchange_count", exchange_count, "100", 0, IMAX,
        "local-search samples each rank sends to all others per exchange"),
    ENUM("replay.exchange", exchange_mode, "best", exchange_names,
         "which local-search samples a rank sends: its best by log R, or random ones"),

    INT("eval.every", eval_every, "1000", 1, IMAX, "iterations between evaluations"),
    INT("eval.samples", eval_samples, "2000", 1, IMAX, "forward samples per evaluation"),
    INT("eval.ground_truth_samples", eval_gt_samples, "2000", 0, IMAX,
        "ground-truth samples for the log-likelihood; 0 = none"),
    INT("eval.paths", eval_paths, "10", 1, IMAX, "backward paths per ground-truth sample"),

    STR("condition.images", cond_images, "../shared/data/mnist/t10k-images-idx3-ubyte.gz",
        "conditional energies (vae): idx file of the condition images, pixels / 255 (plain or .gz)"),
    STR0("condition.eval_images", cond_eval_images, "",
         "conditional energies: idx file of the evaluation images (e.g. a test set beside a training set in "
         "condition.images); empty: condition.images"),
    INT("condition.train_first", cond_train_first, "100", 0, IMAX,
        "conditional energies: first image of the training conditions"),
    INT("condition.train_count", cond_train_count, "9900", 1, IMAX,
        "conditional energies: training conditions (each iteration draws batch_size / repeats of them)"),
    INT("condition.eval_first", cond_eval_first, "0", 0, IMAX,
        "conditional energies: first evaluation image (of condition.eval_images when set)"),
    INT("condition.eval_count", cond_eval_count, "100", 1, IMAX, "conditional energies: evaluation images"),
    INT("condition.repeats", cond_repeats, "10", 1, 1e6,
        "conditional energies: trajectories per condition in training (VarGrad's baseline is per condition)"),
    INT("condition.eval_repeats", cond_eval_repeats, "10", 1, 1e6,
        "conditional energies: forward samples per evaluation image (per-image ELBO and IS log p(x))"),
    INT("condition.hidden_layers", cond_layers, "2", 0, 8,
        "conditional energies: hidden Linear(H,H) layers of the state encoder of [x, image]"),

    STR("vae_train.train_images", vae_train_images, "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
        "diffsamp vae-train: idx file of the training images, pixels / 255 (plain or .gz; Debian's "
        "dataset-fashion-mnist by default)"),
    STR("vae_train.test_images", vae_test_images, "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
        "diffsamp vae-train: idx file of the test images (the ELBO printed per epoch)"),
    LONG("vae_train.subset", vae_subset, "0", 0, 1e9, "diffsamp vae-train: first training images used; 0 = all"),
    INT("vae_train.epochs", vae_epochs, "10", 1, 1e6, "diffsamp vae-train: passes over the training images"),
    INT("vae_train.batch_size", vae_batch, "128", 1, 1e6, "diffsamp vae-train: images per Adam step"),
    DBL("vae_train.lr", vae_lr, "1e-3", 0, 0, LO_OPEN | NO_MAX, "diffsamp vae-train: Adam's learning rate"),
    INT("vae_train.hidden", vae_hidden, "400", 1, 100000, "diffsamp vae-train: hidden width of encoder and decoder"),
    INT("vae_train.latent", vae_latent, "20", 1, 10000, "diffsamp vae-train: latent dimension"),
    U64("vae_train.seed", vae_seed, "1", "diffsamp vae-train: seed of the initialisation, shuffles and noise"),

    LONG("smc.particles", smc_particles, "2000", 1, 1e8, "diffsamp smc: particles (over all ranks)"),
    INT("smc.levels", smc_levels, "100", 1, 1e6,
        "diffsamp smc: annealing levels of the geometric path from N(0, init_var I) to the target"),
    INT("smc.mcmc_steps", smc_mcmc_steps, "2", 0, 10000, "diffsamp smc: MALA moves per level"),
    DBL("smc.init_var", smc_init_var, "1.0", 0, 0, LO_OPEN | NO_MAX, "diffsamp smc: variance of the Gaussian start"),
    DBL("smc.ess_threshold", smc_ess_threshold, "0.5", 0, 1, 0,
        "diffsamp smc: resample when the ESS falls below this fraction of the particles"),
    DBL("smc.step", smc_step, "0.05", 0, 0, LO_OPEN | NO_MAX, "diffsamp smc: initial MALA step size"),
    DBL("smc.target_acceptance", smc_target_acceptance, "0.574", 0, 1, LO_OPEN | HI_OPEN,
        "diffsamp smc: the MALA step adapts (x1.1 / x0.9 per level) toward this acceptance"),

    STR("output.dir", out_dir, "runs/default", "run folder (metrics, checkpoints, samples)"),
    INT("output.checkpoint_every", checkpoint_every, "1000", 1, IMAX,
        "iterations between checkpoints"),
};

#define NKEYS (sizeof keys / sizeof keys[0])

/* ------------------------------------------------------- table navigation */

static size_t section_len(const key_def *k) { return (size_t)(strchr(k->path, '.') - k->path); }
static const char *leaf(const key_def *k) { return strchr(k->path, '.') + 1; }

static int same_section(const key_def *k, const char *sec, size_t len)
{
    return section_len(k) == len && strncmp(k->path, sec, len) == 0;
}

/* Index of the first key of section sec[0..len), or -1. */
static int find_section(const char *sec, size_t len)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (same_section(&keys[i], sec, len)) return (int)i;
    return -1;
}

/* Index of key `name` in the section that starts at index first, or -1. */
static int find_key(int first, const char *name)
{
    size_t len = section_len(&keys[first]);
    for (size_t i = (size_t)first; i < NKEYS && same_section(&keys[i], keys[first].path, len); i++)
        if (strcmp(leaf(&keys[i]), name) == 0) return (int)i;
    return -1;
}

static int is_section_start(size_t i)
{
    return i == 0 || !same_section(&keys[i], keys[i - 1].path, section_len(&keys[i - 1]));
}

/* Appends to buf (truncating silently: these are message lists). */
static void cat(char *buf, size_t n, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len + 1 >= n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, n - len, fmt, ap);
    va_end(ap);
}

static void list_sections(char *buf, size_t n)
{
    buf[0] = '\0';
    for (size_t i = 0; i < NKEYS; i++)
        if (is_section_start(i))
            cat(buf, n, "%s%.*s", i ? ", " : "", (int)section_len(&keys[i]), keys[i].path);
}

static void list_keys(int first, char *buf, size_t n)
{
    buf[0] = '\0';
    size_t len = section_len(&keys[first]);
    for (size_t i = (size_t)first; i < NKEYS && same_section(&keys[i], keys[first].path, len); i++)
        cat(buf, n, "%s%s", i > (size_t)first ? ", " : "", leaf(&keys[i]));
}

/* Levenshtein distance (strings longer than 63 characters count as far). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* " (did you mean 'x'?)" for the nearest key path (or, when want_section,
 * section name) within edit distance 2, or for a key of the same name in
 * another section; "" when nothing is close. */
static void suggest(const char *wrong, int want_section, char *buf, size_t n)
{
    buf[0] = '\0';
    const char *dot = strchr(wrong, '.');
    const char *wleaf = dot ? dot + 1 : wrong;
    size_t best = 3, hit_len = 0;
    const char *hit = NULL;
    for (size_t i = 0; i < NKEYS; i++) {
        const key_def *k = &keys[i];
        if (!want_section) {
            size_t d = edit_distance(wrong, k->path);
            if (d > 2 && strcmp(wleaf, leaf(k)) == 0) d = 2; /* right key, wrong section */
            if (d < best) { best = d; hit = k->path; hit_len = strlen(k->path); }
            continue;
        }
        if (strcmp(wrong, k->path) == 0) { /* "sampler.T:" at the top level */
            snprintf(buf, n, " (keys are nested: write '%.*s:' and under it, indented, '%s:')",
                     (int)section_len(k), k->path, leaf(k));
            return;
        }
        if (strcmp(wrong, leaf(k)) == 0 && best > 1) { /* a bare key at the top level */
            best = 1;
            hit = k->path;
            hit_len = strlen(k->path);
        }
        if (is_section_start(i)) {
            char cand[128];
            snprintf(cand, sizeof cand, "%.*s", (int)section_len(k), k->path);
            size_t d = edit_distance(wrong, cand);
            if (d < best) { best = d; hit = k->path; hit_len = section_len(k); }
        }
    }
    if (hit) snprintf(buf, n, " (did you mean '%.*s'?)", (int)hit_len, hit);
}

/* ------------------------------------------------------------ value text */

static void fmt_bound(char *buf, size_t n, const key_def *k, double v)
{
    if (k->type == K_DOUBLE)
        snprintf(buf, n, "%g", v);
    else
        snprintf(buf, n, "%.0f", v);
}

/* What a key accepts, e.g. "an integer in [1, 10000]". */
static void describe_allowed(const key_def *k, char *buf, size_t n)
{
    char lo[64], hi[64];
    fmt_bound(lo, sizeof lo, k, k->min);
    fmt_bound(hi, sizeof hi, k, k->max);
    const char *what = k->type == K_DOUBLE ? "a number" : "an integer";
    switch (k->type) {
    case K_BOOL:
        snprintf(buf, n, "a boolean (true/false, yes/no, on/off, 1/0)");
        return;
    case K_U64:
        snprintf(buf, n, "an integer in [0, %" PRIu64 "]", UINT64_MAX);
        return;
    case K_STRING:
        snprintf(buf, n, "a string of %s to %s characters", lo, hi);
        return;
    case K_ENUM:
        buf[0] = '\0';
        for (int i = 0; k->choices[i]; i++) cat(buf, n, "%s%s", i ? ", " : "", k->choices[i]);
        return;
    case K_OBJECTIVE:
        ds_objective_list(k->role, buf, n);
        return;
    case K_ENERGY:
        ds_energy_names(buf, n);
        return;
    case K_INT:
    case K_LONG:
    case K_DOUBLE:
        if (k->flags & NO_MAX)
            snprintf(buf, n, "%s %s %s", what, (k->flags & LO_OPEN) ? ">" : ">=", lo);
        else
            snprintf(buf, n, "%s in %c%s, %s%c", what, (k->flags & LO_OPEN) ? '(' : '[', lo, hi,
                     (k->flags & HI_OPEN) ? ')' : ']');
        return;
    }
}

static int parse_bool(const char *t, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(t, yes[i]) == 0) { *out = 1; return 1; }
        if (strcasecmp(t, no[i]) == 0) { *out = 0; return 1; }
    }
    return 0;
}

/* A finite double spelled by the whole of t. */
static int parse_double(const char *t, double *out)
{
    if (!*t || t[strspn(t, "0123456789+-.eE")] != '\0') return 0; /* no hex, inf, nan */
    char *end;
    errno = 0;
    double v = strtod(t, &end);
    if (*end != '\0' || end == t || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

/* A decimal integer, or a number that is exactly an integer ("1e5"). */
static int parse_integer(const char *t, long long *out)
{
    if (!*t) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(t, &end, 10);
    if (*end == '\0' && end != t) {
        if (errno == ERANGE) return 0;
        *out = v;
        return 1;
    }
    double d;
    if (!parse_double(t, &d) || d != floor(d) || fabs(d) > 9007199254740992.0) return 0;
    *out = (long long)d;
    return 1;
}

static int in_bounds(const key_def *k, double v)
{
    if ((k->flags & LO_OPEN) ? !(v > k->min) : !(v >= k->min)) return 0;
    if (k->flags & NO_MAX) return 1;
    return (k->flags & HI_OPEN) ? v < k->max : v <= k->max;
}

/* Stores text t into the field of k; 0 when t is not an allowed value. */
static int apply_text(const key_def *k, const char *t, ds_settings *s)
{
    char *field = (char *)s + k->offset;
    switch (k->type) {
    case K_BOOL: {
        int b;
        if (!parse_bool(t, &b)) return 0;
        memcpy(field, &b, sizeof b);
        return 1;
    }
    case K_INT:
    case K_LONG: {
        long long v;
        if (!parse_integer(t, &v) || !in_bounds(k, (double)v)) return 0;
        if (k->type == K_INT) {
            int iv = (int)v; /* bounds are within int */
            memcpy(field, &iv, sizeof iv);
        } else {
            long lv = (long)v;
            memcpy(field, &lv, sizeof lv);
        }
        return 1;
    }
    case K_U64: {
        const char *p = *t == '+' ? t + 1 : t;
        if (*p < '0' || *p > '9') return 0;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (*end != '\0' || errno == ERANGE || v > UINT64_MAX) return 0;
        uint64_t u = (uint64_t)v;
        memcpy(field, &u, sizeof u);
        return 1;
    }
    case K_DOUBLE: {
        double v;
        if (!parse_double(t, &v) || !in_bounds(k, v)) return 0;
        memcpy(field, &v, sizeof v);
        return 1;
    }
    case K_STRING: {
        size_t len = strlen(t);
        if ((double)len < k->min || (double)len > k->max) return 0;
        memcpy(field, t, len + 1);
        return 1;
    }
    case K_ENUM:
        for (int i = 0; k->choices[i]; i++)
            if (strcmp(t, k->choices[i]) == 0) {
                memcpy(field, &i, sizeof i);
                return 1;
            }
        return 0;
    case K_OBJECTIVE: {
        const ds_objective_info *o = ds_objective_lookup(t);
        unsigned need = k->role | DS_OBJF_IMPLEMENTED;
        if (!o || (o->flags & need) != need) return 0;
        int i = (int)o->kind;
        memcpy(field, &i, sizeof i);
        return 1;
    }
    case K_ENERGY: {
        size_t len = strlen(t);
        if (!ds_energy_lookup(t) || len > k->max) return 0;
        /* The keys set so far belong to the previous family. */
        if (strcmp(field, t) != 0) s->energy_args.count = 0;
        memcpy(field, t, len + 1);
        return 1;
    }
    }
    return 0;
}

/* Why a known name was refused, for the error message ("" when it is
 * simply unknown). */
static void refusal_reason(const key_def *k, const char *t, char *buf, size_t n)
{
    buf[0] = '\0';
    const ds_objective_info *o = k->type == K_OBJECTIVE ? ds_objective_lookup(t) : NULL;
    if (!o) return;
    if (!(o->flags & DS_OBJF_IMPLEMENTED))
        snprintf(buf, n, " ('%s' is named in DESIGN.md, but this build cannot train it)", t);
    else if (k->role == DS_OBJF_FORWARD)
        snprintf(buf, n, " ('%s' is only a backward objective: set objective.backward: %s with a forward "
                 "objective and objective.both_ways: true or local_search.enabled: true)", t, t);
    else
        snprintf(buf, n, " ('%s' cannot train on backward trajectories from the buffer)", t);
}

/* ----------------------------------------------------------------- errors */

/* Where a source is: a file name ("f.yaml:line:col: error: ", the form
 * compilers use, so editors jump to it) or a --set assignment
 * ("--set a.b=v: ", no position). */
typedef struct source {
    const char *name;
    int has_marks;
} source;

static ds_status src_error(const char *file, int line, const char *func, const source *src,
                           const yaml_mark_t *mark, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

static ds_status src_error(const char *file, int line, const char *func, const source *src,
                           const yaml_mark_t *mark, const char *fmt, ...)
{
    char msg[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap); /* truncating a long key list is acceptable */
    va_end(ap);
    if (src->has_marks && mark)
        return ds_error_set(DS_ERR_CONFIG, file, line, func, "%s:%zu:%zu: error: %s", src->name,
                            mark->line + 1, mark->column + 1, msg);
    return ds_error_set(DS_ERR_CONFIG, file, line, func, "%s: %s", src->name, msg);
}

#define SRC_ERR(src, mark, ...) src_error(__FILE__, __LINE__, __func__, (src), (mark), __VA_ARGS__)

/* A scalar as it appears in a message: at most 60 characters, control
 * characters shown as '?'. */
static void show_value(const char *t, char *buf, size_t n)
{
    size_t j = 0, i = 0;
    for (; t[i] && i < 60 && j + 1 < n; i++) buf[j++] = (unsigned char)t[i] < 0x20 ? '?' : t[i];
    buf[j] = '\0';
    if (t[i] && j + 4 < n) strcat(buf, "...");
}

static const char *node_kind(const yaml_node_t *node)
{
    return node->type == YAML_MAPPING_NODE ? "a mapping" : "a sequence";
}

/* The text of a scalar node, or NULL (with an error) when it holds a NUL. */
static const char *scalar_text(const source *src, const yaml_node_t *node, const char *what)
{
    const char *t = (const char *)node->data.scalar.value;
    if (strlen(t) != node->data.scalar.length) {
        SRC_ERR(src, &node->start_mark, "%s contains a NUL character", what);
        return NULL;
    }
    return t;
}

static int is_null_scalar(const yaml_node_t *node)
{
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *t = (const char *)node->data.scalar.value;
    return !*t || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 || strcmp(t, "Null") == 0 ||
           strcmp(t, "NULL") == 0;
}

static const ds_energy_vtable *family_of(const ds_settings *s);
static const ds_energy_vtable *family_or_base(const ds_settings *s);

/* Applies the value node of key k, reporting errors at the value. */
static ds_status apply_node(const source *src, const key_def *k, const yaml_node_t *node,
                            ds_settings *s)
{
    char allowed[1024];
    describe_allowed(k, allowed, sizeof allowed);
    if (node->type != YAML_SCALAR_NODE)
        return SRC_ERR(src, &node->start_mark, "key '%s': found %s, allowed: %s", k->path,
                       node_kind(node), allowed);
    const char *t = scalar_text(src, node, "value");
    if (!t) return DS_ERR_CONFIG;
    if (!apply_text(k, t, s)) {
        char shown[80], why[320];
        show_value(t, shown, sizeof shown);
        refusal_reason(k, t, why, sizeof why);
        return SRC_ERR(src, &node->start_mark, "key '%s': found '%s'%s, allowed: %s", k->path, shown,
                       why, allowed);
    }
    /* energy.dim must suit the family. */
    if (k->flags & ENERGY_DIM) {
        const ds_energy_vtable *vt = family_or_base(s);
        if (vt && s->energy_dim != 0 && vt->check_dim(s->energy_dim) != DS_OK) {
            ds_error_clear();
            char shown[80];
            show_value(t, shown, sizeof shown);
            return SRC_ERR(src, &node->start_mark,
                           "key '%s': found '%s', allowed for energy '%s': 0 (its default, %d) or %s",
                           k->path, shown, vt->name, vt->default_dim, vt->dims);
        }
    }
    return DS_OK;
}

/* A family chosen (at mark) after energy.dim was set by an earlier source
 * must accept that dim. */
static ds_status check_family_dim(const source *src, const yaml_mark_t *mark, const ds_settings *s)
{
    const ds_energy_vtable *vt = family_or_base(s);
    if (!vt || s->energy_dim == 0 || vt->check_dim(s->energy_dim) == DS_OK) return DS_OK;
    ds_error_clear();
    return SRC_ERR(src, mark,
                   "key 'energy.name': found '%s', but energy.dim is %d and energy '%s' allows "
                   "0 (its default, %d) or %s", vt->name, s->energy_dim, vt->name, vt->default_dim,
                   vt->dims);
}

/* ---------------------------------------------------- energy family keys */

/* The table of s's family: for energy.name plugin with energy.path set, the
 * library's (loaded on first use, energies/plugin.c); NULL with the error
 * set when it cannot be loaded. */
static const ds_energy_vtable *family_of(const ds_settings *s)
{
    const ds_energy_vtable *vt = NULL;
    return ds_energy_family(s->energy_name, &s->energy_args, &vt) == DS_OK ? vt : NULL;
}

/* The message of the current error without its "file:line func(): "
 * prefix and trace lines, into buf (to re-raise it at a config location). */
static const char *error_text(char *buf, size_t n)
{
    const char *m = ds_error_message(), *at = strstr(m, "(): ");
    if (at) m = at + 4;
    const char *end = strstr(m, "\n  from ");
    snprintf(buf, n, "%.*s", (int)(end ? (size_t)(end - m) : strlen(m)), m);
    return buf;
}

/* The same, else the registered table (the error cleared): for messages
 * and output. */
static const ds_energy_vtable *family_or_base(const ds_settings *s)
{
    const ds_energy_vtable *vt = family_of(s);
    if (!vt) {
        ds_error_clear();
        vt = ds_energy_lookup(s->energy_name);
    }
    return vt;
}

/* A key_def describing the family key ek, for messages and docs (path is
 * the caller's buffer for "energy.<name>"). */
static key_def family_key_def(const ds_energy_key *ek, char *path, size_t n)
{
    snprintf(path, n, "energy.%s", ek->name);
    key_def k = {path, K_DOUBLE, 0, 0, NULL, ek->min, ek->max, ek->lo_open ? LO_OPEN : 0u, NULL,
                 ek->doc, 0};
    switch (ek->type) {
    case DS_EKEY_BOOL: k.type = K_BOOL; break;
    case DS_EKEY_INT: k.type = K_LONG; break;
    case DS_EKEY_DOUBLE: k.type = K_DOUBLE; break;
    case DS_EKEY_STRING: k.type = K_STRING; break;
    }
    return k;
}

/* Parses t as a value of ek into out->num or out->text; 0 when not allowed. */
static int parse_family_value(const ds_energy_key *ek, const char *t, ds_energy_arg *out)
{
    char path[64];
    key_def k = family_key_def(ek, path, sizeof path);
    switch (ek->type) {
    case DS_EKEY_BOOL: {
        int b;
        if (!parse_bool(t, &b)) return 0;
        out->num = b;
        return 1;
    }
    case DS_EKEY_INT: {
        long long v;
        if (!parse_integer(t, &v) || !in_bounds(&k, (double)v)) return 0;
        out->num = (double)v;
        return 1;
    }
    case DS_EKEY_DOUBLE: {
        double v;
        if (!parse_double(t, &v) || !in_bounds(&k, v)) return 0;
        out->num = v;
        return 1;
    }
    case DS_EKEY_STRING: {
        size_t len = strlen(t);
        if (len >= DS_ENERGY_TEXT_MAX || (double)len < ek->min || (double)len > ek->max) return 0;
        memcpy(out->text, t, len + 1);
        return 1;
    }
    }
    return 0;
}

/* The value of family key ek in s: the one set, else the default. */
static void family_value(const ds_settings *s, const ds_energy_key *ek, ds_energy_arg *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->key, sizeof out->key, "%s", ek->name);
    out->num = ek->def;
    snprintf(out->text, sizeof out->text, "%s", ek->def_text ? ek->def_text : "");
    for (int j = 0; j < s->energy_args.count; j++)
        if (strcmp(s->energy_args.v[j].key, ek->name) == 0) {
            out->num = s->energy_args.v[j].num;
            memcpy(out->text, s->energy_args.v[j].text, sizeof out->text);
        }
}

/* Stores a value of ek in s->energy_args, replacing an earlier one. */
static void store_family_value(ds_settings *s, const ds_energy_key *ek, const ds_energy_arg *a)
{
    ds_energy_args *args = &s->energy_args;
    int j = 0;
    while (j < args->count && strcmp(args->v[j].key, ek->name) != 0) j++;
    if (j == args->count) {
        if (args->count >= DS_ENERGY_MAX_ARGS) return; /* cannot happen: nkeys <= DS_ENERGY_MAX_ARGS */
        args->count++;
    }
    args->v[j] = *a;
    snprintf(args->v[j].key, sizeof args->v[j].key, "%s", ek->name);
}

/* "name, dim, spacing, variance": every key of the energy section for vt. */
static void list_energy_keys(const ds_energy_vtable *vt, char *buf, size_t n)
{
    list_keys(find_section("energy", 6), buf, n);
    for (int i = 0; vt && i < vt->nkeys; i++) cat(buf, n, ", %s", vt->keys[i].name);
}

static ds_status unknown_family_key(const source *src, const yaml_mark_t *mark,
                                    const ds_settings *s, const char *name)
{
    const ds_energy_vtable *vt = family_or_base(s);
    char list[1024], hint[640] = "", owners[512] = "";
    list_energy_keys(vt, list, sizeof list);
    /* Families that do have the key, and a near miss among vt's keys. */
    for (int i = 0; i < ds_energy_registry_count(); i++) {
        const ds_energy_vtable *o = ds_energy_registry_get(i);
        if (o != vt && ds_energy_find_key(o, name)) cat(owners, sizeof owners, "%s%s", owners[0] ? ", " : "", o->name);
    }
    if (owners[0])
        snprintf(hint, sizeof hint, " (a key of energy %s: set energy.name to use it)", owners);
    else
        for (int i = 0; vt && i < vt->nkeys; i++)
            if (edit_distance(name, vt->keys[i].name) <= 2) {
                snprintf(hint, sizeof hint, " (did you mean 'energy.%s'?)", vt->keys[i].name);
                break;
            }
    return SRC_ERR(src, mark, "unknown key 'energy.%s' for energy '%s'%s; allowed keys: %s", name,
                   s->energy_name, hint, list);
}

/* Applies the value node of family key ek, reporting errors at the value. */
static ds_status apply_family_node(const source *src, const ds_energy_key *ek,
                                   const yaml_node_t *node, ds_settings *s)
{
    char path[64], allowed[1024];
    key_def k = family_key_def(ek, path, sizeof path);
    describe_allowed(&k, allowed, sizeof allowed);
    if (node && node->type != YAML_SCALAR_NODE)
        return SRC_ERR(src, &node->start_mark, "key '%s': found %s, allowed: %s", path,
                       node_kind(node), allowed);
    const char *t = node ? scalar_text(src, node, "value") : "";
    if (!t) return DS_ERR_CONFIG;
    ds_energy_arg a;
    memset(&a, 0, sizeof a);
    if (!parse_family_value(ek, t, &a)) {
        char shown[80];
        show_value(t, shown, sizeof shown);
        return SRC_ERR(src, node ? &node->start_mark : NULL, "key '%s': found '%s', allowed: %s",
                       path, shown, allowed);
    }
    store_family_value(s, ek, &a);
    return DS_OK;
}

/* ---------------------------------------------------------------- loading */

static ds_status unknown_section(const source *src, const yaml_mark_t *mark, const char *name)
{
    char list[1024], hint[160];
    list_sections(list, sizeof list);
    suggest(name, 1, hint, sizeof hint);
    return SRC_ERR(src, mark, "unknown section '%s'%s; allowed sections: %s", name, hint, list);
}

static ds_status unknown_key(const source *src, const yaml_mark_t *mark, int first,
                             const char *name)
{
    char list[1024], hint[160], path[256];
    int sl = (int)section_len(&keys[first]);
    list_keys(first, list, sizeof list);
    snprintf(path, sizeof path, "%.*s.%s", sl, keys[first].path, name);
    suggest(path, 0, hint, sizeof hint);
    return SRC_ERR(src, mark, "unknown key '%s' in section '%.*s'%s; allowed keys: %s", path, sl,
                   keys[first].path, hint, list);
}

/* Walks one document: a mapping of sections, each a mapping of keys. */
static ds_status apply_document(const source *src, yaml_document_t *doc, ds_settings *s)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root || is_null_scalar(root)) return DS_OK; /* an empty file changes nothing */
    char list[1024];
    list_sections(list, sizeof list);
    if (root->type != YAML_MAPPING_NODE)
        return SRC_ERR(src, &root->start_mark,
                       "expected a mapping of sections (%s), found %s", list,
                       root->type == YAML_SCALAR_NODE ? "a scalar" : node_kind(root));

    yaml_mark_t key_seen[NKEYS], section_seen[NKEYS];
    unsigned char key_set[NKEYS] = {0}, section_set[NKEYS] = {0};
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(doc, p->value);
        if (kn->type != YAML_SCALAR_NODE)
            return SRC_ERR(src, &kn->start_mark, "expected a section name, found %s",
                           node_kind(kn));
        const char *sec = scalar_text(src, kn, "section name");
        if (!sec) return DS_ERR_CONFIG;
        int first = find_section(sec, strlen(sec));
        if (first < 0) return unknown_section(src, &kn->start_mark, sec);
        if (section_set[first])
            return SRC_ERR(src, &kn->start_mark, "duplicate section '%s' (first at line %zu:%zu)",
                           sec, section_seen[first].line + 1, section_seen[first].column + 1);
        section_set[first] = 1;
        section_seen[first] = kn->start_mark;

        if (is_null_scalar(vn)) continue; /* "sampler:" with nothing under it */
        if (vn->type != YAML_MAPPING_NODE) {
            char keylist[1024];
            list_keys(first, keylist, sizeof keylist);
            return SRC_ERR(src, &vn->start_mark,
                           "section '%s': found %s, allowed: a mapping of keys (%s)", sec,
                           vn->type == YAML_SCALAR_NODE ? "a scalar" : node_kind(vn), keylist);
        }
        /* energy.name first: it chooses the family whose keys the rest are. */
        const int energy = strcmp(sec, "energy") == 0;
        yaml_mark_t family_seen[DS_ENERGY_MAX_ARGS];
        unsigned char family_set[DS_ENERGY_MAX_ARGS] = {0};
        /* Passes of the energy section: energy.name, then the keys of the
         * registered table (a plugin's energy.path), then the rest, whose
         * table may be a plugin library's. */
        yaml_mark_t base_mark = vn->start_mark;
        char why[1024];
        for (int pass = 0; pass < 1 + 2 * energy; pass++) {
        if (energy && pass == 2 && !family_of(s)) /* a plugin library that cannot be used */
            return SRC_ERR(src, &base_mark, "%s", error_text(why, sizeof why));
        for (yaml_node_pair_t *q = vn->data.mapping.pairs.start; q < vn->data.mapping.pairs.top;
             q++) {
            yaml_node_t *kk = yaml_document_get_node(doc, q->key);
            yaml_node_t *kv = yaml_document_get_node(doc, q->value);
            if (kk->type != YAML_SCALAR_NODE)
                return SRC_ERR(src, &kk->start_mark, "section '%s': expected a key name, found %s",
                               sec, node_kind(kk));
            const char *name = scalar_text(src, kk, "key name");
            if (!name) return DS_ERR_CONFIG;
            if (energy && (pass == 0) != (strcmp(name, "name") == 0)) continue;
            int ki = find_key(first, name);
            const int base_key = ki < 0 && ds_energy_find_key(ds_energy_lookup(s->energy_name), name);
            if (energy && pass > 0 && (pass == 1) != base_key) continue;
            if (ki < 0 && energy) {
                const ds_energy_vtable *vt = base_key ? ds_energy_lookup(s->energy_name) : family_of(s);
                if (!vt) return SRC_ERR(src, &base_mark, "%s", error_text(why, sizeof why));
                const ds_energy_key *ek = ds_energy_find_key(vt, name);
                if (!ek) return unknown_family_key(src, &kk->start_mark, s, name);
                if (base_key) base_mark = kv ? kv->start_mark : kk->start_mark;
                int fi = (int)(ek - vt->keys);
                if (family_set[fi])
                    return SRC_ERR(src, &kk->start_mark, "duplicate key 'energy.%s' (first at line %zu:%zu)",
                                   name, family_seen[fi].line + 1, family_seen[fi].column + 1);
                family_set[fi] = 1;
                family_seen[fi] = kk->start_mark;
                DS_TRY(apply_family_node(src, ek, kv, s));
                continue;
            }
            if (ki < 0) return unknown_key(src, &kk->start_mark, first, name);
            if (key_set[ki])
                return SRC_ERR(src, &kk->start_mark, "duplicate key '%s' (first at line %zu:%zu)",
                               keys[ki].path, key_seen[ki].line + 1, key_seen[ki].column + 1);
            key_set[ki] = 1;
            key_seen[ki] = kk->start_mark;
            DS_TRY(apply_node(src, &keys[ki], kv, s));
        }
        }
        if (energy) {
            /* A dim of this document was checked against the family already. */
            const int name_ki = find_key(first, "name"), dim_ki = find_key(first, "dim");
            if (key_set[name_ki] && !key_set[dim_ki])
                DS_TRY(check_family_dim(src, &key_seen[name_ki], s));
        }
    }
    return DS_OK;
}

static ds_status syntax_error(const source *src, const yaml_parser_t *parser, const char *text,
                              size_t len)
{
    const char *problem = parser->problem ? parser->problem : "malformed YAML";
    if (parser->error == YAML_MEMORY_ERROR)
        return ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__,
                            "%s: out of memory parsing YAML", src->name);
    if (parser->error == YAML_READER_ERROR) {
        /* Encoding errors carry a byte offset, not a mark. */
        yaml_mark_t m = {0, 0, 0};
        for (size_t i = 0; i < parser->problem_offset && i < len; i++) {
            if (text[i] == '\n') {
                m.line++;
                m.column = 0;
            } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
                m.column++;
            }
        }
        return SRC_ERR(src, &m, "YAML error: %s", problem);
    }
    if (parser->context)
        return SRC_ERR(src, &parser->problem_mark, "YAML syntax error: %s %s started at line %zu:%zu",
                       problem, parser->context, parser->context_mark.line + 1,
                       parser->context_mark.column + 1);
    return SRC_ERR(src, &parser->problem_mark, "YAML syntax error: %s", problem);
}

/* Parses text as exactly one YAML document into doc (the caller deletes it
 * on DS_OK; nothing to delete on error). */
static ds_status parse_document(const source *src, const char *text, size_t len,
                                yaml_document_t *doc)
{
    yaml_parser_t parser;
    DS_CHECK(yaml_parser_initialize(&parser), DS_ERR_NOMEM, "cannot create a YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    ds_status rc = DS_OK;
    if (!yaml_parser_load(&parser, doc)) {
        rc = syntax_error(src, &parser, text, len);
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_document_t extra;
    if (!yaml_parser_load(&parser, &extra)) {
        rc = syntax_error(src, &parser, text, len);
    } else {
        yaml_node_t *r = yaml_document_get_root_node(&extra);
        if (r)
            rc = SRC_ERR(src, &r->start_mark,
                         "a second YAML document; a config is one document");
        yaml_document_delete(&extra);
    }
    yaml_parser_delete(&parser);
    if (rc != DS_OK) yaml_document_delete(doc);
    return rc;
}

ds_status ds_settings_load_string(ds_settings *s, const char *yaml, const char *name)
{
    DS_CHECK(s && yaml, DS_ERR_INVALID, "ds_settings_load_string: NULL settings or text");
    source src = {name ? name : "<string>", 1};
    yaml_document_t doc;
    DS_TRY(parse_document(&src, yaml, strlen(yaml), &doc));
    ds_settings tmp = *s;
    ds_status rc = apply_document(&src, &doc, &tmp);
    yaml_document_delete(&doc);
    if (rc == DS_OK) *s = tmp;
    return rc;
}

ds_status ds_settings_load_file(ds_settings *s, const char *path)
{
    DS_CHECK(s && path, DS_ERR_INVALID, "ds_settings_load_file: NULL settings or path");
    FILE *f = fopen(path, "rb");
    DS_CHECK(f, DS_ERR_IO, "cannot open config file '%s': %s", path, strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0;
    ds_status rc = DS_OK;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            size_t ncap = cap ? 2 * cap : 16384;
            char *t = realloc(text, ncap);
            if (!t) {
                rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__,
                                  "out of memory reading '%s'", path);
                goto done;
            }
            text = t;
            cap = ncap;
        }
        size_t got = fread(text + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "cannot read config file '%s'",
                          path);
        goto done;
    }
    text[len] = '\0';
    if (strlen(text) != len) {
        rc = ds_error_set(DS_ERR_CONFIG, __FILE__, __LINE__, __func__,
                          "%s: contains a NUL byte (not a YAML text file?)", path);
        goto done;
    }
    rc = ds_settings_load_string(s, text, path);
    if (rc != DS_OK) ds_error_trace(__FILE__, __LINE__, __func__);
done:
    free(text);
    fclose(f);
    return rc;
}

ds_status ds_settings_set(ds_settings *s, const char *assignment)
{
    DS_CHECK(s && assignment, DS_ERR_INVALID, "ds_settings_set: NULL settings or assignment");
    char where[DS_PATH_MAX + 256];
    snprintf(where, sizeof where, "--set %s", assignment); /* truncation only shortens messages */
    source src = {where, 0};
    const char *eq = strchr(assignment, '=');
    if (!eq) return SRC_ERR(&src, NULL, "expected section.key=value");

    /* The key path, without surrounding blanks. */
    const char *b = assignment, *e = eq;
    while (b < e && (*b == ' ' || *b == '\t')) b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t')) e--;
    char path[256];
    if ((size_t)(e - b) >= sizeof path) return SRC_ERR(&src, NULL, "key path too long");
    memcpy(path, b, (size_t)(e - b));
    path[e - b] = '\0';
    char *dot = strchr(path, '.');
    if (!dot) {
        int first = find_section(path, strlen(path));
        if (first >= 0) {
            char list[1024];
            list_keys(first, list, sizeof list);
            return SRC_ERR(&src, NULL, "'%s' is a section; set one of its keys (%s.KEY=value): %s",
                           path, path, list);
        }
        return unknown_section(&src, NULL, path);
    }
    int first = find_section(path, (size_t)(dot - path));
    if (first < 0) {
        *dot = '\0';
        return unknown_section(&src, NULL, path);
    }
    int ki = find_key(first, dot + 1);
    if (ki < 0 && first == find_section("energy", 6)) {
        const ds_energy_vtable *fvt = ds_energy_find_key(ds_energy_lookup(s->energy_name), dot + 1)
                                          ? ds_energy_lookup(s->energy_name)
                                          : family_of(s);
        char why[1024];
        if (!fvt) return SRC_ERR(&src, NULL, "%s", error_text(why, sizeof why));
        const ds_energy_key *ek = ds_energy_find_key(fvt, dot + 1);
        if (!ek) return unknown_family_key(&src, NULL, s, dot + 1);
        yaml_document_t fdoc;
        DS_TRY(parse_document(&src, eq + 1, strlen(eq + 1), &fdoc));
        ds_settings *ftmp = malloc(sizeof *ftmp);
        if (!ftmp) {
            yaml_document_delete(&fdoc);
            return ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory");
        }
        *ftmp = *s;
        ds_status frc = apply_family_node(&src, ek, yaml_document_get_root_node(&fdoc), ftmp);
        yaml_document_delete(&fdoc);
        if (frc == DS_OK) *s = *ftmp;
        free(ftmp);
        return frc;
    }
    if (ki < 0) return unknown_key(&src, NULL, first, dot + 1);

    /* The value is one YAML scalar ("" when empty). */
    yaml_document_t doc;
    DS_TRY(parse_document(&src, eq + 1, strlen(eq + 1), &doc));
    ds_settings tmp = *s;
    ds_status rc = DS_OK;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        char allowed[1024];
        describe_allowed(&keys[ki], allowed, sizeof allowed);
        if (!apply_text(&keys[ki], "", &tmp))
            rc = SRC_ERR(&src, NULL, "key '%s': found '', allowed: %s", keys[ki].path, allowed);
    } else {
        rc = apply_node(&src, &keys[ki], root, &tmp);
        if (rc == DS_OK && keys[ki].type == K_ENERGY) rc = check_family_dim(&src, NULL, &tmp);
    }
    yaml_document_delete(&doc);
    if (rc == DS_OK) *s = tmp;
    return rc;
}

void ds_settings_defaults(ds_settings *s)
{
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < NKEYS; i++) {
        int ok = apply_text(&keys[i], keys[i].def, s);
        (void)ok; /* every default is checked by tests/test_config.c */
    }
}

/* -------------------------------------------------------------- validate */

#define CFG_FAIL(...) return ds_error_set(DS_ERR_CONFIG, __FILE__, __LINE__, __func__, __VA_ARGS__)

ds_status ds_settings_validate(const ds_settings *s)
{
    DS_CHECK(s, DS_ERR_INVALID, "ds_settings_validate: NULL settings");
    char list[1024];
    if (!ds_energy_lookup(s->energy_name))
        CFG_FAIL("energy.name '%s' is not a registered energy; allowed: %s", s->energy_name,
                 ds_energy_names(list, sizeof list));
    const ds_energy_vtable *vt = family_of(s);
    if (!vt) return ds_error_trace(__FILE__, __LINE__, __func__), DS_ERR_CONFIG;
    if (vt == ds_energy_lookup("plugin"))
        CFG_FAIL("energy.name plugin needs energy.path: the shared library of the energy (README: your own "
                 "energy)");
    if (s->energy_dim != 0 && vt->check_dim(s->energy_dim) != DS_OK) {
        ds_error_clear();
        CFG_FAIL("energy.dim is %d, but energy '%s' allows 0 (its default, %d) or %s", s->energy_dim,
                 vt->name, vt->default_dim, vt->dims);
    }
    for (int j = 0; j < s->energy_args.count; j++)
        if (!ds_energy_find_key(vt, s->energy_args.v[j].key))
            CFG_FAIL("energy.%.*s is not a key of energy '%s'; its keys: %s", DS_ENERGY_KEY_MAX - 1,
                     s->energy_args.v[j].key, vt->name, ds_energy_key_names(vt, list, sizeof list));
    const char *obj = ds_objective_name(s->objective);
    const int flow_obj = ds_objective_has(s->objective, DS_OBJF_FLOW);
    const int onpolicy = ds_objective_has(s->objective, DS_OBJF_ON_POLICY);
    /* The reader refuses these already; settings built in code get the same answer. */
    if (!ds_objective_has(s->objective, DS_OBJF_FORWARD | DS_OBJF_IMPLEMENTED))
        CFG_FAIL("objective.name '%s' cannot be the forward objective of this version", obj);
    if (!ds_objective_has(s->backward, DS_OBJF_BACKWARD | DS_OBJF_IMPLEMENTED))
        CFG_FAIL("objective.backward '%s' cannot train on backward trajectories",
                 ds_objective_name(s->backward));
    if (flow_obj && !s->conditional_flow)
        CFG_FAIL("objective.name '%s' needs a flow network: set sampler.conditional_flow: true",
                 obj);
    if (s->partial_energy && !s->conditional_flow)
        CFG_FAIL("sampler.partial_energy: true needs sampler.conditional_flow: true (the partial "
                 "energy is added to the flow network)");
    if (ds_objective_has(s->objective, DS_OBJF_PARTIAL_ENERGY) && !s->partial_energy)
        CFG_FAIL("objective.name '%s' needs sampler.partial_energy: true", obj);
    if (onpolicy && s->expl_factor > 0)
        CFG_FAIL("objective.name '%s' is on-policy (simulation-based) and cannot use exploration "
                 "noise: set exploration.factor: 0 (found %g), or use an off-policy objective "
                 "(tb, vargrad, db, subtb, fl-subtb)", obj, s->expl_factor);
    if (onpolicy && (s->both_ways || s->ls_enabled))
        CFG_FAIL("objective.name '%s' is on-policy (simulation-based) and cannot train both ways "
                 "from a replay buffer: set objective.both_ways: false and local_search.enabled: "
                 "false, or use an off-policy objective (tb, vargrad, db, subtb, fl-subtb)", obj);
    if (onpolicy && (s->conditional_flow || s->partial_energy))
        CFG_FAIL("objective.name '%s' is on-policy and learns no flow: set sampler.conditional_flow: false "
                 "and sampler.partial_energy: false", obj);
    if (vt->cond_dim > 0) {
        /* conditional targets: forward TB or VarGrad with exploration and LP (train_cond.c) */
        if (s->objective != DS_OBJ_TB && s->objective != DS_OBJ_VARGRAD)
            CFG_FAIL("energy '%s' is conditional: objective.name must be tb or vargrad (found '%s')", vt->name, obj);
        if ((s->both_ways || s->ls_enabled) && s->backward != DS_OBJ_TB && s->backward != DS_OBJ_VARGRAD)
            CFG_FAIL("energy '%s' is conditional: objective.backward must be tb or vargrad (found '%s')", vt->name,
                     ds_objective_name(s->backward));
        if (s->conditional_flow || s->partial_energy)
            CFG_FAIL("energy '%s' is conditional: its log Z(x) network is built in; set sampler.conditional_flow: "
                     "false and sampler.partial_energy: false", vt->name);
        if (s->batch_size % s->cond_repeats != 0)
            CFG_FAIL("train.batch_size (%d) must be a multiple of condition.repeats (%d): each condition gets "
                     "repeats trajectories", s->batch_size, s->cond_repeats);
    }
    if (s->beta_min > s->beta_max)
        CFG_FAIL("sampler.beta_min (%g) must not exceed sampler.beta_max (%g)", s->beta_min, s->beta_max);
    if (s->ls_burn_in >= s->ls_max_iter)
        CFG_FAIL("local_search.burn_in (%d) must be smaller than local_search.max_iter (%d)",
                 s->ls_burn_in, s->ls_max_iter);
    if (onpolicy && s->searcher_enabled)
        CFG_FAIL("objective.name '%s' is on-policy (simulation-based) and cannot train from the searcher's "
                 "buffer: set searcher.enabled: false, or use an off-policy objective (tb, vargrad, db, subtb, "
                 "fl-subtb)", obj);
    if (s->searcher_keep >= s->searcher_steps)
        CFG_FAIL("searcher.keep (%d) must be smaller than searcher.steps (%d)", s->searcher_keep,
                 s->searcher_steps);
    return DS_OK;
}

/* ---------------------------------------------------------------- writing */

/* Shortest "%.Ng" that reads back as exactly v, always with a '.' or an
 * exponent so that other YAML readers see a float. */
static void fmt_double(char *buf, size_t n, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eEn")) {
        cat(buf, n, ".0");
    } else if (strpbrk(buf, "eE") && !strchr(buf, '.')) {
        /* "1e-05" -> "1.0e-05": a YAML 1.1 float needs the dot. */
        char tmp[64];
        char *ep = strpbrk(buf, "eE");
        snprintf(tmp, sizeof tmp, "%.*s.0%s", (int)(ep - buf), buf, ep);
        snprintf(buf, n, "%s", tmp);
    }
}

/* A string as a YAML scalar: plain when that reads back as the same string
 * in any YAML reader, else double-quoted with escapes. */
static void fmt_string(char *buf, size_t n, const char *t)
{
    static const char *const words[] = {"true", "false", "yes", "no", "on", "off", "y",
                                        "n",    "null",  "~",   NULL};
    int plain = *t != '\0' && *t != '-' && *t != '.';
    for (const char *p = t; *p && plain; p++) {
        unsigned char c = (unsigned char)*p;
        plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-' || c == '.' || c == '/' || c == '+';
    }
    double d;
    if (plain && parse_double(t, &d)) plain = 0;
    for (int i = 0; plain && words[i]; i++)
        if (strcasecmp(t, words[i]) == 0) plain = 0;
    if (plain) {
        snprintf(buf, n, "%s", t);
        return;
    }
    buf[0] = '\0';
    cat(buf, n, "\"");
    for (const unsigned char *p = (const unsigned char *)t; *p;) {
        unsigned char c = *p;
        if (c < 0x80) {
            if (c == '"' || c == '\\')
                cat(buf, n, "\\%c", c);
            else if (c < 0x20 || c == 0x7f)
                cat(buf, n, "\\x%02x", c);
            else
                cat(buf, n, "%c", c);
            p++;
            continue;
        }
        /* A UTF-8 sequence: YAML reads U+0085, U+2028 and U+2029 as line
         * breaks (folded into a space inside quotes) and refuses the C1
         * controls and U+FFFE/U+FFFF raw, so those are escaped; the rest
         * stays as it is. */
        int len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
        uint32_t cp = len == 4 ? c & 0x07u : len == 3 ? c & 0x0fu : c & 0x1fu;
        for (int k = 1; k < len; k++) {
            if ((p[k] & 0xc0) != 0x80) {
                len = 0;
                break;
            }
            cp = cp << 6 | (p[k] & 0x3fu);
        }
        if (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) len = 0;
        if (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) len = 0;
        if (len == 0) {
            /* Not UTF-8 (the loaders refuse it, so only a caller's own string
             * can hold it): the nearest YAML can say is the code point. */
            cat(buf, n, "\\x%02x", c);
            p++;
            continue;
        }
        if (cp == 0x85)
            cat(buf, n, "\\N");
        else if (cp < 0xa0)
            cat(buf, n, "\\x%02x", (unsigned)cp);
        else if (cp == 0x2028)
            cat(buf, n, "\\L");
        else if (cp == 0x2029)
            cat(buf, n, "\\P");
        else if (cp == 0xfeff || cp == 0xfffe || cp == 0xffff)
            cat(buf, n, "\\u%04x", (unsigned)cp);
        else
            cat(buf, n, "%.*s", len, (const char *)p);
        p += len;
    }
    cat(buf, n, "\"");
}

/* The YAML text of the field of k in s; 0 for an out-of-range enum. */
static int fmt_value(const key_def *k, const ds_settings *s, char *buf, size_t n)
{
    const char *field = (const char *)s + k->offset;
    int i;
    long l;
    uint64_t u;
    double d;
    switch (k->type) {
    case K_BOOL:
        memcpy(&i, field, sizeof i);
        snprintf(buf, n, "%s", i ? "true" : "false");
        return 1;
    case K_INT:
        memcpy(&i, field, sizeof i);
        snprintf(buf, n, "%d", i);
        return 1;
    case K_LONG:
        memcpy(&l, field, sizeof l);
        snprintf(buf, n, "%ld", l);
        return 1;
    case K_U64:
        memcpy(&u, field, sizeof u);
        snprintf(buf, n, "%" PRIu64, u);
        return 1;
    case K_DOUBLE:
        memcpy(&d, field, sizeof d);
        fmt_double(buf, n, d);
        return 1;
    case K_STRING:
    case K_ENERGY:
        fmt_string(buf, n, field);
        return 1;
    case K_ENUM: {
        memcpy(&i, field, sizeof i);
        int count = 0;
        while (k->choices[count]) count++;
        if (i < 0 || i >= count) return 0;
        snprintf(buf, n, "%s", k->choices[i]);
        return 1;
    }
    case K_OBJECTIVE:
        memcpy(&i, field, sizeof i);
        if (!ds_objective_has((ds_objective)i, k->role | DS_OBJF_IMPLEMENTED)) return 0;
        snprintf(buf, n, "%s", ds_objective_name((ds_objective)i));
        return 1;
    }
    return 0;
}

static int is_last_energy_key(size_t i)
{
    return same_section(&keys[i], "energy", 6) && (i + 1 == NKEYS || is_section_start(i + 1));
}

/* The text of a family key's value (v->num or v->text). */
static void fmt_family_value(const ds_energy_key *ek, const ds_energy_arg *v, char *buf, size_t n)
{
    switch (ek->type) {
    case DS_EKEY_BOOL: snprintf(buf, n, "%s", v->num != 0 ? "true" : "false"); return;
    case DS_EKEY_INT: snprintf(buf, n, "%.0f", v->num); return;
    case DS_EKEY_DOUBLE: fmt_double(buf, n, v->num); return;
    case DS_EKEY_STRING: fmt_string(buf, n, v->text); return;
    }
    buf[0] = '\0';
}

/* The keys of the chosen family (every one, defaults included) under
 * energy:, and with docs a comment naming the other families' keys.
 * Returns nonzero on a write error. */
static int write_family_keys(const ds_settings *s, FILE *out, int docs)
{
    const ds_energy_vtable *vt = family_or_base(s);
    int bad = 0;
    for (int i = 0; vt && i < vt->nkeys; i++) {
        const ds_energy_key *ek = &vt->keys[i];
        ds_energy_arg v, d;
        family_value(s, ek, &v);
        memset(&d, 0, sizeof d);
        d.num = ek->def;
        snprintf(d.text, sizeof d.text, "%s", ek->def_text ? ek->def_text : "");
        char value[4 * DS_ENERGY_TEXT_MAX + 8], dflt[4 * DS_ENERGY_TEXT_MAX + 8];
        fmt_family_value(ek, &v, value, sizeof value);
        if (!docs) {
            bad |= fprintf(out, "  %s: %s\n", ek->name, value) < 0;
            continue;
        }
        fmt_family_value(ek, &d, dflt, sizeof dflt);
        char path[64], allowed[1024], line[4 * DS_ENERGY_TEXT_MAX + 96];
        key_def k = family_key_def(ek, path, sizeof path);
        describe_allowed(&k, allowed, sizeof allowed);
        if (k.type == K_BOOL) snprintf(allowed, sizeof allowed, "true or false");
        snprintf(line, sizeof line, "%s: %s", ek->name, value);
        bad |= fprintf(out, "  %-34s # (%s) %s; %s%s%s\n", line, vt->name, ek->doc, allowed,
                       strcmp(dflt, value) ? "; default " : "", strcmp(dflt, value) ? dflt : "") < 0;
    }
    if (docs) {
        /* At column 0: a comment, not one of the section's key lines. */
        bad |= fprintf(out, "# energy keys of the other families (valid with their energy.name):") < 0;
        const char *sep = "";
        for (int f = 0; f < ds_energy_registry_count(); f++) {
            const ds_energy_vtable *o = ds_energy_registry_get(f);
            if (o == vt) continue;
            char names[512];
            bad |= fprintf(out, "%s %s: %s", sep, o->name, ds_energy_key_names(o, names, sizeof names)) < 0;
            sep = ";";
        }
        bad |= fprintf(out, "\n") < 0;
    }
    return bad;
}

ds_status ds_settings_write_yaml(const ds_settings *s, FILE *out, int docs)
{
    DS_CHECK(s && out, DS_ERR_INVALID, "ds_settings_write_yaml: NULL settings or stream");
    ds_settings defaults;
    ds_settings_defaults(&defaults);
    int bad = 0;
    if (docs)
        bad |= fprintf(out, "# diffsamp configuration: every key, with its doc, what it allows "
                            "and, where the value differs, its default.\n") < 0;
    for (size_t i = 0; i < NKEYS && !bad; i++) {
        const key_def *k = &keys[i];
        if (is_section_start(i))
            bad |= fprintf(out, "%s%.*s:\n", i && docs ? "\n" : "", (int)section_len(k),
                           k->path) < 0;
        /* Worst case: every character of a string escaped as \xNN. */
        char value[4 * DS_PATH_MAX + 8];
        DS_CHECK(fmt_value(k, s, value, sizeof value), DS_ERR_INVALID,
                 "ds_settings_write_yaml: %s holds no valid value", k->path);
        if (!docs) {
            bad |= fprintf(out, "  %s: %s\n", leaf(k), value) < 0;
            if (is_last_energy_key(i)) bad |= write_family_keys(s, out, docs);
            continue;
        }
        char line[4 * DS_PATH_MAX + 96], allowed[1040], dflt[4 * DS_PATH_MAX + 8];
        snprintf(line, sizeof line, "%s: %s", leaf(k), value);
        if (k->type == K_BOOL)
            snprintf(allowed, sizeof allowed, "true or false");
        else if (k->type == K_ENUM || k->type == K_OBJECTIVE || k->type == K_ENERGY) {
            char list[1024];
            describe_allowed(k, list, sizeof list);
            snprintf(allowed, sizeof allowed, "one of %s", list);
        } else
            describe_allowed(k, allowed, sizeof allowed);
        const ds_energy_vtable *fam = family_or_base(s);
        if ((k->flags & ENERGY_DIM) && fam)
            cat(allowed, sizeof allowed, " that %s accepts: %s", fam->name, fam->dims);
        fmt_value(k, &defaults, dflt, sizeof dflt);
        bad |= fprintf(out, "  %-34s # %s; %s%s%s\n", line, k->doc, allowed,
                       strcmp(dflt, value) ? "; default " : "",
                       strcmp(dflt, value) ? dflt : "") < 0;
        if (is_last_energy_key(i)) bad |= write_family_keys(s, out, docs);
    }
    DS_CHECK(!bad && !ferror(out), DS_ERR_IO, "cannot write the configuration: %s",
             strerror(errno));
    return DS_OK;
}

ds_status ds_settings_to_yaml(const ds_settings *s, char **out)
{
    DS_CHECK(s && out, DS_ERR_INVALID, "ds_settings_to_yaml: NULL settings or output");
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    DS_CHECK(f, DS_ERR_NOMEM, "cannot open a memory stream: %s", strerror(errno));
    ds_status rc = ds_settings_write_yaml(s, f, 0);
    if (fclose(f) != 0 && rc == DS_OK)
        rc = ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__,
                          "cannot finish the memory stream");
    if (rc != DS_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    return DS_OK;
}


