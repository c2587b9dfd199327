/* replay: a fixed-capacity FIFO buffer of (x, log R) pairs drawn from with
 * replacement by priority (uniform, reward or rank), as used by off-policy
 * training and local search (Sendera et al. 2024, section 3; reference
 * energy_sampling/buffer.py).
 *
 * Priorities, with N the current number of entries:
 *   uniform  p_i = 1/N
 *   reward   p_i ∝ exp(beta * log R_i)        (softmax, evaluated with a max shift)
 *   rank     p_i ∝ 1/(rank_weight * N + rank_i), rank 0 = highest log R; ties are
 *            ranked oldest first (what a stable argsort of -log R gives).
 * The reference re-sorts the whole buffer on every add. Here an add costs
 * O(b log b + N) for rank priority (sort the batch, drop the evicted entries
 * from the sorted index in one pass, merge the batch in place from the back
 * moving each run once), O(b log capacity) for reward
 * priority (a sum tree of shifted weights, rebuilt only when the shift must
 * move), O(b) for uniform; a draw costs O(log N) (rank: bisection on the
 * closed-form CDF, a digamma difference, so nothing depends on N being fixed).
 * Draws map the uniform onto the entries in insertion order (uniform,
 * reward) or rank order (rank), never onto the ring layout.
 *
 * Draw k of ds_buffer_sample uses the counter-based stream at
 * (iteration, sample = first + k, step 0): draws are reproducible and do not
 * depend on how many are drawn together or on which rank draws them.
 *
 * log R must not be NaN or +inf (ds_buffer_add refuses the whole batch);
 * -inf is allowed and has probability 0 under reward priority and the last
 * ranks under rank priority. Not thread-safe; not collective. */
#ifndef DS_REPLAY_H
#define DS_REPLAY_H

#include "diffsamp/config.h"
#include "diffsamp/core.h"
#include "diffsamp/rng.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ds_buffer ds_buffer;

/* Creates an empty buffer for up to capacity entries of dimension dim.
 * beta (>= 0, finite) is used by DS_PRIO_REWARD only and rank_weight (> 0,
 * finite) by DS_PRIO_RANK only. capacity must be in [1, 2^32 - 2].
 * DS_ERR_INVALID on bad arguments, DS_ERR_NOMEM when the storage (about
 * capacity * (dim + 1) ds_real, plus 8 bytes per entry (16 in the double
 * build) for rank priority or up to 32 for reward priority) cannot be
 * allocated. The caller frees *out with ds_buffer_destroy. */
ds_status ds_buffer_create(size_t capacity, int dim, ds_priority priority, double beta,
                           double rank_weight, ds_buffer **out);
/* Frees *b (NULL allowed) and sets it to NULL. */
void ds_buffer_destroy(ds_buffer **b);

/* Removes every entry (capacity and settings are kept). */
void ds_buffer_clear(ds_buffer *b);

size_t ds_buffer_size(const ds_buffer *b);
size_t ds_buffer_capacity(const ds_buffer *b);
/* Bytes the buffer holds when full (its arrays are allocated untouched and
 * fill as entries arrive). */
size_t ds_buffer_bytes(const ds_buffer *b);
int ds_buffer_dim(const ds_buffer *b);
ds_priority ds_buffer_priority(const ds_buffer *b);

/* Appends n entries x (n, dim), log_r (n), in order; when the buffer is full
 * the oldest entries are evicted first, so a batch larger than the capacity
 * leaves only its last `capacity` entries. Fails with DS_ERR_NUMERIC (adding
 * nothing) when a log_r is NaN or +inf, DS_ERR_INVALID on NULL arrays. */
ds_status ds_buffer_add(ds_buffer *b, size_t n, const ds_real *x, const ds_real *log_r);

/* Draws n entries with replacement according to the priority into x (n, dim)
 * and log_r (n); either output may be NULL. Draw k uses stream r at
 * (iteration, first + k, 0). DS_ERR_INVALID when the buffer is empty or n < 0;
 * DS_ERR_NUMERIC under reward priority when every entry has log R = -inf. */
ds_status ds_buffer_sample(const ds_buffer *b, ds_rng r, uint64_t iteration, uint64_t first, int n,
                           ds_real *x, ds_real *log_r);

/* Entry i in insertion order (0 = oldest) into x (dim) and *log_r (either may
 * be NULL). DS_ERR_INVALID when i >= size. */
ds_status ds_buffer_get(const ds_buffer *b, size_t i, ds_real *x, ds_real *log_r);

/* Copies all ds_buffer_size(b) entries, oldest first, into x (size, dim) and
 * log_r (size); either may be NULL. For checkpoints. */
ds_status ds_buffer_export(const ds_buffer *b, ds_real *x, ds_real *log_r);
/* Replaces the contents by n entries given oldest first (clear + add): an
 * export followed by an import restores the buffer, draws included (under
 * reward priority up to rounding of the weight sums, i.e. a draw can differ
 * only when its uniform falls within ~1e-16 of an interval boundary). */
ds_status ds_buffer_import(ds_buffer *b, size_t n, const ds_real *x, const ds_real *log_r);

/* The n entries with the highest log R, best first (ties: oldest first), into
 * x (n, dim) and log_r (n); either may be NULL. DS_ERR_INVALID when
 * n > ds_buffer_size(b) or n < 0. O(n) for rank priority, O(N log n) else. */
ds_status ds_buffer_top(const ds_buffer *b, int n, ds_real *x, ds_real *log_r);

#endif
