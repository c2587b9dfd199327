/* restart: the checkpoint state of the library's stateful modules, one
 * write/read pair per module on an open checkpoint (h5io.h), in the style of
 * SWIFT's per-module struct_dump/struct_restore: each pair owns its group of
 * the file, so a new saved field of a module touches only its pair.
 *
 *   ds_arena_write/read   /model/params, /optimizer/m, /optimizer/v (the
 *                         parameter arena and both Adam moments, one flat
 *                         layout), /optimizer/step
 *   ds_buffer_write/read  /replay/<name>: x, log_r (the shards of every rank
 *                         in rank order), counts (rows per writer rank),
 *                         attribute capacity (per-rank capacity)
 *
 * The trainer's own run state (/state, /metrics) is written by the trainer
 * (src/train_state.c, src/train_run.c). Every function is collective over the
 * checkpoint's communicator and returns the same status on every rank. */
#ifndef DS_RESTART_H
#define DS_RESTART_H

#include "diffsamp/core.h"
#include "diffsamp/h5io.h"
#include "diffsamp/nn.h"
#include "diffsamp/replay.h"

#include <stddef.h>

/* Writes the parameters, both Adam moments and the Adam step (replicated:
 * rank 0's copy is written). */
ds_status ds_arena_write(ds_ckpt_file *f, const ds_arena *a, const ds_adam *adam);
/* Restores them into an arena of the same layout. DS_ERR_CONFIG (naming
 * /model/params with both shapes) when the saved parameter count differs
 * from a->n: the checkpoint was written by a differently configured network.
 * DS_ERR_FORMAT for a missing or misshapen dataset. */
ds_status ds_arena_read(ds_ckpt_file *f, ds_arena *a, ds_adam *adam);

/* Writes this rank's shard of buffer b (oldest entry first) as
 * /replay/<name>; name is 1 .. DS_NAME_MAX-1 letters, digits or '_' and the
 * same on every rank (DS_ERR_INVALID otherwise). */
ds_status ds_buffer_write(ds_ckpt_file *f, const char *name, const ds_buffer *b);

/* Where the rows of a loaded buffer came from. */
typedef struct ds_buffer_share {
    size_t n_total;   /* rows in the file */
    size_t first;     /* global index of this rank's first row */
    size_t n_local;   /* rows given to this rank */
    int writer_ranks; /* ranks that wrote the file */
} ds_buffer_share;

/* Replaces the contents of b by this rank's share of /replay/<name>: its own
 * shard when the reader has as many ranks as the writer had (so a resumed
 * run is the uninterrupted run), else an even split of the saved rows in
 * saved order (rank r of P gets rows [r*N/P, (r+1)*N/P)). *share (may be
 * NULL) says which rows. DS_ERR_FORMAT for a missing or inconsistent group
 * (counts that do not add up to the rows of x, named). */
ds_status ds_buffer_read(ds_ckpt_file *f, const char *name, ds_buffer *b, ds_buffer_share *share);

#endif
