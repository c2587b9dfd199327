/* replay: FIFO storage in a ring, plus the structure each priority needs:
 * rank keeps an index sorted by (log R desc, age asc) that each add merges
 * into; reward keeps a sum tree of exp(beta log R - shift) over ring slots. */
#include "diffsamp/replay.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rebuild the reward weights when a new log R would exceed the shift by this
 * much (exp(600) * 2^32 entries still fits a double) ... */
#define DS_REWARD_MAX_EXCESS 600.0
/* ... or when the evicted entries took every sizeable weight with them. */
#define DS_REWARD_MIN_TOTAL 1e-100

/* One entry of the sorted rank index: its log R and its ring slot. */
typedef struct rank_entry {
    ds_real key;
    uint32_t slot;
} rank_entry;

/* An entry of a batch being sorted: ord is its position in the batch. */
typedef struct batch_entry {
    ds_real key;
    uint32_t slot;
    size_t ord;
} batch_entry;

struct ds_buffer {
    size_t cap;
    int dim;
    ds_priority prio;
    double beta;
    double rank_weight;
    ds_real *x;      /* (cap, dim): entry with sequence number s lives in slot s % cap */
    ds_real *log_r;  /* (cap) */
    size_t size;     /* live entries: sequence numbers total - size .. total - 1 */
    uint64_t total;  /* entries ever added since the last clear */
    /* rank priority */
    rank_entry *idx; /* (cap) sorted best first; the first size entries are live */
    /* reward priority: leaves tree[P + slot], node k = tree[2k] + tree[2k+1] */
    double *tree;
    size_t leaves;   /* P, a power of two >= cap */
    double shift;    /* weights are exp(beta * log R - shift) */
    int has_shift;
};

static size_t slot_of(const ds_buffer *b, uint64_t seq) { return (size_t)(seq % (uint64_t)b->cap); }

ds_status ds_buffer_create(size_t capacity, int dim, ds_priority priority, double beta,
                           double rank_weight, ds_buffer **out)
{
    DS_CHECK(out != NULL, DS_ERR_INVALID, "out must not be NULL");
    *out = NULL;
    DS_CHECK(capacity >= 1 && capacity <= (size_t)UINT32_MAX - 1, DS_ERR_INVALID,
             "capacity must be in [1, 2^32 - 2], got %zu", capacity);
    DS_CHECK(dim >= 1, DS_ERR_INVALID, "dim must be >= 1, got %d", dim);
    DS_CHECK(priority == DS_PRIO_UNIFORM || priority == DS_PRIO_REWARD || priority == DS_PRIO_RANK,
             DS_ERR_INVALID, "unknown priority %d (uniform, reward or rank)", (int)priority);
    DS_CHECK(priority != DS_PRIO_REWARD || (isfinite(beta) && beta >= 0.0), DS_ERR_INVALID,
             "reward priority needs a finite beta >= 0, got %g", beta);
    DS_CHECK(priority != DS_PRIO_RANK || (isfinite(rank_weight) && rank_weight > 0.0), DS_ERR_INVALID,
             "rank priority needs a finite rank_weight > 0, got %g", rank_weight);
    DS_CHECK(capacity <= SIZE_MAX / sizeof(ds_real) / (size_t)dim, DS_ERR_INVALID,
             "capacity %zu times dim %d overflows", capacity, dim);

    ds_buffer *b = calloc(1, sizeof(*b));
    DS_ALLOC_CHECK(b);
    b->cap = capacity;
    b->dim = dim;
    b->prio = priority;
    b->beta = beta;
    b->rank_weight = rank_weight;
    b->x = ds_calloc(capacity * (size_t)dim, sizeof(ds_real));
    b->log_r = ds_calloc(capacity, sizeof(ds_real));
    int ok = b->x != NULL && b->log_r != NULL;
    if (ok && priority == DS_PRIO_RANK) {
        b->idx = ds_calloc(capacity, sizeof(rank_entry));
        ok = b->idx != NULL;
    }
    if (ok && priority == DS_PRIO_REWARD) {
        b->leaves = 1;
        while (b->leaves < capacity) b->leaves *= 2;
        b->tree = ds_calloc(2 * b->leaves, sizeof(double));
        ok = b->tree != NULL;
    }
    if (!ok) {
        ds_buffer_destroy(&b);
        return ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__,
                            "out of memory for a replay buffer of %zu entries of dim %d", capacity, dim);
    }
    *out = b;
    return DS_OK;
}

void ds_buffer_destroy(ds_buffer **b)
{
    if (b == NULL || *b == NULL) return;
    ds_buffer *p = *b;
    ds_free(p->x);
    ds_free(p->log_r);
    ds_free(p->idx);
    ds_free(p->tree);
    free(p);
    *b = NULL;
}

void ds_buffer_clear(ds_buffer *b)
{
    if (b == NULL) return;
    b->size = 0;
    b->total = 0;
    b->has_shift = 0;
    b->shift = 0.0;
    if (b->tree) memset(b->tree, 0, 2 * b->leaves * sizeof(double));
}

size_t ds_buffer_size(const ds_buffer *b) { return b ? b->size : 0; }
size_t ds_buffer_capacity(const ds_buffer *b) { return b ? b->cap : 0; }
size_t ds_buffer_bytes(const ds_buffer *b)
{
    if (!b) return 0;
    size_t n = b->cap * ((size_t)b->dim + 1) * sizeof(ds_real);
    if (b->idx) n += b->cap * sizeof(rank_entry);
    if (b->tree) n += 2 * b->leaves * sizeof(double);
    return n;
}
int ds_buffer_dim(const ds_buffer *b) { return b ? b->dim : 0; }
ds_priority ds_buffer_priority(const ds_buffer *b) { return b ? b->prio : DS_PRIO_UNIFORM; }

/* ---- reward priority: the sum tree ---- */

static double reward_weight(const ds_buffer *b, ds_real lr)
{
    if (isinf(lr)) return 0.0;  /* only -inf gets here; beta = 0 would give NaN */
    return exp(b->beta * (double)lr - b->shift);
}

static void tree_set(ds_buffer *b, size_t slot, double w)
{
    double *t = b->tree;
    size_t k = b->leaves + slot;
    t[k] = w;
    for (k /= 2; k >= 1; k /= 2) t[k] = t[2 * k] + t[2 * k + 1];
}

/* Sets the shift to the largest live beta log R and recomputes every weight. */
static void tree_rebuild(ds_buffer *b)
{
    double best = -INFINITY;
    uint64_t first = b->total - b->size;
    for (size_t i = 0; i < b->size; i++) {
        ds_real lr = b->log_r[slot_of(b, first + i)];
        if (!isinf(lr) && b->beta * (double)lr > best) best = b->beta * (double)lr;
    }
    b->has_shift = isfinite(best);
    b->shift = b->has_shift ? best : 0.0;
    double *t = b->tree;
    memset(t, 0, 2 * b->leaves * sizeof(double));
    for (size_t i = 0; i < b->size; i++) {
        size_t s = slot_of(b, first + i);
        t[b->leaves + s] = reward_weight(b, b->log_r[s]);
    }
    for (size_t k = b->leaves - 1; k >= 1; k--) t[k] = t[2 * k] + t[2 * k + 1];
}

/* The slot whose cumulative weight interval holds target (0 <= target <
 * total). Never returns a zero-weight leaf: a right child of weight 0 is
 * never entered. */
static size_t tree_find(const ds_buffer *b, double target)
{
    const double *t = b->tree;
    size_t k = 1;
    while (k < b->leaves) {
        double left = t[2 * k];
        if (target < left || t[2 * k + 1] <= 0.0) {
            k = 2 * k;
        } else {
            target -= left;
            k = 2 * k + 1;
        }
    }
    return k - b->leaves;
}

/* Sum of the weights of the slots before slot. */
static double tree_prefix(const ds_buffer *b, size_t slot)
{
    double sum = 0.0;
    for (size_t k = b->leaves + slot; k > 1; k /= 2)
        if (k & 1) sum += b->tree[k - 1];
    return sum;
}

/* The slot drawn by u when the weights are laid out in insertion order
 * (oldest first), so that draws do not depend on where the ring starts: an
 * imported buffer draws what the exported one drew (up to rounding). */
static size_t reward_find(const ds_buffer *b, double u)
{
    const double total = b->tree[1];
    double target = tree_prefix(b, slot_of(b, b->total - b->size)) + u * total;
    if (target >= total) target -= total;
    return tree_find(b, target);
}

/* ---- rank priority: the sorted index and the closed-form CDF ---- */

/* Digamma for x > 0: recurrence up to 10, then the asymptotic series
 * (Abramowitz & Stegun 6.3.18); absolute error below 1e-14. */
static double digamma(double x)
{
    double acc = 0.0;
    while (x < 10.0) {
        acc -= 1.0 / x;
        x += 1.0;
    }
    double r = 1.0 / x, r2 = r * r;
    return acc + log(x) - 0.5 * r -
           r2 * (1.0 / 12 - r2 * (1.0 / 120 - r2 * (1.0 / 252 - r2 * (1.0 / 240 - r2 / 132))));
}

/* The rank r with G(r) <= u G(N) < G(r + 1), where
 * G(r) = sum_{j<r} 1/(c + j) = digamma(c + r) - digamma(c), c = rank_weight N. */
static size_t rank_find(double c, size_t n, double psi_c, double g_total, double u)
{
    double target = u * g_total;
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (digamma(c + (double)mid) - psi_c <= target)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static int batch_cmp(const void *pa, const void *pb)
{
    const batch_entry *a = pa, *b = pb;
    if (a->key > b->key) return -1;
    if (a->key < b->key) return 1;
    return (a->ord > b->ord) - (a->ord < b->ord);
}

/* Merges the k new entries in slots start, start+1, ... (mod cap) into the
 * sorted index, dropping the old entries those slots held (the evicted
 * ones). In place: one compaction pass over the old entries, then a merge
 * from the back that moves each run of old entries once (the index has room
 * for cap entries). Old entries win ties: they are older. */
static ds_status rank_merge(ds_buffer *b, size_t start, size_t k, size_t old_n)
{
    batch_entry *batch = malloc(k * sizeof(*batch));
    DS_ALLOC_CHECK(batch);
    for (size_t j = 0; j < k; j++) {
        size_t s = (start + j) % b->cap;
        batch[j].key = b->log_r[s];
        batch[j].slot = (uint32_t)s;
        batch[j].ord = j;
    }
    qsort(batch, k, sizeof(*batch), batch_cmp);
    rank_entry *idx = b->idx;
    size_t m = old_n;
    if (old_n + k > b->cap) {
        /* evicted: old entries whose slot is among the k rewritten ones,
         * the ring range [start, start + k); one unsigned compare each */
        m = 0;
        if (start + k <= b->cap) {
            const uint32_t lo = (uint32_t)start, len = (uint32_t)k;
            for (size_t i = 0; i < old_n; i++) {
                idx[m] = idx[i];
                m += (uint32_t)(idx[i].slot - lo) >= len;
            }
        } else {
            /* live slots are [end, start) with end = start + k - cap */
            const uint32_t end = (uint32_t)(start + k - b->cap), len = (uint32_t)(b->cap - k);
            for (size_t i = 0; i < old_n; i++) {
                idx[m] = idx[i];
                m += (uint32_t)(idx[i].slot - end) < len;
            }
        }
    }
    size_t i = m, w = m + k;
    for (size_t j = k; j-- > 0;) {
        /* p = number of old entries in [0, i) that rank before batch[j] */
        size_t lo = 0, hi = i;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (idx[mid].key >= batch[j].key)
                lo = mid + 1;
            else
                hi = mid;
        }
        size_t run = i - lo;
        if (run > 0) memmove(idx + w - run, idx + lo, run * sizeof(*idx));
        w -= run;
        i = lo;
        w--;
        idx[w].key = batch[j].key;
        idx[w].slot = batch[j].slot;
    }
    free(batch);
    DS_CHECK(m + k == b->size && w == i, DS_ERR_INVALID,
             "rank index holds %zu entries, buffer %zu (a bug)", m + k, b->size);
    return DS_OK;
}

/* ---- adding and drawing ---- */

ds_status ds_buffer_add(ds_buffer *b, size_t n, const ds_real *x, const ds_real *log_r)
{
    DS_CHECK(b != NULL, DS_ERR_INVALID, "buffer must not be NULL");
    if (n == 0) return DS_OK;
    DS_CHECK(x != NULL && log_r != NULL, DS_ERR_INVALID, "x and log_r must not be NULL");
    for (size_t i = 0; i < n; i++)
        DS_CHECK(!isnan(log_r[i]) && !(isinf(log_r[i]) && log_r[i] > 0), DS_ERR_NUMERIC,
                 "log_r[%zu] = %g: the replay buffer takes finite log R (or -inf); filter the "
                 "batch first", i, (double)log_r[i]);

    const size_t d = (size_t)b->dim;
    /* Entries of a batch larger than the buffer would be evicted by the
     * batch's own tail: skip them. */
    size_t skip = n > b->cap ? n - b->cap : 0;
    size_t k = n - skip;
    size_t old_n = b->size;
    b->total += skip;
    size_t start = slot_of(b, b->total);
    double batch_max = -INFINITY;
    for (size_t j = 0; j < k; j++) {
        size_t s = (start + j) % b->cap;
        memcpy(b->x + s * d, x + (skip + j) * d, d * sizeof(ds_real));
        b->log_r[s] = log_r[skip + j];
        if (!isinf(log_r[skip + j]) && b->beta * (double)log_r[skip + j] > batch_max)
            batch_max = b->beta * (double)log_r[skip + j];
    }
    b->total += k;
    b->size = old_n + k < b->cap ? old_n + k : b->cap;

    if (b->prio == DS_PRIO_RANK) {
        DS_TRY(rank_merge(b, start, k, old_n));
    } else if (b->prio == DS_PRIO_REWARD) {
        if (!b->has_shift || batch_max - b->shift > DS_REWARD_MAX_EXCESS) {
            tree_rebuild(b);
        } else {
            for (size_t j = 0; j < k; j++) {
                size_t s = (start + j) % b->cap;
                tree_set(b, s, reward_weight(b, b->log_r[s]));
            }
            if (b->tree[1] < DS_REWARD_MIN_TOTAL) tree_rebuild(b);
        }
    }
    return DS_OK;
}

ds_status ds_buffer_sample(const ds_buffer *b, ds_rng r, uint64_t iteration, uint64_t first, int n,
                           ds_real *x, ds_real *log_r)
{
    DS_CHECK(b != NULL, DS_ERR_INVALID, "buffer must not be NULL");
    DS_CHECK(n >= 0, DS_ERR_INVALID, "n must be >= 0, got %d", n);
    if (n == 0) return DS_OK;
    DS_CHECK(b->size > 0, DS_ERR_INVALID, "cannot sample from an empty replay buffer; add entries first");
    DS_CHECK(b->prio != DS_PRIO_REWARD || b->tree[1] > 0.0, DS_ERR_NUMERIC,
             "reward-priority buffer of %zu entries has no entry with finite log R", b->size);

    const size_t d = (size_t)b->dim;
    const uint64_t oldest = b->total - b->size;
    double c = 0.0, psi_c = 0.0, g_total = 0.0;
    if (b->prio == DS_PRIO_RANK) {
        c = b->rank_weight * (double)b->size;
        psi_c = digamma(c);
        g_total = digamma(c + (double)b->size) - psi_c;
    }
    for (int k = 0; k < n; k++) {
        double u;
        ds_rng_uniform_d(r, iteration, first + (uint64_t)k, 0, 1, &u);
        size_t s;
        if (b->prio == DS_PRIO_RANK) {
            s = b->idx[rank_find(c, b->size, psi_c, g_total, u)].slot;
        } else if (b->prio == DS_PRIO_REWARD) {
            s = reward_find(b, u);
        } else {
            size_t i = (size_t)(u * (double)b->size);
            if (i >= b->size) i = b->size - 1;
            s = slot_of(b, oldest + i);
        }
        if (x) memcpy(x + (size_t)k * d, b->x + s * d, d * sizeof(ds_real));
        if (log_r) log_r[k] = b->log_r[s];
    }
    return DS_OK;
}

/* ---- access ---- */

ds_status ds_buffer_get(const ds_buffer *b, size_t i, ds_real *x, ds_real *log_r)
{
    DS_CHECK(b != NULL, DS_ERR_INVALID, "buffer must not be NULL");
    DS_CHECK(i < b->size, DS_ERR_INVALID, "entry %zu requested from a buffer of %zu", i, b->size);
    size_t s = slot_of(b, b->total - b->size + i);
    if (x) memcpy(x, b->x + s * (size_t)b->dim, (size_t)b->dim * sizeof(ds_real));
    if (log_r) *log_r = b->log_r[s];
    return DS_OK;
}

ds_status ds_buffer_export(const ds_buffer *b, ds_real *x, ds_real *log_r)
{
    DS_CHECK(b != NULL, DS_ERR_INVALID, "buffer must not be NULL");
    const size_t d = (size_t)b->dim;
    for (size_t i = 0; i < b->size; i++)
        DS_TRY(ds_buffer_get(b, i, x ? x + i * d : NULL, log_r ? log_r + i : NULL));
    return DS_OK;
}

ds_status ds_buffer_import(ds_buffer *b, size_t n, const ds_real *x, const ds_real *log_r)
{
    DS_CHECK(b != NULL, DS_ERR_INVALID, "buffer must not be NULL");
    for (size_t i = 0; i < n; i++)
        DS_CHECK(log_r != NULL && !isnan(log_r[i]) && !(isinf(log_r[i]) && log_r[i] > 0),
                 DS_ERR_NUMERIC, "imported log_r[%zu] is NaN or +inf (or log_r is NULL)", i);
    ds_buffer_clear(b);
    DS_TRY(ds_buffer_add(b, n, x, log_r));
    return DS_OK;
}

/* A candidate of top-n selection; seq orders ties (older is better). */
typedef struct top_entry {
    ds_real key;
    uint64_t seq;
} top_entry;

static int top_better(const top_entry *a, const top_entry *b)
{
    return a->key > b->key || (a->key == b->key && a->seq < b->seq);
}

static int top_cmp(const void *pa, const void *pb)
{
    const top_entry *a = pa, *b = pb;
    return top_better(a, b) ? -1 : top_better(b, a) ? 1 : 0;
}

/* Restores the min-heap (root = worst kept) below node i. */
static void heap_down(top_entry *h, size_t n, size_t i)
{
    for (;;) {
        size_t w = i, l = 2 * i + 1, r = 2 * i + 2;
        if (l < n && top_better(&h[w], &h[l])) w = l;
        if (r < n && top_better(&h[w], &h[r])) w = r;
        if (w == i) return;
        top_entry t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

ds_status ds_buffer_top(const ds_buffer *b, int n, ds_real *x, ds_real *log_r)
{
    DS_CHECK(b != NULL, DS_ERR_INVALID, "buffer must not be NULL");
    DS_CHECK(n >= 0 && (size_t)n <= b->size, DS_ERR_INVALID,
             "top %d requested from a buffer of %zu entries", n, b->size);
    if (n == 0) return DS_OK;
    const size_t d = (size_t)b->dim;
    if (b->prio == DS_PRIO_RANK) {
        for (int k = 0; k < n; k++) {
            size_t s = b->idx[k].slot;
            if (x) memcpy(x + (size_t)k * d, b->x + s * d, d * sizeof(ds_real));
            if (log_r) log_r[k] = b->log_r[s];
        }
        return DS_OK;
    }
    top_entry *h = malloc((size_t)n * sizeof(*h));
    DS_ALLOC_CHECK(h);
    size_t m = 0;
    const uint64_t oldest = b->total - b->size;
    for (size_t i = 0; i < b->size; i++) {
        top_entry e = {b->log_r[slot_of(b, oldest + i)], oldest + i};
        if (m < (size_t)n) {
            /* sift up */
            size_t j = m++;
            h[j] = e;
            while (j > 0 && top_better(&h[(j - 1) / 2], &h[j])) {
                top_entry t = h[j];
                h[j] = h[(j - 1) / 2];
                h[(j - 1) / 2] = t;
                j = (j - 1) / 2;
            }
        } else if (top_better(&e, &h[0])) {
            h[0] = e;
            heap_down(h, m, 0);
        }
    }
    qsort(h, m, sizeof(*h), top_cmp);
    for (size_t k = 0; k < m; k++) {
        size_t s = slot_of(b, h[k].seq);
        if (x) memcpy(x + k * d, b->x + s * d, d * sizeof(ds_real));
        if (log_r) log_r[k] = b->log_r[s];
    }
    free(h);
    return DS_OK;
}
