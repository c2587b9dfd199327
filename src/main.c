#define _POSIX_C_SOURCE 200809L
/* diffsamp: the command line. Parses arguments, builds the settings, and
 * hands over to the library; the only place that ends the process on error
 * (ds_die: the message for users, then MPI_Abort on every rank; with --debug
 * or DS_DEBUG=1 also where in the source it was raised). */
#include "diffsamp/blas.h"
#include "diffsamp/conditional.h"
#include "diffsamp/config.h"
#include "diffsamp/exact.h"
#include "diffsamp/core.h"
#include "diffsamp/energy.h"
#include "diffsamp/h5io.h"
#include "diffsamp/idx.h"
#include "diffsamp/mpicheck.h"
#include "diffsamp/metrics.h"
#include "diffsamp/train.h"
#include "diffsamp/vae.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where Debian's dataset-fashion-mnist puts the idx files (vae-train's default). */
#define DS_FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* The embedded default of `diffsamp train` with no config: 25gmm with TB,
 * exploration and local search (the paper's own method, Sendera et al. 2024,
 * Table 1: "TB + Expl. + LS"), sized so that `make demo` finishes in about a
 * minute. */
static const char *default_config =
    "energy:\n"
    "  name: 25gmm\n"
    "objective:\n"
    "  name: tb\n"
    "  backward: tb\n"
    "train:\n"
    "  iterations: 1500\n"
    "  batch_size: 300\n"
    "  lr_flow: 0.1\n"
    "sampler:\n"
    "  T: 100\n"
    "  t_scale: 5.0\n"
    "exploration:\n"
    "  factor: 0.1\n"
    "  schedule: linear\n"
    "local_search:\n"
    "  enabled: true\n"
    "  ld_step: 0.1\n"
    "replay:\n"
    "  capacity: 600000\n"
    "  priority: rank\n"
    "eval:\n"
    "  every: 500\n"
    "  ground_truth_samples: 1000\n"
    "output:\n"
    "  dir: runs/demo\n"
    "  checkpoint_every: 500\n";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: diffsamp [--debug] <command> [options]\n"
            "       diffsamp --help | --version | <command> --help\n"
            "\n"
            "commands:\n"
            "  train [config.yaml] [--set key=value]... [--out DIR] [--resume auto|never|PATH]\n"
            "        train a sampler (no config: the embedded 25gmm default, TB + exploration +\n"
            "        local search); resumes from DIR/checkpoint.h5 when it exists (--resume auto)\n"
            "  sample --checkpoint PATH -n N -o FILE.h5\n"
            "        write N samples of a trained sampler (streamed, any N) with their log-weights;\n"
            "        a conditional run: N per image, of the images --images/--first/--count choose\n"
            "  eval --checkpoint PATH [--ground-truth N]\n"
            "        print the metrics of a trained sampler\n"
            "  energies\n"
            "        list the target energies with their dimension and known log Z\n"
            "  ground-truth [--energy NAME] [--set energy.key=value]... -n N -o FILE.h5\n"
            "        write N exact samples of a target (sample-set layout)\n"
            "  smc [config.yaml] [--set key=value]... [-o FILE.h5]\n"
            "        the SMC baseline: log Z estimate and weighted particles\n"
            "  config [config.yaml] [--set key=value]... [--out DIR]\n"
            "        print the effective configuration with every key documented\n"
            "  vae-train [--train IDX] [--test IDX] [--epochs N] [--batch N] [--lr LR] -o FILE.h5\n"
            "        train a VAE on an idx image set (default Fashion-MNIST) for the vae energy\n"
            "\n"
            "options of every command:\n"
            "  --debug      on errors, also print where in the source they were raised\n"
            "               (the same as the environment variable DS_DEBUG=1)\n"
            "\n"
            "exit codes: 0 done, 1 error, 2 bad usage or config, 3 checkpointed on request\n");
}

/* `diffsamp CMD --help`. */
typedef struct command_help {
    const char *name, *text;
} command_help;

static const command_help helps[] = {
    {"train",
     "usage: diffsamp train [config.yaml] [--set key=value]... [--out DIR] [--resume auto|never|PATH]\n"
     "\n"
     "Trains a sampler. Settings come from the embedded default (25gmm, TB + exploration +\n"
     "local search, as `make demo` runs it) or from config.yaml, then from each --set in\n"
     "order; `diffsamp config` prints them all with their docs.\n"
     "\n"
     "  config.yaml         a YAML file of sections and keys (see configs/reference.yaml)\n"
     "  --set key=value     override one key, e.g. --set sampler.T=50 --set energy.name=9gmm\n"
     "  --out DIR           the run folder (output.dir): config.yaml, metrics.csv, checkpoints\n"
     "  --resume auto       continue from DIR/checkpoint.h5 when it exists (the default)\n"
     "  --resume never      start afresh even when a checkpoint exists\n"
     "  --resume PATH       continue from the checkpoint at PATH\n"
     "\n"
     "SIGTERM, SIGINT and SIGUSR1 checkpoint at the next iteration and exit with code 3.\n"},
    {"sample",
     "usage: diffsamp sample --checkpoint PATH -n N -o FILE.h5\n"
     "       diffsamp sample --checkpoint PATH [-n K] [--images FILE] [--first I] [--count C] -o FILE.h5\n"
     "\n"
     "Writes N samples of the sampler in the checkpoint PATH (a file, or a run folder) to\n"
     "FILE.h5 with /x, /log_reward, /log_pf, /log_pb and /log_weight, and prints their metrics.\n"
     "\n"
     "A conditional run (e.g. the vae energy) samples its evaluation images instead: K samples\n"
     "of each (default: the run's condition.eval_repeats), with /condition, the image of every\n"
     "row, and the per-image ELBO and IS log p(x). --first and --count choose other images of\n"
     "the run's evaluation file (condition.eval_images, else condition.images; default: its\n"
     "condition.eval_first and condition.eval_count), e.g. training images of a run with one\n"
     "file, to set the sampler on images it trained on against held-out ones; --images FILE\n"
     "samples the images of another idx file (plain or gzip, the run's image size), from its\n"
     "image --first (default 0) to its end or for --count images (a run's training file when\n"
     "it has a separate evaluation file).\n"},
    {"eval",
     "usage: diffsamp eval --checkpoint PATH [--ground-truth N]\n"
     "\n"
     "Prints the metrics of the sampler in the checkpoint PATH (a file, or a run folder): ELBO,\n"
     "log Z estimates, ESS, and with exact samples of the target the mean log-likelihood of N\n"
     "of them (default: the run's eval.ground_truth_samples).\n"},
    {"energies",
     "usage: diffsamp energies\n"
     "\n"
     "Lists the target energies: name, default dimension, known log Z, description. Their\n"
     "own keys (energy.<key>) are documented by `diffsamp config --set energy.name=NAME`.\n"},
    {"ground-truth",
     "usage: diffsamp ground-truth [--energy NAME] [--set energy.key=value]... -n N -o FILE.h5\n"
     "\n"
     "Writes N exact samples of the target from its own sampler to FILE.h5 in the sample-set\n"
     "layout (/x, /log_reward; root attribute log_z_true when log Z is known). Sample k is\n"
     "a function of train.seed and k alone, whatever the number of ranks.\n"},
    {"smc",
     "usage: diffsamp smc [config.yaml] [--set key=value]... [-o FILE.h5]\n"
     "\n"
     "The SMC baseline of Table 1: annealed SMC from N(0, smc.init_var I) to the target on\n"
     "smc.levels geometric levels, resampling when the ESS falls below smc.ess_threshold,\n"
     "smc.mcmc_steps adapted MALA moves per level, smc.particles sharded over the ranks.\n"
     "Prints the log Z estimate and writes the particles with their log-weights (default\n"
     "smc.h5). Energy from the energy section; seed train.seed.\n"},
    {"vae-train",
     "usage: diffsamp vae-train [config.yaml] [--set vae_train.KEY=VALUE]... -o FILE.h5\n"
     "                          [--train IDX] [--test IDX] [--subset N] [--epochs N] [--batch N]\n"
     "                          [--lr LR] [--hidden H] [--latent Z] [--seed S]\n"
     "\n"
     "Trains the VAE of the paper's VAE experiment (encoder 784-400 ReLU to mean and log-variance,\n"
     "decoder 20-400 ReLU to 784 sigmoid; BCE + KL; Adam) on idx images (pixels / 255, plain or\n"
     "gzip), one progress line and the test-set ELBO per epoch, and writes FILE.h5 after every\n"
     "epoch in the layout the vae energy reads (energy.file; that of vae_bce_mnist_100ep.h5).\n"
     "Its settings are the vae_train section of a config (`diffsamp config` lists them with their\n"
     "defaults: Debian's dataset-fashion-mnist (" DS_FASHION_DIR "/{train,t10k}-images-idx3-ubyte.gz),\n"
     "all training images, 10 epochs, batch 128, lr 1e-3, hidden 400, latent 20, seed 1). Each short\n"
     "option sets one of them after the file: --train vae_train.train_images, --test test_images,\n"
     "--subset subset, --epochs epochs, --batch batch_size, --lr lr, --hidden hidden, --latent latent,\n"
     "--seed seed. configs/vae_train.yaml is the default as a file.\n"},
    {"config",
     "usage: diffsamp config [config.yaml] [--set key=value]... [--out DIR]\n"
     "\n"
     "Prints the effective configuration (the embedded default or config.yaml, then each\n"
     "--set) as YAML, every key with its doc, what it allows and its default; errors are\n"
     "reported as `train` would report them.\n"},
};

/* 1 when argv holds --help or -h (the command's help is wanted). */
static int wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    return 0;
}

static int print_help(const char *cmd, int rank)
{
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++)
        if (strcmp(helps[i].name, cmd) == 0) {
            if (rank == 0) fputs(helps[i].text, stdout);
            return 0;
        }
    return 1;
}

static void print_version(void)
{
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(mpi, &len) != MPI_SUCCESS) snprintf(mpi, sizeof mpi, "unknown");
    char *nl = strchr(mpi, '\n');
    if (nl) *nl = '\0';
    printf("diffsamp %s (%s)\n", DS_VERSION, ds_git_version());
    printf("  numbers %s, energy ABI version %d\n", DS_REAL_NAME, DS_ENERGY_ABI_VERSION);
    printf("  MPI: %s\n", mpi);
    printf("  BLAS: %s\n", ds_blas_describe());
    printf("  subnormal numbers: %s\n", ds_fp_describe());
}

#define DIE(rc) ds_die((rc), __FILE__, __LINE__, __func__, "%s", ds_error_message())
/* A usage error: "diffsamp: error: ..." and exit code 2. */
#define USAGE_DIE(...) ds_die(DS_ERR_CONFIG, __FILE__, __LINE__, __func__, __VA_ARGS__)
/* main cannot return a ds_status: an MPI failure is recorded with
 * MPI_Error_string (mpicheck.h) and ends the job. */
#define MPI_OR_DIE(call)                                                                           \
    do {                                                                                           \
        int mpi_rc_ = (call);                                                                      \
        if (mpi_rc_ != MPI_SUCCESS) DIE(ds_mpi_fail(mpi_rc_, __FILE__, __LINE__, __func__, #call)); \
    } while (0)

/* This process's rank, 0 for the commands that do not start MPI. */
static int world_rank(void)
{
    int rank = 0, inited = 0;
    MPI_Initialized(&inited);
    if (inited) MPI_OR_DIE(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    return rank;
}

/* SIGTERM, SIGINT and SIGUSR1 ask for a checkpoint at the next iteration
 * boundary; a second SIGINT ends the process at once (the checkpoint on disk
 * is always complete: files are written to a temporary name and renamed). */
static volatile sig_atomic_t stop_flag = 0;

static void on_signal(int sig)
{
    if (sig == SIGINT && stop_flag) _exit(130);
    stop_flag = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

/* Removes "--resume X" from argv, returning X (NULL when absent). */
static const char *take_option(int *argc, char **argv, const char *name)
{
    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            if (i + 1 >= *argc) USAGE_DIE("%s needs a value", name);
            const char *v = argv[i + 1];
            for (int j = i; j + 2 < *argc; j++) argv[j] = argv[j + 2];
            *argc -= 2;
            return v;
        }
    }
    return NULL;
}

/* Parses [config.yaml] [--set k=v]... [--out DIR] into s. */
static void parse_settings(const char *cmd, int argc, char **argv, ds_settings *s, int allow_out)
{
    ds_settings_defaults(s);
    int have_file = 0;
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "--set") == 0 || strcmp(argv[i], "--out") == 0) && i + 1 < argc) {
            i++;  /* skip the option's value */
        } else if (argv[i][0] != '-' && !have_file) {
            /* a file that cannot be read or parsed is bad usage too (exit 2) */
            ds_status rc = ds_settings_load_file(s, argv[i]);
            if (rc != DS_OK) DIE(rc == DS_ERR_IO ? DS_ERR_CONFIG : rc);
            have_file = 1;
        }
    }
    if (!have_file) {
        ds_status rc = ds_settings_load_string(s, default_config, "<embedded default>");
        if (rc != DS_OK) DIE(rc);
    }
    int seen_file = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) {
            ds_status rc = ds_settings_set(s, argv[++i]);
            if (rc != DS_OK) DIE(rc);
        } else if (strncmp(argv[i], "--set=", 6) == 0) {
            ds_status rc = ds_settings_set(s, argv[i] + 6);
            if (rc != DS_OK) DIE(rc);
        } else if (allow_out && strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            int n = snprintf(s->out_dir, sizeof s->out_dir, "%s", argv[++i]);
            if (n < 0 || (size_t)n >= sizeof s->out_dir)
                USAGE_DIE("--out: the path is longer than %d characters", DS_PATH_MAX - 1);
        } else if (argv[i][0] != '-' && !seen_file) {
            seen_file = 1;
        } else if ((strcmp(argv[i], "--set") == 0 || strcmp(argv[i], "--out") == 0) && i + 1 >= argc) {
            USAGE_DIE("%s needs a value (see `diffsamp %s --help`)", argv[i], cmd);
        } else {
            USAGE_DIE("unexpected argument '%s' (see `diffsamp %s --help`)", argv[i], cmd);
        }
    }
    ds_status rc = ds_settings_validate(s);
    if (rc != DS_OK) DIE(rc);
}

static int cmd_train(int argc, char **argv)
{
    const char *resume = take_option(&argc, argv, "--resume");
    if (!resume) resume = "auto";
    ds_settings s;
    parse_settings("train", argc, argv, &s, 1);
    const int rank = world_rank();
    if (rank == 0) {
        printf("# effective configuration\n");
        ds_settings_write_yaml(&s, stdout, 0);
        printf("\n");
        fflush(stdout);
    }
    /* Signals from here on checkpoint and stop at the first iteration (a job
     * can be signalled while it is still loading its checkpoint). */
    install_signals();
    ds_trainer *t = NULL;
    ds_status rc = ds_trainer_create(&s, MPI_COMM_WORLD, &t);
    if (rc != DS_OK) DIE(rc);
    const char *fail_rank = getenv("DS_DEBUG_FAIL_RANK"), *fail_it = getenv("DS_DEBUG_FAIL_ITERATION");
    if (fail_rank) ds_trainer_set_fail_hook(t, atoi(fail_rank), fail_it ? atol(fail_it) : 0);
    if (strcmp(resume, "never") != 0 && (strcmp(resume, "auto") != 0 || ds_trainer_has_checkpoint(&s))) {
        rc = ds_trainer_resume(t, resume);
        if (rc != DS_OK) DIE(rc);
    }
    ds_trainer_set_stop_flag(t, &stop_flag);
    ds_eval_result r;
    memset(&r, 0, sizeof r);
    r.iteration = -1;
    int stopped = 0;
    rc = ds_trainer_run(t, stdout, &r, &stopped);
    if (rc != DS_OK) DIE(rc);
    if (stopped) {
        ds_trainer_destroy(&t);
        return 3;
    }
    if (r.iteration < 0) {  /* nothing left to train: report the sampler as it is */
        rc = ds_trainer_evaluate(t, 1, &r);
        if (rc != DS_OK) DIE(rc);
    }
    if (rank == 0) {
        printf("\nfinal metrics (iteration %ld, %.1f s):\n", r.iteration, r.seconds);
        printf("  ELBO                 %.4f\n", r.elbo);
        printf("  log Z (IS)           %.4f\n", r.log_z_is);
        if (!isnan(r.log_z_rw)) printf("  cross-image RW       %.4f\n", r.log_z_rw);
        if (r.log_z_learned == r.log_z_learned) printf("  log Z (learned)      %.4f\n", r.log_z_learned);
        printf("  ESS                  %.4f\n", r.ess);
        if (r.has_log_z) {
            printf("  log Z (true)         %.4f\n", r.log_z_true);
            printf("  Delta log Z          %.4f\n", r.delta_log_z);
            printf("  Delta log Z (IS)     %.4f\n", r.delta_log_z_is);
        }
        if (r.mean_ll == r.mean_ll) printf("  mean log-likelihood  %.4f\n", r.mean_ll);
        if (r.modes >= 0) printf("  modes with samples   %d of %d\n", r.modes, r.modes_total);
        double ms, mpi;
        ds_trainer_timing(t, &ms, &mpi);
        printf("  training time        %.2f ms/iteration on rank 0, %.1f%% of it in MPI\n", ms, 100 * mpi);
        printf("metrics: %s/metrics.csv\n", s.out_dir);
    }
    ds_trainer_destroy(&t);
    return 0;
}

/* The settings a checkpoint carries (its /config) into *s, and in found the
 * checkpoint file it names. path is a checkpoint file or a run folder (its
 * checkpoint.h5; either falls back to its .prev). */
static void checkpoint_settings(const char *path, ds_settings *s, char *found, size_t found_size)
{
    ds_ckpt_data d;
    memset(&d, 0, sizeof d);
    char warning[2048], in_dir[DS_PATH_MAX + 32];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) { /* a run folder: its checkpoint.h5 */
        if (snprintf(in_dir, sizeof in_dir, "%s/checkpoint.h5", path) >= (int)sizeof in_dir)
            USAGE_DIE("--checkpoint '%s': the path is too long", path);
        path = in_dir;
    }
    ds_status rc = ds_ckpt_find(MPI_COMM_WORLD, path, NULL, found, found_size, &d, warning, sizeof warning);
    if (rc != DS_OK) DIE(rc);
    ds_settings_defaults(s);
    char name[DS_PATH_MAX + 64];
    snprintf(name, sizeof name, "%s:/config", found);
    rc = ds_settings_load_string(s, d.config_yaml, name);
    ds_ckpt_data_free(&d);
    if (rc != DS_OK) DIE(rc);
}

/* A trainer for settings s with the model, optimiser and buffers of the
 * checkpoint file found. */
static ds_trainer *trainer_resumed(const ds_settings *s, const char *found)
{
    ds_trainer *t = NULL;
    ds_status rc = ds_trainer_create(s, MPI_COMM_WORLD, &t);
    if (rc != DS_OK) DIE(rc);
    rc = ds_trainer_resume(t, found);
    if (rc != DS_OK) DIE(rc);
    return t;
}

/* Settings and state from a checkpoint: the config it carries, then the
 * model, optimiser and buffers. */
static ds_trainer *trainer_from_checkpoint(const char *path, long ground_truth)
{
    ds_settings s;
    char found[DS_PATH_MAX + 32];
    checkpoint_settings(path, &s, found, sizeof found);
    if (ground_truth >= 0) s.eval_gt_samples = (int)ground_truth;
    return trainer_resumed(&s, found);
}

/* Sets key to value in s as `--set key=value` would (its checks and errors),
 * for the command-line option opt. */
static void set_from_option(ds_settings *s, const char *opt, const char *key, const char *value)
{
    char kv[DS_PATH_MAX + 64];
    if (snprintf(kv, sizeof kv, "%s=%s", key, value) >= (int)sizeof kv) USAGE_DIE("%s: the value is too long", opt);
    if (ds_settings_set(s, kv) != DS_OK) {
        const char *msg = ds_error_message(), *from_key = strstr(msg, "key '");
        USAGE_DIE("%s %s: %s", opt, value, from_key ? from_key : msg);
    }
}

static int cmd_sample(int argc, char **argv)
{
    const char *ckpt = take_option(&argc, argv, "--checkpoint");
    const char *n = take_option(&argc, argv, "-n");
    const char *outp = take_option(&argc, argv, "-o");
    const char *images = take_option(&argc, argv, "--images");
    const char *first = take_option(&argc, argv, "--first");
    const char *count_opt = take_option(&argc, argv, "--count");
    if (argc != 0) USAGE_DIE("sample: unexpected argument '%s' (see `diffsamp sample --help`)", argv[0]);
    if (!ckpt || !outp) USAGE_DIE("sample needs --checkpoint PATH and -o FILE.h5 (see `diffsamp sample --help`)");
    long count = 0;
    if (n) {
        char *end;
        count = strtol(n, &end, 10);
        if (*end || count < 1) USAGE_DIE("-n '%s': expected a positive integer", n);
    }
    ds_settings s;
    char found[DS_PATH_MAX + 32];
    checkpoint_settings(ckpt, &s, found, sizeof found);
    const ds_energy_vtable *vt = NULL;
    ds_status rc = ds_energy_family(s.energy_name, &s.energy_args, &vt);
    if (rc != DS_OK) DIE(rc);
    const int conditional = vt->cond_dim > 0;
    if (!conditional && (images || first || count_opt))
        USAGE_DIE("%s: the run in %s is not conditional (energy '%s'), so it has no images to choose",
                  images ? "--images" : first ? "--first" : "--count", found, s.energy_name);
    if (!conditional && !n) USAGE_DIE("sample needs -n N, the number of samples (see `diffsamp sample --help`)");
    if (conditional) {
        /* Another file (--images) starts at its image 0 and runs to its end unless --first and
         * --count say otherwise; the run's own file keeps the run's evaluation range. */
        if (images) {
            set_from_option(&s, "--images", "condition.eval_images", images);
            s.cond_eval_first = 0;
            /* sampling reads no training image, so the run's training range need not exist in FILE:
             * train_count 0 (not a value a config may hold) leaves the trainer without training images */
            s.cond_train_count = 0;
        }
        if (first) set_from_option(&s, "--first", "condition.eval_first", first);
        if (count_opt) {
            set_from_option(&s, "--count", "condition.eval_count", count_opt);
        } else if (images) {
            ds_idx x;
            rc = ds_idx_read(images, (size_t)s.cond_eval_first, 0, &x);
            if (rc != DS_OK) DIE(rc);
            if (x.count > INT_MAX)
                USAGE_DIE("--images %s: %zu images from --first; choose at most %d with --count", images, x.count,
                          INT_MAX);
            s.cond_eval_count = (int)x.count;
            ds_idx_free(&x);
        }
        if (n) set_from_option(&s, "-n", "condition.eval_repeats", n);
    }
    ds_trainer *t = trainer_resumed(&s, found);
    ds_eval_result r;
    rc = ds_trainer_write_samples(t, outp, count, &r);
    if (rc != DS_OK) DIE(rc);
    if (world_rank() == 0) {
        if (conditional) {
            printf("%d samples of iteration %ld of each of images %d..%d of %s written to %s\n", s.cond_eval_repeats,
                   r.iteration, s.cond_eval_first, s.cond_eval_first + s.cond_eval_count - 1, ds_cond_eval_file(&s), outp);
            printf("  over images: mean ELBO %.4f  mean IS log p(x) %.4f  cross-image log-mean-exp (\"RW\") %.4f\n",
                   r.elbo, r.log_z_is, r.log_z_rw);
        } else {
            printf("%ld samples of iteration %ld written to %s\n", count, r.iteration, outp);
            printf("  ELBO %.4f  log Z (IS) %.4f  ESS %.4f", r.elbo, r.log_z_is, r.ess);
            if (r.has_log_z) printf("  Delta log Z %.4f  Delta log Z (IS) %.4f", r.delta_log_z, r.delta_log_z_is);
            printf("\n");
        }
    }
    ds_trainer_destroy(&t);
    return 0;
}

static int cmd_eval(int argc, char **argv)
{
    const char *ckpt = take_option(&argc, argv, "--checkpoint");
    const char *gt = take_option(&argc, argv, "--ground-truth");
    if (argc != 0) USAGE_DIE("eval: unexpected argument '%s' (see `diffsamp eval --help`)", argv[0]);
    if (!ckpt) USAGE_DIE("eval needs --checkpoint PATH (see `diffsamp eval --help`)");
    long n_gt = -1;  /* default: the run's eval.ground_truth_samples */
    if (gt) {
        char *end;
        n_gt = strtol(gt, &end, 10);
        if (*end || n_gt < 0 || n_gt > 100000000)
            USAGE_DIE("--ground-truth '%s': expected an integer in [0, 100000000]", gt);
    }
    ds_trainer *t = trainer_from_checkpoint(ckpt, n_gt);
    ds_eval_result r;
    ds_status rc = ds_trainer_evaluate(t, 1, &r);
    if (rc != DS_OK) DIE(rc);
    if (world_rank() == 0) ds_metrics_print(stdout, &r, DS_METRICS_REPORT);
    ds_trainer_destroy(&t);
    return 0;
}

/* The energy of s (after parse_settings), or death with the reason. */
static ds_energy *energy_of(const ds_settings *s)
{
    ds_energy *e = NULL;
    ds_status rc = ds_energy_create(s->energy_name, s->energy_dim, &s->energy_args, &e);
    if (rc != DS_OK) DIE(rc);
    return e;
}

static long positive_count(const char *opt, const char *text)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*end || v < 1 || v > 1000000000L) USAGE_DIE("%s '%s': expected an integer in [1, 1000000000]", opt, text);
    return v;
}

static int cmd_ground_truth(int argc, char **argv)
{
    const char *name = take_option(&argc, argv, "--energy");
    const char *n = take_option(&argc, argv, "-n");
    const char *outp = take_option(&argc, argv, "-o");
    if (!n || !outp)
        USAGE_DIE("ground-truth needs -n N and -o FILE.h5 (see `diffsamp ground-truth --help`)");
    /* --energy NAME is --set energy.name=NAME, applied before the other --set */
    char set[DS_NAME_MAX + 16];
    char **args = malloc(sizeof(char *) * (size_t)(argc + 3));
    if (!args) USAGE_DIE("out of memory");
    int na = 0;
    if (name) {
        snprintf(set, sizeof set, "energy.name=%s", name);
        args[na++] = "--set";
        args[na++] = set;
    }
    for (int i = 0; i < argc; i++) args[na++] = argv[i];
    args[na] = NULL;
    ds_settings s;
    parse_settings("ground-truth", na, args, &s, 0);
    free(args);
    const long count = positive_count("-n", n);
    ds_energy *e = energy_of(&s);
    char *yaml = NULL;
    ds_status rc = ds_settings_to_yaml(&s, &yaml);
    if (rc == DS_OK) rc = ds_exact_write(MPI_COMM_WORLD, e, count, s.seed, yaml, outp);
    free(yaml);
    if (rc != DS_OK) DIE(rc);
    if (world_rank() == 0) {
        printf("%ld exact samples of %s (d = %d) written to %s", count, e->vt->name, e->dim, outp);
        if (e->has_log_z) printf(" (log Z %.6f)", e->log_z);
        printf("\n");
    }
    ds_energy_destroy(&e);
    return 0;
}

static int cmd_vae_train(int argc, char **argv)
{
    /* Its settings are the vae_train section of a config (file:line:col errors, --set, the effective config
     * in `diffsamp config`); each short option is that key's --set, applied after the file. */
    static const char *const shortcut[][2] = {
        {"--train", "vae_train.train_images"}, {"--test", "vae_train.test_images"}, {"--subset", "vae_train.subset"},
        {"--epochs", "vae_train.epochs"},      {"--batch", "vae_train.batch_size"}, {"--lr", "vae_train.lr"},
        {"--hidden", "vae_train.hidden"},      {"--latent", "vae_train.latent"},    {"--seed", "vae_train.seed"},
    };
    enum { NSHORT = sizeof shortcut / sizeof shortcut[0] };
    const char *value[NSHORT];
    for (int k = 0; k < NSHORT; k++) value[k] = take_option(&argc, argv, shortcut[k][0]);
    const char *outp = take_option(&argc, argv, "-o");
    if (!outp) USAGE_DIE("vae-train needs -o FILE.h5 (see `diffsamp vae-train --help`)");
    ds_settings s;
    parse_settings("vae-train", argc, argv, &s, 0);
    for (int k = 0; k < NSHORT; k++) {
        if (!value[k]) continue;
        char kv[DS_PATH_MAX + 64];
        int n = snprintf(kv, sizeof kv, "%s=%s", shortcut[k][1], value[k]);
        if (n < 0 || (size_t)n >= sizeof kv) USAGE_DIE("%s: the value is too long", shortcut[k][0]);
        ds_status rc = ds_settings_set(&s, kv);
        if (rc != DS_OK) DIE(rc);
    }
    ds_vae_train_opts o = {.train_images = s.vae_train_images, .test_images = s.vae_test_images,
                           .subset = s.vae_subset, .epochs = s.vae_epochs, .batch = s.vae_batch,
                           .hidden = s.vae_hidden, .z_dim = s.vae_latent, .lr = s.vae_lr, .seed = s.vae_seed,
                           .out = outp};
    if (world_rank() != 0) return 0; /* one process trains */
    double loss, elbo;
    ds_status rc = ds_vae_train(&o, stdout, &loss, &elbo);
    if (rc != DS_OK) DIE(rc);
    printf("VAE written to %s (final train loss %.4f, test ELBO %.4f per image)\n", outp, loss, elbo);
    return 0;
}

static int cmd_smc(int argc, char **argv)
{
    const char *outp = take_option(&argc, argv, "-o");
    ds_settings s;
    parse_settings("smc", argc, argv, &s, 0);
    ds_energy *e = energy_of(&s);
    ds_smc_config c = {.particles = s.smc_particles, .levels = s.smc_levels, .mcmc_steps = s.smc_mcmc_steps,
                       .init_var = s.smc_init_var, .ess_threshold = s.smc_ess_threshold, .step = s.smc_step,
                       .target_acceptance = s.smc_target_acceptance, .seed = s.seed};
    char *yaml = NULL;
    ds_smc_result r;
    ds_status rc = ds_settings_to_yaml(&s, &yaml);
    char path[DS_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s", outp ? outp : "smc.h5");
    double t0 = MPI_Wtime();
    if (rc == DS_OK) rc = ds_smc_write(MPI_COMM_WORLD, e, &c, yaml, path, &r);
    free(yaml);
    if (rc != DS_OK) DIE(rc);
    if (world_rank() == 0) {
        printf("SMC on %s (d = %d): %ld particles, %d levels, %d MALA steps per level, %.1f s\n", e->vt->name, e->dim,
               c.particles, c.levels, c.mcmc_steps, MPI_Wtime() - t0);
        printf("  log Z (SMC)          %.6f\n", r.log_z);
        if (e->has_log_z) {
            printf("  log Z (true)         %.6f\n", e->log_z);
            printf("  Delta log Z          %.6f\n", fabs(e->log_z - r.log_z));
        }
        printf("  ESS                  %.4f\n", r.ess);
        printf("  MALA acceptance      %.3f (final step %.4g)\n", r.acceptance, r.step);
        printf("  resamplings          %ld\n", r.resamplings);
        printf("  energy evaluations   %ld (each with its gradient)\n", r.energy_evals);
        printf("particles: %s\n", path);
    }
    ds_energy_destroy(&e);
    return 0;
}

static int cmd_config(int argc, char **argv)
{
    ds_settings s;
    parse_settings("config", argc, argv, &s, 1);
    if (world_rank() == 0) {
        ds_status rc = ds_settings_write_yaml(&s, stdout, 1);
        if (rc != DS_OK) DIE(rc);
    }
    return 0;
}

/* Removes every --debug from argv; 1 when there was one. */
static int take_debug(int *argc, char **argv)
{
    int found = 0, w = 1;
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--debug") == 0)
            found = 1;
        else
            argv[w++] = argv[i];
    }
    *argc = w;
    argv[w] = NULL;
    return found;
}

int main(int argc, char **argv)
{
    /* Before anything can fail: ds_die reads DS_DEBUG. */
    if (take_debug(&argc, argv)) setenv("DS_DEBUG", "1", 1);
    ds_blas_tune(); /* before any BLAS call (include/diffsamp/blas.h) */
    ds_fp_defaults(); /* subnormals flushed (include/diffsamp/core.h) */
    /* config, energies, help and version need no MPI (and start faster
     * without it: sweeps validate hundreds of configs). */
    const char *c1 = argc > 1 ? argv[1] : "";
    const int no_mpi = strcmp(c1, "config") == 0 || strcmp(c1, "energies") == 0 || strcmp(c1, "help") == 0 ||
                       strcmp(c1, "--help") == 0 || strcmp(c1, "-h") == 0 || strcmp(c1, "--version") == 0 ||
                       strcmp(c1, "version") == 0 || wants_help(argc - 2, argv + 2);
    if (!no_mpi) {
        ds_mpi_io_defaults();
        MPI_OR_DIE(MPI_Init(&argc, &argv));
    }
    /* One BLAS thread per process unless the user chose otherwise: under MPI
     * the ranks already use the cores, and alone the products (64 columns)
     * are too small to gain from threads (measured: 31.4 ms/iteration with one
     * thread, 34.7 with two, 25gmm TB on 2 cores). Scale with ranks instead. */
    int rc = 0;
    if (!getenv("OPENBLAS_NUM_THREADS")) openblas_set_num_threads(1);
    const int rank = world_rank();
    if (argc < 2) USAGE_DIE("no command given; run `diffsamp --help` for the commands");
    const char *cmd = argv[1];
    const int help = wants_help(argc - 2, argv + 2);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        if (argc > 2 && print_help(argv[2], rank) == 0) {
        } else if (rank == 0) {
            usage(stdout);
        }
    } else if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        if (rank == 0) print_version();
    } else if (help && print_help(cmd, rank) == 0) {
        /* `diffsamp CMD --help` */
    } else if (strcmp(cmd, "train") == 0) {
        rc = cmd_train(argc - 2, argv + 2);
    } else if (strcmp(cmd, "energies") == 0) {
        if (argc > 2) USAGE_DIE("energies: unexpected argument '%s' (see `diffsamp energies --help`)", argv[2]);
        if (rank == 0) ds_energy_list(stdout);
    } else if (strcmp(cmd, "sample") == 0) {
        rc = cmd_sample(argc - 2, argv + 2);
    } else if (strcmp(cmd, "eval") == 0) {
        rc = cmd_eval(argc - 2, argv + 2);
    } else if (strcmp(cmd, "ground-truth") == 0) {
        rc = cmd_ground_truth(argc - 2, argv + 2);
    } else if (strcmp(cmd, "smc") == 0) {
        rc = cmd_smc(argc - 2, argv + 2);
    } else if (strcmp(cmd, "config") == 0) {
        rc = cmd_config(argc - 2, argv + 2);
    } else if (strcmp(cmd, "vae-train") == 0) {
        rc = cmd_vae_train(argc - 2, argv + 2);
    } else {
        USAGE_DIE("unknown command '%s'; the commands are train, sample, eval, energies, ground-truth, smc, "
                  "config and vae-train (see `diffsamp --help`)", cmd);
    }
    fflush(stdout);
    if (!no_mpi) MPI_OR_DIE(MPI_Finalize());
    return rc;
}
