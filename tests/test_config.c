/* Tests of the config module: the defaults, a full file, every error kind
 * with its file:line:col, --set overrides, write/load round trips, the
 * cross-key checks and configs/reference.yaml.
 *
 * `test_config --write-reference PATH` regenerates configs/reference.yaml
 * (ds_settings_write_yaml of the defaults, with docs). */
#define _POSIX_C_SOURCE 200809L
#include "diffsamp/config.h"
#include "diffsamp/local_search.h"
#include "diffsamp/policy.h"
#include "testutil.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Every field of ds_settings, once (strings separately). */
#define DS_NUMERIC_FIELDS(X)                                                                  \
    X(energy_dim) X(objective) X(backward) X(both_ways) X(subtb_lambda) X(iterations)         \
    X(batch_size) X(seed) X(lr_policy) X(lr_flow) X(log_every) X(T) X(t_scale) X(hidden)      \
    X(harmonics) X(joint_layers) X(lgv_layers) X(langevin) X(lgv_per_dimension)               \
    X(learned_variance) X(log_var_range) X(clipping) X(lgv_clip) X(gfn_clip) X(zero_init)      \
    X(conditional_flow) X(partial_energy) X(expl_factor) X(expl_schedule)                     \
    X(expl_decay_iterations) X(ls_enabled) X(ls_cycle) X(ls_max_iter) X(ls_burn_in) X(ls_step) \
    X(ls_target_acceptance) X(ls_adapt_up) X(ls_adapt_down) X(ls_beta) X(replay_capacity)     \
    X(replay_priority) X(replay_beta) X(replay_rank_weight) X(eval_every) X(eval_samples)     \
    X(eval_gt_samples) X(eval_paths) X(checkpoint_every) X(recompute_every) X(beta_min) X(beta_max)  \
    X(smc_particles) X(smc_levels) X(smc_mcmc_steps) X(smc_init_var) X(smc_ess_threshold) X(smc_step) \
    X(smc_target_acceptance) X(lp_through_grad) X(cond_train_first) X(cond_train_count)          \
    X(cond_eval_first) X(cond_eval_count) X(cond_repeats) X(cond_eval_repeats) X(cond_layers)         \
    X(ls_store_states) X(ls_carry_step) X(searcher_enabled)                                           \
    X(searcher_chains) X(searcher_every) X(searcher_steps) X(searcher_keep) X(searcher_step)   \
    X(searcher_target_acceptance) X(searcher_init_var) X(searcher_reinit_every) X(searcher_smc_levels) X(searcher_own_buffer) \
    X(vae_subset) X(vae_epochs) X(vae_batch) X(vae_lr) X(vae_hidden) X(vae_latent) X(vae_seed)
#define DS_STRING_FIELDS(X) X(energy_name) X(out_dir) X(cond_images) X(cond_eval_images) X(vae_train_images) X(vae_test_images)

/* The effective value of family key k in s: the one set, else the default. */
static ds_energy_arg effective_arg(const ds_settings *s, const ds_energy_key *k)
{
    ds_energy_arg v;
    memset(&v, 0, sizeof v);
    v.num = k->def;
    snprintf(v.text, sizeof v.text, "%s", k->def_text ? k->def_text : "");
    for (int j = 0; j < s->energy_args.count; j++)
        if (strcmp(s->energy_args.v[j].key, k->name) == 0) {
            v.num = s->energy_args.v[j].num;
            memcpy(v.text, s->energy_args.v[j].text, sizeof v.text);
        }
    return v;
}

/* Name of the first field where a and b differ, or NULL when all are equal
 * (the energy family's keys compared by effective value). */
static const char *first_difference(const ds_settings *a, const ds_settings *b)
{
#define NUM_DIFF(f) if (a->f != b->f) return #f;
#define STR_DIFF(f) if (strcmp(a->f, b->f) != 0) return #f;
    DS_NUMERIC_FIELDS(NUM_DIFF)
    DS_STRING_FIELDS(STR_DIFF)
#undef NUM_DIFF
#undef STR_DIFF
    const ds_energy_vtable *vt = ds_energy_lookup(a->energy_name);
    for (int i = 0; vt && i < vt->nkeys; i++) {
        ds_energy_arg x = effective_arg(a, &vt->keys[i]), y = effective_arg(b, &vt->keys[i]);
        if (x.num != y.num || strcmp(x.text, y.text) != 0) return vt->keys[i].name;
    }
    return NULL;
}

/* Name of the first field where a and b are equal, or NULL when all differ. */
static const char *first_equal(const ds_settings *a, const ds_settings *b)
{
#define NUM_EQ(f) if (a->f == b->f) return #f;
#define STR_EQ(f) if (strcmp(a->f, b->f) == 0) return #f;
    DS_NUMERIC_FIELDS(NUM_EQ)
    DS_STRING_FIELDS(STR_EQ)
#undef NUM_EQ
#undef STR_EQ
    return NULL;
}

#define ASSERT_SAME(a, b)                                                                     \
    do {                                                                                      \
        const char *diff_ = first_difference((a), (b));                                       \
        ck_assert_msg(diff_ == NULL, "field %s differs", diff_ ? diff_ : "");                 \
    } while (0)

/* Writes text to a new file under /tmp; path gets its name. */
static void write_temp(const char *text, char path[64])
{
    snprintf(path, 64, "/tmp/ds_test_config_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(text);
    ck_assert(write(fd, text, len) == (ssize_t)len);
    close(fd);
}

static ds_status load_text(ds_settings *s, const char *text, char path[64])
{
    write_temp(text, path);
    ds_status rc = ds_settings_load_file(s, path);
    unlink(path);
    return rc;
}

/* Loads yaml from a temp file into the defaults; expects code and a message
 * containing "<file>" followed by `where` (e.g. ":2:6: key 'sampler.T'"),
 * and every further NULL-terminated needle. The settings must stay at the
 * defaults (loads are atomic). */
static void expect_file_error(const char *yaml, ds_status code, const char *where, ...)
{
    ds_settings s, d;
    ds_settings_defaults(&s);
    ds_settings_defaults(&d);
    char path[64];
    ds_error_clear();
    ds_status rc = load_text(&s, yaml, path);
    const char *msg = ds_error_message();
    ck_assert_msg(rc == code, "status %d, want %d for:\n%s\nmessage: %s", rc, code, yaml, msg);
    /* ":2:6: key ..." is reported as "FILE:2:6: error: key ...". */
    char want[512];
    const char *rest = strstr(where, ": ");
    if (rest)
        snprintf(want, sizeof want, "%s%.*s: error: %s", path, (int)(rest - where), where, rest + 2);
    else
        snprintf(want, sizeof want, "%s%s", path, where);
    ck_assert_msg(strstr(msg, want), "message lacks '%s':\n%s", want, msg);
    va_list ap;
    va_start(ap, where);
    for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *))
        ck_assert_msg(strstr(msg, n), "message lacks '%s':\n%s", n, msg);
    va_end(ap);
    ASSERT_SAME(&s, &d);
}

/* Applies --set a on the defaults; expects code and the needles. */
static void expect_set_error(const char *a, ds_status code, ...)
{
    ds_settings s, d;
    ds_settings_defaults(&s);
    ds_settings_defaults(&d);
    ds_error_clear();
    ds_status rc = ds_settings_set(&s, a);
    const char *msg = ds_error_message();
    ck_assert_msg(rc == code, "status %d, want %d for --set %s\nmessage: %s", rc, code, a, msg);
    char where[512];
    snprintf(where, sizeof where, "--set %s: ", a);
    ck_assert_msg(strstr(msg, where), "message lacks '%s':\n%s", where, msg);
    va_list ap;
    va_start(ap, code);
    for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *))
        ck_assert_msg(strstr(msg, n), "message lacks '%s':\n%s", n, msg);
    va_end(ap);
    ASSERT_SAME(&s, &d);
}

/* Every key set to a value other than its default, with YAML variety
 * (comments, quoting, boolean spellings, exponents, an anchor). */
static const char *full_yaml =
    "# a full config\n"
    "energy:\n"
    "  x0_std: 2.5          # a key of the family named below\n"
    "  name: easy_funnel\n"
    "  dim: 12\n"
    "objective: {name: subtb, backward: mle, both_ways: true, subtb_lambda: 1.5, recompute_every: 4,\n"
    "            lp_through_grad: yes}\n"
    "train:\n"
    "  iterations: 1e3      # an integral number is an integer\n"
    "  batch_size: &b 64\n"
    "  seed: 18446744073709551615\n"
    "  lr_policy: 5e-4\n"
    "  lr_flow: 0.1\n"
    "  log_every: 10\n"
    "sampler:\n"
    "  T: 50\n"
    "  t_scale: 1\n"
    "  hidden: 128\n"
    "  harmonics: 32\n"
    "  joint_layers: 3\n"
    "  lgv_layers: 4\n"
    "  langevin: yes\n"
    "  langevin_per_dimension: on\n"
    "  learned_variance: 1\n"
    "  log_var_range: 2.5\n"
    "  clipping: off\n"
    "  lgv_clip: 50.0\n"
    "  gfn_clip: 1.0e3\n"
    "  zero_init: No\n"
    "  conditional_flow: True\n"
    "  partial_energy: TRUE\n"
    "  beta_min: 0.2\n"
    "  beta_max: 20\n"
    "exploration:\n"
    "  factor: 0.2\n"
    "  schedule: linear\n"
    "  decay_iterations: 2000\n"
    "local_search:\n"
    "  enabled: true\n"
    "  cycle: 50\n"
    "  max_iter: 100\n"
    "  burn_in: 20\n"
    "  ld_step: 0.01\n"
    "  target_acceptance: 0.6\n"
    "  adapt_up: 1.05\n"
    "  adapt_down: 0.95\n"
    "  beta: 2.0\n"
    "  store_states: true\n"
    "  carry_step: true\n"
    "searcher: {enabled: true, chains: 64, every: 3, steps: 20, keep: 4, ld_step: 0.02, target_acceptance: 0.5,\n"
    "           init_var: 2.5, reinit_every: 700, smc_levels: 30, own_buffer: true}\n"
    "replay:\n"
    "  capacity: 1000\n"
    "  priority: reward\n"
    "  beta: 0.5\n"
    "  rank_weight: 0.1\n"
    "eval:\n"
    "  every: 500\n"
    "  samples: *b\n"
    "  ground_truth_samples: 0\n"
    "  paths: 5\n"
    "condition: {images: imgs.idx, eval_images: test.idx, train_first: 10, train_count: 50, eval_first: 5, eval_count: 7, repeats: 4,\n"
    "            eval_repeats: 3, hidden_layers: 1}\n"
    "smc: {particles: 500, levels: 20, mcmc_steps: 3, init_var: 4, ess_threshold: 0.3, step: 0.1,\n"
    "      target_acceptance: 0.6}\n"
    "vae_train: {train_images: tr.idx, test_images: te.idx, subset: 1000, epochs: 3, batch_size: 64,\n"
    "            lr: 0.002, hidden: 200, latent: 8, seed: 9}\n"
    "output:\n"
    "  dir: \"runs/test run: #1\"\n"
    "  checkpoint_every: 250\n";

static void load_full(ds_settings *s)
{
    ds_settings_defaults(s);
    char path[64];
    ds_status rc = load_text(s, full_yaml, path);
    ck_assert_msg(rc == DS_OK, "%s", ds_error_message());
}

START_TEST(defaults_are_the_reference_defaults)
{
    ds_settings s;
    ds_settings_defaults(&s);
    ck_assert_str_eq(s.energy_name, "25gmm");
    ck_assert_int_eq(s.energy_dim, 0);
    ck_assert_int_eq(s.objective, DS_OBJ_TB);
    ck_assert_int_eq(s.backward, DS_OBJ_TB);
    ck_assert_int_eq(s.both_ways, 0);
    ck_assert(s.subtb_lambda == 2.0);
    ck_assert(s.iterations == 25000);
    ck_assert_int_eq(s.batch_size, 300);
    ck_assert(s.seed == 12345);
    ck_assert(s.lr_policy == 1e-3);
    ck_assert(s.lr_flow == 1e-2);
    ck_assert_int_eq(s.log_every, 100);
    ck_assert_int_eq(s.T, 100);
    ck_assert(s.t_scale == 5.0);
    ck_assert_int_eq(s.hidden, 64);
    ck_assert_int_eq(s.harmonics, 64);
    ck_assert_int_eq(s.joint_layers, 2);
    ck_assert_int_eq(s.lgv_layers, 3);
    ck_assert_int_eq(s.langevin, 0);
    ck_assert_int_eq(s.lgv_per_dimension, 0);
    ck_assert_int_eq(s.learned_variance, 0);
    ck_assert(s.log_var_range == 4.0);
    ck_assert_int_eq(s.clipping, 1);
    ck_assert(s.lgv_clip == 100.0);
    ck_assert(s.gfn_clip == 1e4);
    ck_assert_int_eq(s.zero_init, 1);
    ck_assert_int_eq(s.conditional_flow, 0);
    ck_assert_int_eq(s.partial_energy, 0);
    ck_assert(s.expl_factor == 0.0);
    ck_assert_int_eq(s.expl_schedule, DS_EXPL_CONSTANT);
    ck_assert(s.expl_decay_iterations == 5000);
    ck_assert_int_eq(s.ls_enabled, 0);
    ck_assert_int_eq(s.ls_cycle, 100);
    ck_assert_int_eq(s.ls_max_iter, 200);
    ck_assert_int_eq(s.ls_burn_in, 100);
    ck_assert(s.ls_step == 0.1);
    ck_assert(s.ls_target_acceptance == 0.574);
    ck_assert(s.ls_adapt_up == 1.01);
    ck_assert(s.ls_adapt_down == 0.99);
    ck_assert(s.ls_beta == 1.0);
    ck_assert(s.replay_capacity == 600000);
    ck_assert_int_eq(s.replay_priority, DS_PRIO_RANK);
    ck_assert(s.replay_beta == 1.0);
    ck_assert(s.replay_rank_weight == 0.01);
    ck_assert_int_eq(s.eval_every, 1000);
    ck_assert_int_eq(s.eval_samples, 2000);
    ck_assert_int_eq(s.eval_gt_samples, 2000);
    ck_assert_int_eq(s.eval_paths, 10);
    ck_assert_str_eq(s.out_dir, "runs/default");
    ck_assert_int_eq(s.checkpoint_every, 1000);
    ck_assert_msg(ds_settings_validate(&s) == DS_OK, "%s", ds_error_message());

    /* An empty file, a comment-only file and an empty section change nothing. */
    const char *empties[] = {"", "# nothing\n", "---\n", "sampler:\n", "sampler: {}\n"};
    for (int i = 0; i < 5; i++) {
        ds_settings e;
        ds_settings_defaults(&e);
        char path[64];
        ck_assert_msg(load_text(&e, empties[i], path) == DS_OK, "%s", ds_error_message());
        ASSERT_SAME(&e, &s);
    }
}
END_TEST

START_TEST(full_file_sets_every_key)
{
    ds_settings s, d;
    load_full(&s);
    ds_settings_defaults(&d);
    /* The file sets every field to something else than its default. */
    const char *same = first_equal(&s, &d);
    ck_assert_msg(same == NULL, "full file leaves %s at its default", same ? same : "");
    ck_assert_str_eq(s.energy_name, "easy_funnel");
    ck_assert_int_eq(s.energy_dim, 12);
    ck_assert_int_eq(s.energy_args.count, 1);
    ck_assert_str_eq(s.energy_args.v[0].key, "x0_std");
    ck_assert(s.energy_args.v[0].num == 2.5);
    ck_assert_int_eq(s.objective, DS_OBJ_SUBTB);
    ck_assert_int_eq(s.backward, DS_OBJ_MLE);
    ck_assert(s.iterations == 1000);
    ck_assert(s.seed == UINT64_MAX);
    ck_assert(s.lr_policy == 5e-4);
    ck_assert(s.t_scale == 1.0);
    ck_assert_int_eq(s.langevin, 1);
    ck_assert_int_eq(s.lgv_per_dimension, 1);
    ck_assert_int_eq(s.learned_variance, 1);
    ck_assert_int_eq(s.clipping, 0);
    ck_assert_int_eq(s.zero_init, 0);
    ck_assert(s.gfn_clip == 1000.0);
    ck_assert_int_eq(s.expl_schedule, DS_EXPL_LINEAR);
    ck_assert_int_eq(s.replay_priority, DS_PRIO_REWARD);
    ck_assert_int_eq(s.eval_samples, 64); /* through the alias */
    ck_assert_int_eq(s.eval_gt_samples, 0);
    ck_assert_str_eq(s.out_dir, "runs/test run: #1");
    ck_assert_msg(ds_settings_validate(&s) == DS_OK, "%s", ds_error_message());

    /* Loading is layered: a second file changes only what it names. */
    ds_settings t = s;
    ck_assert(ds_settings_load_string(&t, "sampler: {T: 7}\n", "layer.yaml") == DS_OK);
    ck_assert_int_eq(t.T, 7);
    t.T = s.T;
    ASSERT_SAME(&t, &s);
}
END_TEST

START_TEST(value_errors_name_file_line_col_key_found_allowed)
{
    expect_file_error("sampler:\n  T: -3\n", DS_ERR_CONFIG,
                      ":2:6: key 'sampler.T': found '-3', allowed: an integer in [1, 10000]",
                      NULL);
    expect_file_error("sampler:\n  hidden: 64\n  T: 10001\n", DS_ERR_CONFIG,
                      ":3:6: key 'sampler.T': found '10001'", NULL);
    expect_file_error("sampler:\n  T: 2.5\n", DS_ERR_CONFIG, ":2:6: key 'sampler.T': found '2.5'",
                      NULL);
    expect_file_error("train:\n  lr_policy: abc\n", DS_ERR_CONFIG,
                      ":2:14: key 'train.lr_policy': found 'abc', allowed: a number > 0", NULL);
    expect_file_error("train:\n  lr_policy: 0\n", DS_ERR_CONFIG,
                      ":2:14: key 'train.lr_policy': found '0', allowed: a number > 0", NULL);
    expect_file_error("train:\n  lr_flow: .nan\n", DS_ERR_CONFIG, ":2:12: key 'train.lr_flow'",
                      NULL);
    expect_file_error("train:\n  lr_flow: 0x10\n", DS_ERR_CONFIG, ":2:12: key 'train.lr_flow'",
                      NULL);
    expect_file_error("local_search:\n  target_acceptance: 1\n", DS_ERR_CONFIG,
                      ":2:22: key 'local_search.target_acceptance': found '1', allowed: a number "
                      "in (0, 1)",
                      NULL);
    expect_file_error("train:\n  batch_size: 99999999999999999999\n", DS_ERR_CONFIG,
                      ":2:15: key 'train.batch_size'", "allowed: an integer in [1, 10000000]",
                      NULL);
    expect_file_error("train:\n  seed: -1\n", DS_ERR_CONFIG, ":2:9: key 'train.seed': found '-1'",
                      "allowed: an integer in [0, 18446744073709551615]", NULL);
    expect_file_error("train:\n  seed: 18446744073709551616\n", DS_ERR_CONFIG,
                      ":2:9: key 'train.seed'", NULL);
    expect_file_error("objective:\n  name: tbb\n", DS_ERR_CONFIG,
                      ":2:9: key 'objective.name': found 'tbb', allowed: tb, vargrad, db, subtb, "
                      "fl-subtb, pis, dds, dis",
                      NULL);
    /* A forward-only objective as the backward one: refused when read, at the value. */
    expect_file_error("\nobjective: {backward: pis}\n", DS_ERR_CONFIG,
                      ":2:23: key 'objective.backward': found 'pis' ('pis' cannot train on backward trajectories",
                      NULL);
    expect_file_error("objective:\n  name: mle\n", DS_ERR_CONFIG,
                      ":2:9: key 'objective.name': found 'mle' ('mle' is only a backward objective: "
                      "set objective.backward: mle",
                      NULL);
    expect_file_error("objective:\n  backward: db\n", DS_ERR_CONFIG,
                      ":2:13: key 'objective.backward': found 'db' ('db' cannot train on backward trajectories "
                      "from the buffer), allowed: tb, vargrad, mle",
                      NULL);
    expect_file_error("exploration:\n  schedule: cosine\n", DS_ERR_CONFIG,
                      ":2:13: key 'exploration.schedule': found 'cosine', allowed: constant, "
                      "linear",
                      NULL);
    expect_file_error("replay:\n  priority: Rank\n", DS_ERR_CONFIG,
                      ":2:13: key 'replay.priority': found 'Rank', allowed: uniform, reward, rank",
                      NULL);
    expect_file_error("sampler:\n  langevin: maybe\n", DS_ERR_CONFIG,
                      ":2:13: key 'sampler.langevin': found 'maybe', allowed: a boolean", NULL);
    expect_file_error("energy:\n  name: \"\"\n", DS_ERR_CONFIG,
                      ":2:9: key 'energy.name': found '', allowed: 9gmm, 25gmm, easy_funnel, hard_funnel, many_well, gaussian, lgcp, plugin, vae",
                      NULL);
    expect_file_error("energy:\n  name: "
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
                      DS_ERR_CONFIG, ":2:9: key 'energy.name': found 'aaaa", "...'", NULL);
    expect_file_error("sampler:\n  T:\n", DS_ERR_CONFIG, ":2:5: key 'sampler.T': found ''", NULL);
    /* A mapping or a sequence where a scalar is expected. */
    expect_file_error("sampler:\n  T:\n    x: 1\n", DS_ERR_CONFIG,
                      ":3:5: key 'sampler.T': found a mapping, allowed: an integer in [1, 10000]",
                      NULL);
    expect_file_error("sampler:\n  T: [1, 2]\n", DS_ERR_CONFIG,
                      ":2:6: key 'sampler.T': found a sequence", NULL);
    /* A failure after valid keys leaves the settings untouched (checked by
     * expect_file_error), and the first error is the one reported. */
    expect_file_error("sampler:\n  T: 50\n  hidden: 0\n  harmonics: 0\n", DS_ERR_CONFIG,
                      ":3:11: key 'sampler.hidden'", NULL);
}
END_TEST

START_TEST(structure_errors_name_file_line_col)
{
    expect_file_error("sampler:\n  Tee: 5\n", DS_ERR_CONFIG,
                      ":2:3: unknown key 'sampler.Tee' in section 'sampler'",
                      "did you mean 'sampler.T'?",
                      "allowed keys: T, t_scale, hidden, harmonics, joint_layers, lgv_layers, "
                      "langevin, langevin_per_dimension, learned_variance, log_var_range, "
                      "clipping, lgv_clip, gfn_clip, zero_init, conditional_flow, partial_energy",
                      NULL);
    expect_file_error("replay:\n  ld_step: 1\n", DS_ERR_CONFIG,
                      ":2:3: unknown key 'replay.ld_step' in section 'replay'",
                      "did you mean 'local_search.ld_step'?", NULL);
    expect_file_error("# comment\nsamplr:\n  T: 5\n", DS_ERR_CONFIG,
                      ":2:1: unknown section 'samplr'", "did you mean 'sampler'?",
                      "allowed sections: energy, objective, train, sampler, exploration, "
                      "local_search, searcher, replay, eval, condition, vae_train, smc, output",
                      NULL);
    expect_file_error("T: 5\n", DS_ERR_CONFIG, ":1:1: unknown section 'T'",
                      "did you mean 'sampler.T'?", NULL);
    expect_file_error("energy: {}\nsampler.T: 5\n", DS_ERR_CONFIG,
                      ":2:1: unknown section 'sampler.T'", "keys are nested", NULL);
    expect_file_error("sampler:\n  T: 5\n  hidden: 8\n  T: 6\n", DS_ERR_CONFIG,
                      ":4:3: duplicate key 'sampler.T' (first at line 2:3)", NULL);
    expect_file_error("sampler:\n  T: 5\neval: {}\nsampler:\n  hidden: 8\n", DS_ERR_CONFIG,
                      ":4:1: duplicate section 'sampler' (first at line 1:1)", NULL);
    expect_file_error("sampler: 5\n", DS_ERR_CONFIG,
                      ":1:10: section 'sampler': found a scalar, allowed: a mapping of keys (T, ",
                      NULL);
    expect_file_error("sampler:\n  - T\n", DS_ERR_CONFIG,
                      ":2:3: section 'sampler': found a sequence", NULL);
    expect_file_error("- a\n- b\n", DS_ERR_CONFIG,
                      ":1:1: expected a mapping of sections (energy, objective", "found a sequence",
                      NULL);
    expect_file_error("hello\n", DS_ERR_CONFIG, ":1:1: expected a mapping of sections",
                      "found a scalar", NULL);
    expect_file_error("sampler:\n  ? [a]\n  : 1\n", DS_ERR_CONFIG,
                      ":2:5: section 'sampler': expected a key name, found a sequence", NULL);
    expect_file_error("sampler: {T: 5}\n---\neval: {every: 3}\n", DS_ERR_CONFIG,
                      ":3:1: a second YAML document", NULL);
    /* YAML syntax errors are DS_ERR_CONFIG (bad user input, exit code 2). */
    expect_file_error("sampler:\n  T: [1, 2\n", DS_ERR_CONFIG, ":3:1: YAML syntax error", NULL);
    expect_file_error("sampler:\n  T: 5\n hidden: 3\n", DS_ERR_CONFIG, ":3:2: YAML syntax error",
                      NULL);
    expect_file_error("sampler:\n  T: \"5\n", DS_ERR_CONFIG, ":3:1: YAML syntax error", NULL);
    expect_file_error("sampler:\n  T: *nope\n", DS_ERR_CONFIG, ":2:6: YAML syntax error",
                      "undefined alias", NULL);
    expect_file_error("energy:\n  name: a\xff\n", DS_ERR_CONFIG, ":2:10: YAML error", NULL);
}
END_TEST

START_TEST(file_errors)
{
    ds_settings s;
    ds_settings_defaults(&s);
    ds_error_clear();
    ck_assert_int_eq(ds_settings_load_file(&s, "/nonexistent/dir/x.yaml"), DS_ERR_IO);
    ck_assert(strstr(ds_error_message(), "cannot open config file '/nonexistent/dir/x.yaml'"));
    ck_assert_int_eq(ds_settings_load_string(NULL, "", "x"), DS_ERR_INVALID);
    /* load_string names its source in messages. */
    ck_assert_int_eq(ds_settings_load_string(&s, "eval:\n  every: 0\n", "inline.yaml"),
                     DS_ERR_CONFIG);
    ck_assert(strstr(ds_error_message(), "inline.yaml:2:10: error: key 'eval.every': found '0'"));
}
END_TEST

START_TEST(set_overrides)
{
    ds_settings s, d;
    ds_settings_defaults(&s);
    ds_settings_defaults(&d);
    ck_assert(ds_settings_set(&s, "sampler.T=50") == DS_OK);
    ck_assert_int_eq(s.T, 50);
    ck_assert(ds_settings_set(&s, " train.lr_policy = 2e-4") == DS_OK);
    ck_assert(s.lr_policy == 2e-4);
    ck_assert(ds_settings_set(&s, "sampler.langevin=on") == DS_OK);
    ck_assert_int_eq(s.langevin, 1);
    ck_assert(ds_settings_set(&s, "objective.name=fl-subtb") == DS_OK);
    ck_assert_int_eq(s.objective, DS_OBJ_FLSUBTB);
    ck_assert(ds_settings_set(&s, "output.dir=runs/a b=c") == DS_OK);
    ck_assert_str_eq(s.out_dir, "runs/a b=c");
    ck_assert(ds_settings_set(&s, "energy.name='many_well'") == DS_OK);
    ck_assert_str_eq(s.energy_name, "many_well");
    ck_assert(ds_settings_set(&s, "train.seed=18446744073709551615") == DS_OK);
    ck_assert(s.seed == UINT64_MAX);
    /* --set applies on top of a file. */
    ck_assert(ds_settings_load_string(&s, "sampler: {T: 20}\n", "f.yaml") == DS_OK);
    ck_assert(ds_settings_set(&s, "sampler.T=30") == DS_OK);
    ck_assert_int_eq(s.T, 30);

    expect_set_error("sampler.T=-3", DS_ERR_CONFIG,
                     "--set sampler.T=-3: key 'sampler.T': found '-3', allowed: an integer in "
                     "[1, 10000]",
                     NULL);
    expect_set_error("sampler.T=", DS_ERR_CONFIG, "key 'sampler.T': found ''", NULL);
    expect_set_error("sampler.T={a: 1}", DS_ERR_CONFIG, "key 'sampler.T': found a mapping", NULL);
    expect_set_error("sampler.T=[1", DS_ERR_CONFIG, "YAML syntax error", NULL);
    expect_set_error("sampler.Tee=5", DS_ERR_CONFIG,
                     "unknown key 'sampler.Tee' in section 'sampler'", "allowed keys: T, t_scale",
                     NULL);
    expect_set_error("samplr.T=5", DS_ERR_CONFIG, "unknown section 'samplr'",
                     "did you mean 'sampler'?", "allowed sections: energy, objective", NULL);
    expect_set_error("sampler=5", DS_ERR_CONFIG, "'sampler' is a section", NULL);
    expect_set_error("T=5", DS_ERR_CONFIG, "unknown section 'T'", "did you mean 'sampler.T'?",
                     NULL);
    expect_set_error("sampler.T", DS_ERR_CONFIG, "expected section.key=value", NULL);
    expect_set_error("objective.name=tbb", DS_ERR_CONFIG,
                     "found 'tbb', allowed: tb, vargrad, db, subtb, fl-subtb, pis, dds, dis", NULL);
    expect_set_error("objective.backward=dds", DS_ERR_CONFIG, "--set objective.backward=dds",
                     "'dds' cannot train on backward trajectories", NULL);
    expect_set_error("sampler.clipping=maybe", DS_ERR_CONFIG, "allowed: a boolean", NULL);
}
END_TEST

/* Settings far from the defaults, with strings and doubles that need care. */
static void tricky_settings(ds_settings *s)
{
    load_full(s);
    s->energy_dim = 0;
    ck_assert(ds_settings_set(s, "energy.name=9gmm") == DS_OK);
    ck_assert(ds_settings_set(s, "energy.std=0.3333333333333333") == DS_OK);
    snprintf(s->out_dir, sizeof s->out_dir, "runs/\"q\" \\ : # - x\ty/\xc3\xa9");
    s->lr_policy = 1.0 / 3.0;
    s->lr_flow = 1e-300;
    s->t_scale = 0.1;
    s->gfn_clip = 1.7976931348623157e308;
    s->expl_factor = 5e-324;
    s->subtb_lambda = 100;
    s->iterations = 1000000000000000L;
    s->seed = 0;
}

static void expect_round_trip(const ds_settings *a, int docs)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert(ds_settings_write_yaml(a, f, docs) == DS_OK);
    fclose(f);
    ds_settings b;
    ds_settings_defaults(&b);
    ds_status rc = ds_settings_load_string(&b, text, "round-trip");
    ck_assert_msg(rc == DS_OK, "%s\n%s", ds_error_message(), text);
    ASSERT_SAME(&b, a);
    /* And the text is a fixed point. */
    char *again = NULL;
    ck_assert(ds_settings_to_yaml(&b, &again) == DS_OK);
    char *first = NULL;
    ck_assert(ds_settings_to_yaml(a, &first) == DS_OK);
    ck_assert_str_eq(again, first);
    free(again);
    free(first);
    free(text);
}

START_TEST(write_then_load_round_trips)
{
    ds_settings s;
    ds_settings_defaults(&s);
    expect_round_trip(&s, 0);
    expect_round_trip(&s, 1);
    load_full(&s);
    expect_round_trip(&s, 0);
    expect_round_trip(&s, 1);
    tricky_settings(&s);
    expect_round_trip(&s, 0);
    expect_round_trip(&s, 1);

    /* The shape of the output: nested, plain where safe, floats look like floats. */
    ds_settings_defaults(&s);
    char *text = NULL;
    ck_assert(ds_settings_to_yaml(&s, &text) == DS_OK);
    const char *head = "energy:\n  name: 25gmm\n  dim: 0\n  spacing: 5.0\n  variance: 0.3\nobjective:\n  name: tb\n";
    ck_assert_msg(strncmp(text, head, strlen(head)) == 0, "%s", text);
    ck_assert(strstr(text, "\n  t_scale: 5.0\n"));
    ck_assert(strstr(text, "\n  lr_policy: 0.001\n"));
    ck_assert(strstr(text, "\n  gfn_clip: 10000.0\n"));
    ck_assert(strstr(text, "\noutput:\n  dir: runs/default\n  checkpoint_every: 1000\n"));
    free(text);
    tricky_settings(&s);
    ck_assert(ds_settings_to_yaml(&s, &text) == DS_OK);
    ck_assert_msg(strstr(text, "energy:\n  name: 9gmm\n  dim: 0\n  spacing: 5.0\n  std: 0.3333333333333333\n"),
                  "%s", text);
    ck_assert(strstr(text, "\n  lr_flow: 1.0e-300\n"));
    free(text);

    /* With docs, every key line carries its doc and what is allowed. */
    ds_settings_defaults(&s);
    s.T = 50;
    FILE *f = open_memstream(&text, &(size_t){0});
    ck_assert(ds_settings_write_yaml(&s, f, 1) == DS_OK);
    fclose(f);
    ck_assert(strstr(text, "T: 50"));
    ck_assert(strstr(text, "# number of diffusion steps (dt = 1/T); an integer in [1, 10000]; "
                           "default 100\n"));
    ck_assert(strstr(text, "# training objective; mle is only a backward objective"));
    ck_assert(strstr(text, "one of tb, vargrad, db, subtb, fl-subtb, pis, dds, dis\n"));
    ck_assert(strstr(text, "one of tb, vargrad, mle\n"));
    /* The chosen family's keys, and the others' names. */
    ck_assert_msg(strstr(text, "  variance: 0.3                      # (25gmm) variance of each mixture "
                               "component; a number in (0, 1e+12]\n"), "%s", text);
    ck_assert(strstr(text, "# energy keys of the other families (valid with their energy.name): 9gmm: "
                           "spacing, std; easy_funnel: x0_std; hard_funnel: x0_std; many_well: none;"));
    ck_assert(strstr(text, "one of 9gmm, 25gmm, easy_funnel, hard_funnel, many_well, gaussian, lgcp, plugin, vae\n"));
    free(text);

    ck_assert_str_eq(ds_objective_name(DS_OBJ_FLSUBTB), "fl-subtb");
    ck_assert_str_eq(ds_objective_name(DS_OBJ_DIS), "dis");
    ck_assert_str_eq(ds_objective_name((ds_objective)42), "unknown");
    /* An invalid enum value is refused, not written. */
    s.replay_priority = (ds_priority)7;
    ck_assert_int_eq(ds_settings_to_yaml(&s, &text), DS_ERR_INVALID);
    ck_assert_ptr_null(text);
}
END_TEST

/* Applies the --set assignments (NULL-terminated) to the defaults and
 * expects validate to fail with the needle, or pass when needle is NULL. */
static void expect_validate(const char *needle, ...)
{
    ds_settings s;
    ds_settings_defaults(&s);
    va_list ap;
    va_start(ap, needle);
    for (const char *a = va_arg(ap, const char *); a; a = va_arg(ap, const char *))
        ck_assert_msg(ds_settings_set(&s, a) == DS_OK, "%s", ds_error_message());
    va_end(ap);
    ds_error_clear();
    ds_status rc = ds_settings_validate(&s);
    if (!needle) {
        ck_assert_msg(rc == DS_OK, "%s", ds_error_message());
        return;
    }
    ck_assert_int_eq(rc, DS_ERR_CONFIG);
    ck_assert_msg(strstr(ds_error_message(), needle), "message lacks '%s':\n%s", needle,
                  ds_error_message());
}

START_TEST(validate_cross_checks)
{
    expect_validate(NULL, NULL);
    expect_validate("objective.name 'db' needs a flow network: set sampler.conditional_flow: true",
                    "objective.name=db", NULL);
    expect_validate("objective.name 'subtb' needs a flow network", "objective.name=subtb", NULL);
    expect_validate(NULL, "objective.name=subtb", "sampler.conditional_flow=true", NULL);
    expect_validate("objective.name 'fl-subtb' needs a flow network", "objective.name=fl-subtb",
                    NULL);
    expect_validate("objective.name 'fl-subtb' needs sampler.partial_energy: true",
                    "objective.name=fl-subtb", "sampler.conditional_flow=true", NULL);
    expect_validate(NULL, "objective.name=fl-subtb", "sampler.conditional_flow=true",
                    "sampler.partial_energy=true", NULL);
    expect_validate("sampler.partial_energy: true needs sampler.conditional_flow: true",
                    "sampler.partial_energy=true", NULL);
    expect_validate("local_search.burn_in (200) must be smaller than local_search.max_iter (200)",
                    "local_search.burn_in=200", NULL);
    expect_validate(NULL, "local_search.burn_in=0", "local_search.max_iter=1", NULL);
    expect_validate(NULL, "objective.backward=mle", "objective.both_ways=true", NULL);
    /* on-policy objectives: no exploration, no buffer, no flow; the VP schedule ordered */
    expect_validate(NULL, "objective.name=pis", "sampler.langevin=true", NULL);
    expect_validate(NULL, "objective.name=dds", "objective.recompute_every=10", NULL);
    expect_validate("objective.name 'pis' is on-policy", "objective.name=pis", "exploration.factor=0.1", NULL);
    expect_validate("set exploration.factor: 0", "objective.name=dds", "exploration.factor=0.1", NULL);
    expect_validate("cannot train both ways", "objective.name=dis", "objective.both_ways=yes", NULL);
    expect_validate("cannot train both ways", "objective.name=pis", "local_search.enabled=yes", NULL);
    expect_validate("learns no flow", "objective.name=pis", "sampler.conditional_flow=true", NULL);
    expect_validate("sampler.beta_min (20) must not exceed sampler.beta_max (10)", "objective.name=dds",
                    "sampler.beta_min=20", NULL);
    /* Settings built in code get the reader's answer from validation. */
    ds_settings s;
    ds_settings_defaults(&s);
    s.objective = DS_OBJ_MLE;
    ck_assert_int_eq(ds_settings_validate(&s), DS_ERR_CONFIG);
    ck_assert(strstr(ds_error_message(), "objective.name 'mle' cannot be the forward objective"));
    ds_settings_defaults(&s);
    s.backward = DS_OBJ_DB;
    ck_assert_int_eq(ds_settings_validate(&s), DS_ERR_CONFIG);
    ck_assert(strstr(ds_error_message(), "objective.backward 'db' cannot train on backward"));
    /* Local search without both_ways is valid: the trainer turns both ways on. */
    expect_validate(NULL, "local_search.enabled=true", "exploration.factor=0.1", NULL);
}
END_TEST

/* The energy section: energy.name checked against the registry, energy.dim
 * against the family, and the family's own keys, all with file:line:col. */
START_TEST(energy_section_is_the_family_s)
{
    expect_file_error("energy:\n  name: nope\n", DS_ERR_CONFIG,
                      ":2:9: key 'energy.name': found 'nope', allowed: 9gmm, 25gmm, easy_funnel, "
                      "hard_funnel, many_well, gaussian, lgcp, plugin, vae", NULL);
    expect_file_error("energy:\n  dim: 3\n", DS_ERR_CONFIG,
                      ":2:8: key 'energy.dim': found '3', allowed for energy '25gmm': 0 (its default, 2) or 2",
                      NULL);
    expect_file_error("energy:\n  dim: 7\n  name: many_well\n", DS_ERR_CONFIG,
                      ":2:8: key 'energy.dim': found '7', allowed for energy 'many_well': 0 (its default, "
                      "32) or even, 2 to 65536", NULL);
    /* A key of another family, and an unknown one, name the family and its keys. */
    expect_file_error("energy:\n  std: 0.7\n", DS_ERR_CONFIG,
                      ":2:3: unknown key 'energy.std' for energy '25gmm' (a key of energy 9gmm: set "
                      "energy.name to use it); allowed keys: name, dim, spacing, variance", NULL);
    expect_file_error("energy:\n  name: gaussian\n  variance: 2\n", DS_ERR_CONFIG,
                      ":3:3: unknown key 'energy.variance' for energy 'gaussian' (a key of energy 25gmm",
                      "allowed keys: name, dim\n", NULL);
    expect_file_error("energy:\n  name: 25gmm\n  spacng: 2\n", DS_ERR_CONFIG,
                      ":3:3: unknown key 'energy.spacng' for energy '25gmm' (did you mean 'energy.spacing'?)",
                      NULL);
    expect_file_error("energy:\n  name: 9gmm\n  std: -1\n", DS_ERR_CONFIG,
                      ":3:8: key 'energy.std': found '-1', allowed: a number in (0, 1e+06]", NULL);
    expect_file_error("energy:\n  name: 9gmm\n  std: [1]\n", DS_ERR_CONFIG,
                      ":3:8: key 'energy.std': found a sequence", NULL);
    expect_file_error("energy:\n  name: 9gmm\n  std: 1\n  std: 2\n", DS_ERR_CONFIG,
                      ":4:3: duplicate key 'energy.std' (first at line 3:3)", NULL);

    /* Keys apply to the family named in the same document, wherever the name is. */
    ds_settings s;
    ds_settings_defaults(&s);
    ck_assert_int_eq(s.energy_args.count, 0);
    ck_assert(ds_settings_load_string(&s, "energy: {std: 0.7, name: 9gmm}\n", "e.yaml") == DS_OK);
    ck_assert_int_eq(s.energy_args.count, 1);
    ck_assert(s.energy_args.v[0].num == 0.7);
    ck_assert(ds_settings_set(&s, "energy.std=0.8") == DS_OK); /* replaces, does not add */
    ck_assert_int_eq(s.energy_args.count, 1);
    ck_assert(s.energy_args.v[0].num == 0.8);
    ck_assert(ds_settings_set(&s, "energy.spacing=4") == DS_OK);
    ck_assert_int_eq(s.energy_args.count, 2);
    ck_assert_msg(ds_settings_validate(&s) == DS_OK, "%s", ds_error_message());
    /* The trainer gets them: the energy built from the settings has them. */
    ds_energy *e = NULL;
    ck_assert_msg(ds_energy_create(s.energy_name, s.energy_dim, &s.energy_args, &e) == DS_OK, "%s",
                  ds_error_message());
    int per_axis = 0;
    double spacing = 0;
    ck_assert(ds_energy_mode_grid(e, &per_axis, &spacing));
    ck_assert(per_axis == 3 && spacing == 4.0);
    ds_energy_destroy(&e);
    /* The same family again keeps them; another family drops them. */
    ck_assert(ds_settings_set(&s, "energy.name=9gmm") == DS_OK);
    ck_assert_int_eq(s.energy_args.count, 2);
    ck_assert(ds_settings_set(&s, "energy.name=25gmm") == DS_OK);
    ck_assert_int_eq(s.energy_args.count, 0);
    expect_set_error("energy.std=0.5", DS_ERR_CONFIG,
                     "unknown key 'energy.std' for energy '25gmm' (a key of energy 9gmm", NULL);
    expect_set_error("energy.variance=0", DS_ERR_CONFIG,
                     "--set energy.variance=0: key 'energy.variance': found '0', allowed: a number in (0, 1e+12]",
                     NULL);
    expect_set_error("energy.variance=", DS_ERR_CONFIG, "key 'energy.variance': found ''", NULL);
    expect_set_error("energy.name=nope", DS_ERR_CONFIG, "found 'nope', allowed: 9gmm, 25gmm", NULL);
    expect_set_error("energy.dim=3", DS_ERR_CONFIG, "allowed for energy '25gmm': 0 (its default, 2) or 2",
                     NULL);
    /* A family chosen after energy.dim was set must accept that dim. */
    ds_settings_defaults(&s);
    ck_assert(ds_settings_set(&s, "energy.name=gaussian") == DS_OK);
    ck_assert(ds_settings_set(&s, "energy.dim=5") == DS_OK);
    ds_error_clear();
    ck_assert_int_eq(ds_settings_set(&s, "energy.name=many_well"), DS_ERR_CONFIG);
    ck_assert_msg(strstr(ds_error_message(), "found 'many_well', but energy.dim is 5 and energy "
                                             "'many_well' allows 0 (its default, 32) or even"),
                  "%s", ds_error_message());
    ck_assert_str_eq(s.energy_name, "gaussian");

    /* Settings built in code: validation gives the reader's answers. */
    ds_settings_defaults(&s);
    snprintf(s.energy_name, sizeof s.energy_name, "nope");
    ck_assert_int_eq(ds_settings_validate(&s), DS_ERR_CONFIG);
    ck_assert(strstr(ds_error_message(), "energy.name 'nope' is not a registered energy; allowed: 9gmm"));
    ds_settings_defaults(&s);
    s.energy_dim = 3;
    ck_assert_int_eq(ds_settings_validate(&s), DS_ERR_CONFIG);
    ck_assert(strstr(ds_error_message(), "energy.dim is 3, but energy '25gmm' allows 0 (its default, 2) or 2"));
    ds_settings_defaults(&s);
    s.energy_args.count = 1;
    snprintf(s.energy_args.v[0].key, sizeof s.energy_args.v[0].key, "std");
    ck_assert_int_eq(ds_settings_validate(&s), DS_ERR_CONFIG);
    ck_assert(strstr(ds_error_message(), "energy.std is not a key of energy '25gmm'; its keys: spacing, variance"));
    ds_error_clear();
}
END_TEST

/* Documented bounds are the enforced ones, and defaults have one source. */
START_TEST(bounds_and_defaults_match_the_modules)
{
    char y[128];
    snprintf(y, sizeof y, "sampler:\n  joint_layers: %d\n", DS_MAX_LAYERS + 1);
    char want[128];
    snprintf(want, sizeof want, ":2:17: key 'sampler.joint_layers': found '%d', allowed: an integer in [0, %d]",
             DS_MAX_LAYERS + 1, DS_MAX_LAYERS);
    expect_file_error(y, DS_ERR_CONFIG, want, NULL);
    snprintf(y, sizeof y, "sampler:\n  lgv_layers: %d\n", DS_MAX_LAYERS + 1);
    snprintf(want, sizeof want, ":2:15: key 'sampler.lgv_layers': found '%d', allowed: an integer in [1, %d]",
             DS_MAX_LAYERS + 1, DS_MAX_LAYERS);
    expect_file_error(y, DS_ERR_CONFIG, want, NULL);
    snprintf(y, sizeof y, "local_search:\n  max_iter: %d\n", DS_LS_UNIFORM_STEP + 1);
    snprintf(want, sizeof want, ":2:13: key 'local_search.max_iter': found '%d', allowed: an integer in [1, %d]",
             DS_LS_UNIFORM_STEP + 1, DS_LS_UNIFORM_STEP);
    expect_file_error(y, DS_ERR_CONFIG, want, NULL);
    expect_file_error("replay:\n  capacity: 4294967295\n", DS_ERR_CONFIG,
                      ":2:13: key 'replay.capacity': found '4294967295', allowed: an integer in [1, 4294967294]",
                      NULL);
    /* The largest allowed values load. */
    ds_settings s;
    ds_settings_defaults(&s);
    snprintf(y, sizeof y, "sampler: {joint_layers: %d, lgv_layers: %d}\n", DS_MAX_LAYERS, DS_MAX_LAYERS);
    ck_assert_msg(ds_settings_load_string(&s, y, "max.yaml") == DS_OK, "%s", ds_error_message());
    /* local_search.ld_step and ds_ls_params_init share one default. */
    ds_settings_defaults(&s);
    ds_ls_params p;
    ds_ls_params_init(&p);
    ck_assert(s.ls_step == p.step);
    ck_assert(s.ls_step == 0.1);
}
END_TEST

START_TEST(reference_yaml_documents_every_default)
{
    const char *path = DS_SOURCE_DIR "/configs/reference.yaml";
    /* Start from values that differ from every default: whatever the
     * reference file leaves unset would show as a difference. */
    ds_settings s, d;
    load_full(&s);
    ds_settings_defaults(&d);
    ds_status rc = ds_settings_load_file(&s, path);
    ck_assert_msg(rc == DS_OK, "%s", ds_error_message());
    const char *diff = first_difference(&s, &d);
    ck_assert_msg(diff == NULL,
                  "configs/reference.yaml is stale at %s; regenerate it with "
                  "`test_config --write-reference configs/reference.yaml`",
                  diff ? diff : "");
    /* And every key carries its doc comment. */
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[4096];
    int keys = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "  ", 2) != 0) continue;
        keys++;
        ck_assert_msg(strstr(line, " # "), "no doc comment on: %s", line);
    }
    fclose(f);
    /* as many documented keys as the effective config has (every field of ds_settings) */
    ds_settings defaults;
    ds_settings_defaults(&defaults);
    char *yaml = NULL;
    ck_assert_int_eq(ds_settings_to_yaml(&defaults, &yaml), DS_OK);
    int expected = 0;
    for (const char *p = yaml; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, "  ", 2) == 0) expected++;
    free(yaml);
    ck_assert_int_ge(expected, 54);
    ck_assert_int_eq(keys, expected);
}
END_TEST

/* What a run writes as <run>/config.yaml (ds_settings_write_yaml without
 * docs) and the documented form, loaded back from the file: every key the
 * same, and the same text again. */
static void expect_file_round_trip(const ds_settings *a, const char *what)
{
    for (int docs = 0; docs <= 1; docs++) {
        char path[] = "/tmp/ds_config_rt_XXXXXX";
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        FILE *f = fdopen(fd, "w");
        ck_assert_ptr_nonnull(f);
        ck_assert_msg(ds_settings_write_yaml(a, f, docs) == DS_OK, "%s: %s", what, ds_error_message());
        ck_assert_int_eq(fclose(f), 0);
        ds_settings b;
        ds_settings_defaults(&b);
        ds_status rc = ds_settings_load_file(&b, path);
        unlink(path);
        ck_assert_msg(rc == DS_OK, "%s (docs %d): the written config does not load: %s", what, docs,
                      ds_error_message());
        const char *diff = first_difference(a, &b);
        ck_assert_msg(diff == NULL, "%s (docs %d): key %s differs after the round trip", what, docs,
                      diff ? diff : "");
        char *x = NULL, *y = NULL;
        ck_assert(ds_settings_to_yaml(a, &x) == DS_OK && ds_settings_to_yaml(&b, &y) == DS_OK);
        ck_assert_msg(strcmp(x, y) == 0, "%s: the text changed:\n%s\n---\n%s", what, x, y);
        free(x);
        free(y);
    }
}

START_TEST(written_configs_load_back_to_every_key)
{
    /* every shipped config, as a run stores it */
    DIR *d = opendir(DS_SOURCE_DIR "/configs");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/configs/%s", DS_SOURCE_DIR, e->d_name);
        ds_settings s;
        ds_settings_defaults(&s);
        ck_assert_msg(ds_settings_load_file(&s, path) == DS_OK, "%s", ds_error_message());
        expect_file_round_trip(&s, e->d_name);
        n++;
    }
    closedir(d);
    ck_assert_int_ge(n, 30);
    /* strings YAML reads as line breaks (U+0085, U+2028, U+2029), refuses raw
     * (C1 controls, U+FFFE) or takes for something else */
    static const char *const hard[] = {
        "a\xc2\x85" "b",           /* NEL, YAML's "\N" */
        "x\xe2\x80\xa8y\xe2\x80\xa9z", /* LS, PS */
        "\xc2\x80\xc2\x9f\xc2\xa0",  /* C1 controls and NBSP */
        "\xef\xbb\xbf" "bom \xef\xbf\xbe \xef\xbf\xbf",
        "ctl \x01\x1f\x7f\t\r\n end",
        "q\"uo'te \\ back\\slash \\N",
        "\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80",
        " leading and trailing ", "# not a comment", "- dash", "key: value", "null", "~", "1e5", "0x10", "Yes",
        "...", "---", "&anchor", "*alias", "!tag", "%directive", "@at", "`tick", "{flow}", "[seq]", "a,b",
        "tail\\"};
    for (size_t i = 0; i < sizeof hard / sizeof *hard; i++) {
        ds_settings s;
        ds_settings_defaults(&s);
        snprintf(s.out_dir, sizeof s.out_dir, "%s", hard[i]);
        expect_round_trip(&s, 0);
        expect_round_trip(&s, 1);
        expect_file_round_trip(&s, hard[i]);
    }
    /* and the escapes as a user writes them, through --set and a file */
    ds_settings s;
    ds_settings_defaults(&s);
    ck_assert_msg(ds_settings_set(&s, "output.dir=\"a\\Nb\\Lc\\Pd\\x85e\\u2028\\x01\"") == DS_OK, "%s",
                  ds_error_message());
    ck_assert_str_eq(s.out_dir, "a\xc2\x85" "b\xe2\x80\xa8" "c\xe2\x80\xa9" "d\xc2\x85" "e\xe2\x80\xa8\x01");
    expect_file_round_trip(&s, "--set with escapes");
    char *text = NULL;
    ck_assert(ds_settings_to_yaml(&s, &text) == DS_OK);
    ck_assert_msg(strstr(text, "dir: \"a\\Nb\\Lc\\Pd\\Ne\\L\\x01\"\n"), "%s", text);
    free(text);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-reference") == 0) {
        ds_settings s;
        ds_settings_defaults(&s);
        FILE *f = fopen(argv[2], "w");
        if (f)
            fputs("# configs/reference.yaml: every key diffsamp reads, at its default value.\n"
                  "# Generated with `build/tests/test_config --write-reference "
                  "configs/reference.yaml`;\n"
                  "# tests/test_config.c checks that it loads to exactly the defaults.\n",
                  f);
        if (!f || ds_settings_write_yaml(&s, f, 1) != DS_OK || fclose(f) != 0) {
            fprintf(stderr, "cannot write %s: %s\n", argv[2], ds_error_message());
            return 1;
        }
        return 0;
    }
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, defaults_are_the_reference_defaults);
    tcase_add_test(tc, full_file_sets_every_key);
    tcase_add_test(tc, value_errors_name_file_line_col_key_found_allowed);
    tcase_add_test(tc, structure_errors_name_file_line_col);
    tcase_add_test(tc, file_errors);
    tcase_add_test(tc, set_overrides);
    tcase_add_test(tc, write_then_load_round_trips);
    tcase_add_test(tc, written_configs_load_back_to_every_key);
    tcase_add_test(tc, validate_cross_checks);
    tcase_add_test(tc, energy_section_is_the_family_s);
    tcase_add_test(tc, bounds_and_defaults_match_the_modules);
    tcase_add_test(tc, reference_yaml_documents_every_default);
    suite_add_tcase(s, tc);
    return ds_test_run(s);
}
