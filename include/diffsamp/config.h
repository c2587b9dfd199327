/* config: every setting of a run, read from YAML through one declarative key
 * table (path, type, default, bounds, allowed values, doc) and one validator.
 *
 * Keys are nested YAML mappings addressed as "section.key" (DESIGN.md section
 * 4 fixes the names users rely on). Unknown keys, wrong types and
 * out-of-range values are DS_ERR_CONFIG errors whose message names
 * file:line:col, the key, what was found and what is allowed. `--set a.b=v`
 * overrides go through the same validator (reported as "--set").
 *
 * The `energy:` section holds the generic keys name and dim and the keys of
 * the chosen family, declared in its vtable (energy.h): `energy.<key>` is
 * checked against that family's table, with the same file:line:col errors;
 * a key of another family, or an unknown one, is refused naming the family
 * and its keys. Within one document energy.name is applied first, whatever
 * its position. Choosing another family (a later source, --set) drops the
 * keys set for the previous one. */
#ifndef DS_CONFIG_H
#define DS_CONFIG_H

#include "diffsamp/core.h"
#include "diffsamp/energy.h"
#include "diffsamp/exchange.h"
#include "diffsamp/objectives.h"

#include <stdio.h>

/* Enumerations: the order matches the allowed strings in the key table. */
typedef enum ds_expl_schedule { DS_EXPL_CONSTANT = 0, DS_EXPL_LINEAR } ds_expl_schedule;
typedef enum ds_priority { DS_PRIO_UNIFORM = 0, DS_PRIO_REWARD, DS_PRIO_RANK } ds_priority;

#define DS_NAME_MAX 64
#define DS_PATH_MAX 1024

typedef struct ds_settings {
    /* energy */
    char energy_name[DS_NAME_MAX]; /* energy.name: a registered energy */
    int energy_dim;                /* energy.dim: 0 = the energy's default */
    ds_energy_args energy_args;    /* energy.<key>: the family's keys that were set
                                      (the rest take the family's defaults) */

    /* objective */
    ds_objective objective;        /* objective.name */
    ds_objective backward;         /* objective.backward: tb, vargrad or mle */
    int both_ways;                 /* objective.both_ways (on when local search is) */
    double subtb_lambda;           /* objective.subtb_lambda */
    int recompute_every;           /* objective.recompute_every (on-policy memory: 0 = keep all) */
    int lp_through_grad;           /* objective.lp_through_grad (on-policy + LP: differentiate grad log R) */

    /* train */
    long iterations;               /* train.iterations */
    int batch_size;                /* train.batch_size */
    uint64_t seed;                 /* train.seed */
    double lr_policy;              /* train.lr_policy */
    double lr_flow;                /* train.lr_flow (log Z or flow network) */
    int log_every;                 /* train.log_every: progress line period */
    int check_every;               /* train.check_every: verify identical parameters on all ranks; 0 = never */
    double time_limit;             /* train.time_limit: seconds, then checkpoint and exit 3; 0 = none */
    long stop_iteration;           /* train.stop_iteration: checkpoint and exit 3 there; 0 = never */

    /* sampler (the policy network and the diffusion) */
    int T;                         /* sampler.T */
    double t_scale;                /* sampler.t_scale (sigma^2) */
    int hidden;                    /* sampler.hidden */
    int harmonics;                 /* sampler.harmonics */
    int joint_layers;              /* sampler.joint_layers */
    int lgv_layers;                /* sampler.lgv_layers */
    int langevin;                  /* sampler.langevin (LP) */
    int lgv_per_dimension;         /* sampler.langevin_per_dimension */
    int learned_variance;          /* sampler.learned_variance */
    double log_var_range;          /* sampler.log_var_range */
    int clipping;                  /* sampler.clipping */
    double lgv_clip;               /* sampler.lgv_clip */
    double gfn_clip;               /* sampler.gfn_clip */
    int zero_init;                 /* sampler.zero_init */
    int conditional_flow;          /* sampler.conditional_flow */
    int partial_energy;            /* sampler.partial_energy (FL-SubTB) */
    double beta_min, beta_max;     /* sampler.beta_min / beta_max (VP reference of dds, dis) */

    /* exploration */
    double expl_factor;            /* exploration.factor: 0 = off */
    ds_expl_schedule expl_schedule;/* exploration.schedule */
    long expl_decay_iterations;    /* exploration.decay_iterations (5000) */

    /* local search */
    int ls_enabled;                /* local_search.enabled */
    int ls_cycle;                  /* local_search.cycle */
    int ls_max_iter;               /* local_search.max_iter */
    int ls_burn_in;                /* local_search.burn_in */
    double ls_step;                /* local_search.ld_step */
    double ls_target_acceptance;   /* local_search.target_acceptance */
    double ls_adapt_up;            /* local_search.adapt_up (1.01) */
    double ls_adapt_down;          /* local_search.adapt_down (0.99) */
    double ls_beta;                /* local_search.beta: inverse temperature */
    int ls_carry_step;             /* local_search.carry_step: rounds go on from the adapted step */
    int ls_store_states;           /* local_search.store_states: chain states, not accepted proposals */

    /* MCMC searcher (searcher.h) */
    int searcher_enabled;          /* searcher.enabled */
    long searcher_chains;          /* searcher.chains (all ranks) */
    int searcher_every;            /* searcher.every: backward iterations between rounds */
    int searcher_steps;            /* searcher.steps: MALA steps per round */
    int searcher_keep;             /* searcher.keep: last steps of a round whose states are buffered */
    double searcher_step;          /* searcher.ld_step */
    double searcher_target_acceptance; /* searcher.target_acceptance */
    double searcher_init_var;      /* searcher.init_var */
    int searcher_smc_levels;       /* searcher.smc_levels: 0 = Gaussian start */
    long searcher_reinit_every;    /* searcher.reinit_every: 0 = never */
    int searcher_own_buffer;       /* searcher.own_buffer: its states in a buffer of their own (t->buf_ls) */

    /* replay buffer */
    long replay_capacity;          /* replay.capacity */
    ds_priority replay_priority;   /* replay.priority */
    double replay_beta;            /* replay.beta (reward priority) */
    double replay_rank_weight;     /* replay.rank_weight */
    int exchange_every;            /* replay.exchange_every: 0 = after each local-search round */
    int exchange_count;            /* replay.exchange_count: LS samples each rank sends */
    ds_exchange exchange_mode;     /* replay.exchange: best | random */

    /* evaluation */
    int eval_every;                /* eval.every */
    int eval_samples;              /* eval.samples */
    int eval_gt_samples;           /* eval.ground_truth_samples (0 = none) */
    int eval_paths;                /* eval.paths: backward paths per true sample */

    /* conditional targets (energies with cond_dim > 0, e.g. vae): the condition images */
    char cond_images[DS_PATH_MAX]; /* condition.images: idx file of the conditions (pixels / 255) */
    char cond_eval_images[DS_PATH_MAX]; /* condition.eval_images: idx file of the evaluation images ("": cond_images) */
    int cond_train_first;          /* condition.train_first */
    int cond_train_count;          /* condition.train_count */
    int cond_eval_first;           /* condition.eval_first */
    int cond_eval_count;           /* condition.eval_count */
    int cond_repeats;              /* condition.repeats: trajectories per condition in training (VarGrad's K) */
    int cond_eval_repeats;         /* condition.eval_repeats: forward samples per evaluation image */
    int cond_layers;               /* condition.hidden_layers: hidden layers of the conditional state encoder */

    /* VAE training (diffsamp vae-train) */
    char vae_train_images[DS_PATH_MAX]; /* vae_train.train_images: idx file (pixels / 255) */
    char vae_test_images[DS_PATH_MAX];  /* vae_train.test_images */
    long vae_subset;               /* vae_train.subset: first training images used; 0 = all */
    int vae_epochs;                /* vae_train.epochs */
    int vae_batch;                 /* vae_train.batch_size */
    double vae_lr;                 /* vae_train.lr */
    int vae_hidden;                /* vae_train.hidden */
    int vae_latent;                /* vae_train.latent */
    uint64_t vae_seed;             /* vae_train.seed */

    /* SMC baseline (diffsamp smc) */
    long smc_particles;            /* smc.particles */
    int smc_levels;                /* smc.levels */
    int smc_mcmc_steps;            /* smc.mcmc_steps */
    double smc_init_var;           /* smc.init_var */
    double smc_ess_threshold;      /* smc.ess_threshold */
    double smc_step;               /* smc.step */
    double smc_target_acceptance;  /* smc.target_acceptance */

    /* output */
    char out_dir[DS_PATH_MAX];     /* output.dir */
    int checkpoint_every;          /* output.checkpoint_every */
} ds_settings;

/* Fills s with every default of the key table. */
void ds_settings_defaults(ds_settings *s);
/* Applies a YAML file on top of s. Errors: DS_ERR_IO (cannot read, YAML
 * syntax: file:line:col), DS_ERR_CONFIG (unknown key, wrong type, out of
 * range, bad enum: file:line:col, key, found, allowed). */
ds_status ds_settings_load_file(ds_settings *s, const char *path);
/* The same for YAML text held in memory; name is used in messages. */
ds_status ds_settings_load_string(ds_settings *s, const char *yaml, const char *name);
/* Applies one "a.b=value" override (value parsed as a YAML scalar). */
ds_status ds_settings_set(ds_settings *s, const char *assignment);
/* Cross-key checks after all sources are applied (e.g. db/subtb need
 * sampler.conditional_flow; burn_in < max_iter). DS_ERR_CONFIG on failure. */
ds_status ds_settings_validate(const ds_settings *s);
/* Writes the effective config as YAML (every key, defaults included), each
 * key followed by a comment with its doc when docs != 0. */
ds_status ds_settings_write_yaml(const ds_settings *s, FILE *out, int docs);
/* The same into a malloc'ed string the caller frees with free(). */
ds_status ds_settings_to_yaml(const ds_settings *s, char **out);

#endif
