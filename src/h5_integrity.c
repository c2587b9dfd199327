/* h5_integrity: the checksums of every file diffsamp writes (h5io.h).
 *
 * Each dataset carries a `crc32c` attribute, the CRC-32C (Castagnoli) of its
 * elements in their stored little-endian type, row-major. Sharded datasets
 * combine the CRCs of the ranks' rows in rank order (crc(A || B) from crc(A),
 * crc(B) and |B|: a non-commutative MPI reduction, which MPI applies in rank
 * order), so the value does not depend on the number of ranks.
 *
 * The whole file carries a completion record appended after HDF5's last byte
 * before the file is fsynced and renamed into place (HDF5 ignores bytes past
 * its end of allocation), so the record is there the moment the file is
 * published. It lists every dataset's byte range with its CRC, and the CRCs
 * of all the other bytes (HDF5's metadata: superblock, object headers, the
 * global heap with the variable-length strings), cut at each dataset's object
 * header so that damaged metadata can be blamed on a dataset. A reader checks
 * it before HDF5 sees the file (HDF5 can crash on a damaged global heap) and
 * names the damaged dataset. Layout, little-endian:
 *
 *   entries (record_len bytes), each: u64 offset, u64 length, u32 crc,
 *       u64 header, u32 header_crc, u16 name_len, name (no NUL); header_crc
 *       covers the metadata bytes from the object header at `header` to the
 *       next dataset's header
 *   footer (32 bytes): "DSRECRD1", u64 content_len (the HDF5 file's bytes),
 *       u32 n_entries, u32 record_len, u32 meta_crc (the metadata before the
 *       first dataset header), u32 crc of entries + the footer's first 28 bytes
 *
 * so the file is content_len + record_len + 32 bytes long. */
#define _POSIX_C_SOURCE 200809L
#include "h5io_impl.h"
#include "diffsamp/mpicheck.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the dataset checksums are defined on little-endian bytes; a big-endian port must byte-swap first"
#endif

static const char record_magic[8] = {'D', 'S', 'R', 'E', 'C', 'R', 'D', '1'};

/* ---- CRC-32C ----------------------------------------------------------------- */

#define CRC32C_POLY 0x82F63B78u /* reflected Castagnoli polynomial */

static uint32_t crc_table[256];
static int crc_table_ready;

static void crc_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc_table[i] = c;
    }
    crc_table_ready = 1;
}

static uint32_t crc_sw(uint32_t c, const unsigned char *p, size_t n)
{
    if (!crc_table_ready) crc_table_init();
    while (n--) c = crc_table[(c ^ *p++) & 0xffu] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DS_CRC_HW 1
/* SSE4.2's crc32 instruction computes exactly this CRC (8 bytes a cycle). */
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const unsigned char *p, size_t n)
{
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--) c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
#endif

uint32_t ds_crc32c(uint32_t crc, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    uint32_t c = ~crc;
    if (n == 0) return crc;
#ifdef DS_CRC_HW
    static int hw = -1;
    if (hw < 0) {
        __builtin_cpu_init();
        hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    }
    if (hw) return ~crc_hw(c, p, n);
#endif
    return ~crc_sw(c, p, n);
}

/* a * b modulo the CRC polynomial, in the reflected bit order (bit 31 is x^0). */
static uint32_t gf2_mulmod(uint32_t a, uint32_t b)
{
    uint32_t m = 1u << 31, p = 0;
    for (int i = 0; i < 32; i++) {
        if (a & m) p ^= b;
        m >>= 1;
        b = b & 1 ? (b >> 1) ^ CRC32C_POLY : b >> 1;
    }
    return p;
}

/* crc(A || B) = crc(B) xor crc(A) * x^(8|B|): the pre- and post-inversions of
 * the two CRCs cancel, so only A's value has to be moved past |B| bytes. */
uint32_t ds_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
    uint32_t shift = 1u << 31, base = 1u << 23; /* x^0, x^8 */
    for (uint64_t n = len_b; n; n >>= 1) {
        if (n & 1) shift = gf2_mulmod(shift, base);
        base = gf2_mulmod(base, base);
    }
    return crc_b ^ gf2_mulmod(shift, crc_a);
}

/* (crc, length) pairs of consecutive byte ranges; MPI hands the lower ranks'
 * pair in `in` for a non-commutative operation. */
static void crc_pair_op(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    const uint64_t *a = in;
    uint64_t *b = inout;
    for (int i = 0; i < *len; i++) {
        uint64_t ca = a[2 * i], la = a[2 * i + 1], cb = b[2 * i], lb = b[2 * i + 1];
        b[2 * i] = ds_crc32c_combine((uint32_t)ca, (uint32_t)cb, lb);
        b[2 * i + 1] = la + lb;
    }
}

ds_status ds_h5_crc_rank_order(MPI_Comm comm, uint32_t local, uint64_t len, uint32_t *out)
{
    MPI_Op op;
    MPI_Datatype pair;
    uint64_t mine[2] = {local, len}, all[2] = {0, 0};
    DS_MPI(MPI_Type_contiguous(2, MPI_UINT64_T, &pair));
    DS_MPI(MPI_Type_commit(&pair));
    DS_MPI(MPI_Op_create(crc_pair_op, 0, &op));
    int err = MPI_Allreduce(mine, all, 1, pair, op, comm);
    MPI_Op_free(&op);
    MPI_Type_free(&pair);
    DS_CHECK(err == MPI_SUCCESS, DS_ERR_MPI, "combining the checksums of the ranks failed");
    *out = (uint32_t)all[0];
    return DS_OK;
}

/* ---- the index of datasets ----------------------------------------------------- */

void ds_h5_index_free(ds_h5_index *ix)
{
    if (!ix) return;
    for (int i = 0; i < ix->n; i++) ds_free(ix->e[i].name);
    ds_free(ix->e);
    memset(ix, 0, sizeof *ix);
}

static ds_status index_add(ds_h5_index *ix, const char *name, uint64_t offset, uint64_t length, uint32_t crc,
                           uint64_t header, uint32_t header_crc)
{
    if (ix->n == ix->cap) {
        int cap = ix->cap ? 2 * ix->cap : 16;
        ds_h5_entry *e = ds_calloc((size_t)cap, sizeof *e);
        DS_ALLOC_CHECK(e);
        if (ix->n) memcpy(e, ix->e, sizeof *e * (size_t)ix->n);
        ds_free(ix->e);
        ix->e = e;
        ix->cap = cap;
    }
    ds_h5_entry *e = &ix->e[ix->n];
    e->name = ds_h5_str_dup(name);
    DS_ALLOC_CHECK(e->name);
    e->offset = offset;
    e->length = length;
    e->crc = crc;
    e->header = header;
    e->header_crc = header_crc;
    ix->n++;
    return DS_OK;
}

const ds_h5_entry *ds_h5_index_find(const ds_h5_index *ix, const char *name)
{
    for (int i = 0; ix && i < ix->n; i++)
        if (strcmp(ix->e[i].name, name) == 0) return &ix->e[i];
    return NULL;
}

ds_status ds_h5_dset_seal(hid_t d, const char *name, uint32_t crc, ds_h5_index *ix)
{
    uint32_t v = crc;
    DS_TRY(ds_h5_attr_write_scalar(d, DS_H5_CRC_ATTR, H5T_STD_U32LE, H5T_NATIVE_UINT32, &v));
    if (!ix) return DS_OK;
    hsize_t size = H5Dget_storage_size(d);
    haddr_t off = size ? H5Dget_offset(d) : 0;
    DS_CHECK(off != HADDR_UNDEF, DS_ERR_IO, "dataset %s has no contiguous storage to checksum", name);
    H5O_info_t oi;
    DS_CHECK(H5Oget_info2(d, &oi, H5O_INFO_BASIC) >= 0, DS_ERR_IO, "cannot find the object header of dataset %s", name);
    return index_add(ix, name, (uint64_t)off, (uint64_t)size, crc, (uint64_t)oi.addr, 0);
}

/* ---- the completion record ------------------------------------------------------ */

#define FOOTER 32
#define RECORD_MAX (64u << 20) /* far above any real index: a bound for damaged files */
#define NAME_MAX_LEN 4096
#define ENTRY 34 /* bytes of an entry before its name */

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int cmp_entry(const void *a, const void *b)
{
    const ds_h5_entry *x = *(const ds_h5_entry *const *)a, *y = *(const ds_h5_entry *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The CRC of bytes [from, to) of a file, continuing crc. */
static ds_status crc_range(int fd, const char *path, uint64_t from, uint64_t to, unsigned char *buf, size_t cap,
                           uint32_t *crc)
{
    while (from < to) {
        size_t want = to - from < cap ? (size_t)(to - from) : cap;
        ssize_t got = pread(fd, buf, want, (off_t)from);
        DS_CHECK(got > 0, DS_ERR_IO, "reading bytes %llu..%llu of %s failed: %s", (unsigned long long)from,
                 (unsigned long long)(from + want), path, got < 0 ? strerror(errno) : "unexpected end of file");
        *crc = ds_crc32c(*crc, buf, (size_t)got);
        from += (uint64_t)got;
    }
    return DS_OK;
}

/* The entries sorted by offset, checked to lie inside [0, content) without
 * overlapping (NULL and a message when they do not). */
static ds_status sorted_entries(const ds_h5_index *ix, uint64_t content, const char *path, const char *kind,
                                const ds_h5_entry ***out)
{
    *out = NULL;
    const ds_h5_entry **s = ds_calloc((size_t)ix->n + 1, sizeof *s);
    DS_ALLOC_CHECK(s);
    for (int i = 0; i < ix->n; i++) s[i] = &ix->e[i];
    qsort(s, (size_t)ix->n, sizeof *s, cmp_entry);
    uint64_t end = 0;
    for (int i = 0; i < ix->n; i++) {
        const ds_h5_entry *e = s[i];
        if (e->length == 0) continue;
        if (e->offset < end || e->length > content || e->offset > content - e->length) {
            ds_free(s);
            return ds_error_set(DS_ERR_FORMAT, __FILE__, __LINE__, __func__,
                                "%s %s: the completion record places dataset %s at bytes %llu..%llu, outside the "
                                "%llu bytes of the file or over another dataset (damaged record)", kind, path, e->name,
                                (unsigned long long)e->offset, (unsigned long long)(e->offset + e->length),
                                (unsigned long long)content);
        }
        end = e->offset + e->length;
    }
    *out = s;
    return DS_OK;
}

#define IO_CHUNK (1u << 20)

static int cmp_header(const void *a, const void *b)
{
    const ds_h5_entry *x = *(const ds_h5_entry *const *)a, *y = *(const ds_h5_entry *const *)b;
    return x->header < y->header ? -1 : x->header > y->header;
}

/* The CRCs of the metadata (every byte outside the datasets' data, s sorted
 * by offset): seg[0] before the first object header, seg[1 + i] from the
 * i-th header (h sorted by header address) to the next. */
static ds_status meta_crcs(int fd, const char *path, uint64_t content, const ds_h5_entry **s,
                           const ds_h5_entry **h, int n, unsigned char *buf, uint32_t *seg)
{
    uint64_t pos = 0;
    int ri = 0, bi = 0, cur = 0;
    for (int i = 0; i <= n; i++) seg[i] = 0;
    while (pos < content) {
        while (ri < n && (s[ri]->length == 0 || s[ri]->offset + s[ri]->length <= pos)) ri++;
        if (ri < n && s[ri]->offset <= pos) {
            pos = s[ri]->offset + s[ri]->length;
            continue;
        }
        while (bi < n && h[bi]->header <= pos) cur = 1 + bi++;
        uint64_t end = content;
        if (ri < n && s[ri]->offset < end) end = s[ri]->offset;
        if (bi < n && h[bi]->header < end) end = h[bi]->header;
        DS_TRY(crc_range(fd, path, pos, end, buf, IO_CHUNK, &seg[cur]));
        pos = end;
    }
    return DS_OK;
}

/* ix's entries sorted by header address. */
static ds_status by_header(const ds_h5_index *ix, const ds_h5_entry ***out)
{
    const ds_h5_entry **h = ds_calloc((size_t)ix->n + 1, sizeof *h);
    DS_ALLOC_CHECK(h);
    for (int i = 0; i < ix->n; i++) h[i] = &ix->e[i];
    qsort(h, (size_t)ix->n, sizeof *h, cmp_header);
    *out = h;
    return DS_OK;
}

/* Rank 0's part of ds_h5_seal_file; recompute: the datasets' CRCs are taken
 * from the file's bytes rather than from ix (ds_h5_reseal). */
static ds_status seal_local(const char *tmp, ds_h5_index *ix, int recompute)
{
    ds_status rc = DS_OK;
    const ds_h5_entry **s = NULL, **h = NULL;
    unsigned char *buf = NULL, *rec = NULL;
    uint32_t *seg = NULL;
    int fd = open(tmp, O_RDWR);
    CHECK(fd >= 0, rc, done, DS_ERR_IO, "cannot open %s to record its checksums: %s", tmp, strerror(errno));
    struct stat st;
    CHECK(fstat(fd, &st) == 0, rc, done, DS_ERR_IO, "cannot stat %s: %s", tmp, strerror(errno));
    uint64_t content = (uint64_t)st.st_size;
    DS_TRY_GOTO(rc, sorted_entries(ix, content, tmp, "file", &s), done);
    DS_TRY_GOTO(rc, by_header(ix, &h), done);
    buf = ds_calloc(IO_CHUNK, 1);
    seg = ds_calloc((size_t)ix->n + 1, sizeof *seg);
    CHECK(buf != NULL && seg != NULL, rc, done, DS_ERR_NOMEM, "out of memory to checksum %s", tmp);
    for (int i = 0; recompute && i < ix->n; i++) {
        ds_h5_entry *e = (ds_h5_entry *)s[i];
        e->crc = 0;
        DS_TRY_GOTO(rc, crc_range(fd, tmp, e->offset, e->offset + e->length, buf, IO_CHUNK, &e->crc), done);
    }
    /* every byte that is not a dataset's: HDF5's metadata */
    DS_TRY_GOTO(rc, meta_crcs(fd, tmp, content, s, h, ix->n, buf, seg), done);
    for (int i = 0; i < ix->n; i++) ((ds_h5_entry *)h[i])->header_crc = seg[1 + i];
    uint32_t meta = seg[0];
    size_t len = 0;
    for (int i = 0; i < ix->n; i++) len += ENTRY + strlen(s[i]->name);
    CHECK(len <= RECORD_MAX, rc, done, DS_ERR_INVALID, "%s: the index of its datasets is too long", tmp);
    rec = ds_calloc(len + FOOTER, 1);
    CHECK(rec != NULL, rc, done, DS_ERR_NOMEM, "out of memory for the record of %s", tmp);
    unsigned char *p = rec;
    for (int i = 0; i < ix->n; i++) {
        size_t nl = strlen(s[i]->name);
        CHECK(nl <= NAME_MAX_LEN, rc, done, DS_ERR_INVALID, "%s: dataset name %s is too long", tmp, s[i]->name);
        put64(p, s[i]->offset);
        put64(p + 8, s[i]->length);
        put32(p + 16, s[i]->crc);
        put64(p + 20, s[i]->header);
        put32(p + 28, s[i]->header_crc);
        p[32] = (unsigned char)(nl & 0xff);
        p[33] = (unsigned char)(nl >> 8);
        memcpy(p + ENTRY, s[i]->name, nl);
        p += ENTRY + nl;
    }
    memcpy(p, record_magic, 8);
    put64(p + 8, content);
    put32(p + 16, (uint32_t)ix->n);
    put32(p + 20, (uint32_t)len);
    put32(p + 24, meta);
    put32(p + 28, ds_crc32c(0, rec, len + 28));
    size_t total = len + FOOTER, done_bytes = 0;
    while (done_bytes < total) {
        ssize_t w = pwrite(fd, rec + done_bytes, total - done_bytes, (off_t)(content + done_bytes));
        CHECK(w > 0, rc, done, DS_ERR_IO, "writing the checksum record of %s failed (disk full?): %s", tmp,
              w < 0 ? strerror(errno) : "no progress");
        done_bytes += (size_t)w;
    }
done:
    if (fd >= 0 && close(fd) != 0 && rc == DS_OK)
        rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "closing %s failed: %s", tmp, strerror(errno));
    ds_free(s);
    ds_free(h);
    ds_free(seg);
    ds_free(buf);
    ds_free(rec);
    return rc;
}

ds_status ds_h5_seal_file(MPI_Comm comm, const char *tmp, ds_h5_index *ix)
{
    int rank;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    return ds_h5_agree(comm, rank == 0 ? seal_local(tmp, ix, 0) : DS_OK);
}

ds_status ds_h5_seal_bytes(const char *path, ds_h5_index *ix)
{
    return seal_local(path, ix, 1);
}

/* ---- resealing a file that a tool changed (tests, fuzzing) --------------------------- */

typedef struct visit_ctx {
    int n, cap;
    char **names;
} visit_ctx;

static herr_t visit_cb(hid_t obj, const char *name, const H5O_info_t *info, void *data)
{
    (void)obj;
    visit_ctx *c = data;
    if (info->type != H5O_TYPE_DATASET) return 0;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 32;
        char **v = realloc(c->names, sizeof *v * (size_t)cap);
        if (!v) return -1;
        c->names = v;
        c->cap = cap;
    }
    size_t len = strlen(name);
    c->names[c->n] = malloc(len + 2);
    if (!c->names[c->n]) return -1;
    c->names[c->n][0] = '/';
    memcpy(c->names[c->n] + 1, name, len + 1);
    c->n++;
    return 0;
}

/* Drops a completion record at the end of path (the file's own bytes stay). */
static ds_status strip_record(const char *path)
{
    unsigned char foot[FOOTER];
    int fd = open(path, O_RDWR);
    DS_CHECK(fd >= 0, DS_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    ds_status rc = DS_OK;
    if (fstat(fd, &st) == 0 && st.st_size >= FOOTER &&
        pread(fd, foot, FOOTER, st.st_size - FOOTER) == FOOTER && memcmp(foot, record_magic, 8) == 0) {
        uint64_t content = get64(foot + 8);
        if (content < (uint64_t)st.st_size && ftruncate(fd, (off_t)content) != 0)
            rc = ds_error_set(DS_ERR_IO, __FILE__, __LINE__, __func__, "cannot truncate %s: %s", path,
                              strerror(errno));
    }
    close(fd);
    return rc;
}

ds_status ds_h5_reseal(const char *path)
{
    ds_status rc = DS_OK;
    visit_ctx c = {0, 0, NULL};
    ds_h5_index ix = {0, 0, NULL};
    unsigned char *buf = NULL;
    hid_t f = -1;
    DS_TRY(strip_record(path));
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(f >= 0, rc, done, DS_ERR_FORMAT, "cannot open %s with HDF5", path);
    CHECK(H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_NATIVE, visit_cb, &c, H5O_INFO_BASIC) >= 0, rc, done, DS_ERR_FORMAT,
          "cannot list the datasets of %s", path);
    for (int i = 0; i < c.n; i++) {
        hid_t d = H5Dopen2(f, c.names[i], H5P_DEFAULT), t = d >= 0 ? H5Dget_type(d) : -1;
        hsize_t size = d >= 0 ? H5Dget_storage_size(d) : 0;
        uint32_t crc = 0;
        buf = size ? ds_calloc((size_t)size, 1) : NULL;
        int ok = d >= 0 && t >= 0 && (size == 0 || (buf && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0));
        if (ok && size) crc = ds_crc32c(0, buf, (size_t)size);
        if (ok && H5Aexists(d, DS_H5_CRC_ATTR) > 0) ok = H5Adelete(d, DS_H5_CRC_ATTR) >= 0;
        if (ok) ok = ds_h5_dset_seal(d, c.names[i], crc, &ix) == DS_OK;
        DS_FREE(buf);
        ds_h5_close(t);
        ds_h5_close(d);
        CHECK(ok, rc, done, DS_ERR_FORMAT, "cannot checksum dataset %s of %s", c.names[i], path);
    }
    herr_t cerr = H5Fclose(f);
    f = -1;
    CHECK(cerr >= 0, rc, done, DS_ERR_IO, "closing %s failed", path);
    rc = seal_local(path, &ix, 1);
done:
    if (f >= 0) H5Fclose(f);
    for (int i = 0; i < c.n; i++) free(c.names[i]);
    free(c.names);
    ds_h5_index_free(&ix);
    return rc;
}

/* Parses the entries of a record (already checked by its CRC) into ix. */
static ds_status parse_entries(const unsigned char *rec, size_t len, uint32_t n, const char *path, const char *kind,
                               ds_h5_index *ix)
{
    size_t at = 0;
    char name[NAME_MAX_LEN + 1];
    for (uint32_t i = 0; i < n; i++) {
        DS_CHECK(len - at >= ENTRY, DS_ERR_FORMAT, "%s %s: the completion record is shorter than its %u entries",
                 kind, path, n);
        size_t nl = (size_t)rec[at + 32] | (size_t)rec[at + 33] << 8;
        DS_CHECK(nl >= 1 && nl <= NAME_MAX_LEN && len - at - ENTRY >= nl, DS_ERR_FORMAT,
                 "%s %s: entry %u of the completion record has a bad name length %zu", kind, path, i, nl);
        memcpy(name, rec + at + ENTRY, nl);
        name[nl] = '\0';
        DS_CHECK(strlen(name) == nl, DS_ERR_FORMAT, "%s %s: entry %u of the completion record has a bad name", kind,
                 path, i);
        DS_TRY(index_add(ix, name, get64(rec + at), get64(rec + at + 8), get32(rec + at + 16), get64(rec + at + 20),
                         get32(rec + at + 28)));
        at += ENTRY + nl;
    }
    DS_CHECK(at == len, DS_ERR_FORMAT, "%s %s: the completion record has %zu bytes after its %u entries", kind, path,
             len - at, n);
    return DS_OK;
}

/* Rank 0's part of ds_h5_verify_file: *sealed 1 and the record's bytes in
 * *rec_out when the file has a record that verifies; 0 when it has none. */
static ds_status verify_local(const char *path, const char *kind, int *sealed, unsigned char **rec_out,
                              size_t *rec_len, uint32_t *n_entries)
{
    ds_status rc = DS_OK;
    ds_h5_index ix = {0, 0, NULL};
    const ds_h5_entry **s = NULL, **h = NULL;
    unsigned char *buf = NULL, *rec = NULL, foot[FOOTER];
    uint32_t *seg = NULL;
    *sealed = 0;
    *rec_out = NULL;
    *rec_len = 0;
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0, rc, done, DS_ERR_IO, "cannot open %s %s: %s", kind, path, strerror(errno));
    struct stat st;
    CHECK(fstat(fd, &st) == 0, rc, done, DS_ERR_IO, "cannot stat %s %s: %s", kind, path, strerror(errno));
    CHECK(S_ISREG(st.st_mode), rc, done, DS_ERR_IO, "%s %s is not a regular file", kind, path);
    uint64_t size = (uint64_t)st.st_size;
    if (size < FOOTER) goto done;
    CHECK(pread(fd, foot, FOOTER, (off_t)(size - FOOTER)) == FOOTER, rc, done, DS_ERR_IO, "cannot read %s %s: %s",
          kind, path, strerror(errno));
    if (memcmp(foot, record_magic, 8) != 0) goto done; /* no record: the caller decides */
    uint64_t content = get64(foot + 8);
    uint32_t n = get32(foot + 16), len = get32(foot + 20), meta = get32(foot + 24), want = get32(foot + 28);
    CHECK(len <= RECORD_MAX && content <= size - FOOTER && size - FOOTER - content == len, rc, done, DS_ERR_FORMAT,
          "%s %s is %llu bytes long but its completion record describes %llu bytes of data and a %u-byte index: the "
          "file was truncated, appended to or damaged at its end", kind, path, (unsigned long long)size,
          (unsigned long long)content, len);
    rec = ds_calloc((size_t)len + FOOTER, 1);
    CHECK(rec != NULL, rc, done, DS_ERR_NOMEM, "out of memory for the record of %s", path);
    CHECK(len == 0 || pread(fd, rec, len, (off_t)content) == (ssize_t)len, rc, done, DS_ERR_IO,
          "cannot read the completion record of %s %s", kind, path);
    memcpy(rec + len, foot, FOOTER);
    uint32_t got = ds_crc32c(0, rec, (size_t)len + 28);
    CHECK(got == want, rc, done, DS_ERR_FORMAT, "%s %s: its completion record is damaged (CRC-32C 0x%08x, recorded "
          "0x%08x): not opened", kind, path, got, want);
    DS_TRY_GOTO(rc, parse_entries(rec, len, n, path, kind, &ix), done);
    DS_TRY_GOTO(rc, sorted_entries(&ix, content, path, kind, &s), done);
    DS_TRY_GOTO(rc, by_header(&ix, &h), done);
    buf = ds_calloc(IO_CHUNK, 1);
    seg = ds_calloc((size_t)ix.n + 1, sizeof *seg);
    CHECK(buf != NULL && seg != NULL, rc, done, DS_ERR_NOMEM, "out of memory to verify %s", path);
    for (int i = 0; i < ix.n; i++) {
        uint32_t c = 0;
        DS_TRY_GOTO(rc, crc_range(fd, path, s[i]->offset, s[i]->offset + s[i]->length, buf, IO_CHUNK, &c), done);
        CHECK(c == s[i]->crc, rc, done, DS_ERR_FORMAT,
              "%s %s: dataset %s is damaged: the CRC-32C of its %llu bytes at offset %llu is 0x%08x, the file "
              "recorded 0x%08x", kind, path, s[i]->name, (unsigned long long)s[i]->length,
              (unsigned long long)s[i]->offset, c, s[i]->crc);
    }
    DS_TRY_GOTO(rc, meta_crcs(fd, path, content, s, h, ix.n, buf, seg), done);
    CHECK(seg[0] == meta, rc, done, DS_ERR_FORMAT,
          "%s %s: its HDF5 metadata before the first dataset (superblock, root group, the root attributes and the "
          "global heap that holds the config and the other strings) is damaged: CRC-32C 0x%08x, recorded 0x%08x; "
          "not opened", kind, path, seg[0], meta);
    for (int i = 0; i < ix.n; i++) {
        uint64_t end = i + 1 < ix.n ? h[i + 1]->header : content;
        CHECK(seg[1 + i] == h[i]->header_crc, rc, done, DS_ERR_FORMAT,
              "%s %s: dataset %s is damaged: its object header (shape, type, attributes) or the HDF5 metadata after "
              "it, bytes %llu..%llu outside the datasets' data, has CRC-32C 0x%08x, recorded 0x%08x; not opened",
              kind, path, h[i]->name, (unsigned long long)h[i]->header, (unsigned long long)end, seg[1 + i],
              h[i]->header_crc);
    }
    *sealed = 1;
    *rec_out = rec;
    *rec_len = len;
    *n_entries = n;
    rec = NULL;
done:
    if (fd >= 0) close(fd);
    ds_h5_index_free(&ix);
    ds_free(s);
    ds_free(h);
    ds_free(seg);
    ds_free(buf);
    ds_free(rec);
    return rc;
}

ds_status ds_h5_verify_file(MPI_Comm comm, const char *path, const char *kind, int *sealed, ds_h5_index *ix)
{
    int rank;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    unsigned char *rec = NULL;
    size_t len = 0;
    uint32_t n = 0;
    *sealed = 0;
    ds_status rc = rank == 0 ? verify_local(path, kind, sealed, &rec, &len, &n) : DS_OK;
    rc = ds_h5_agree(comm, rc);
    if (rc != DS_OK) {
        ds_free(rec);
        return rc;
    }
    /* every rank gets the index, to match datasets against it */
    unsigned long long hdr[3] = {(unsigned long long)*sealed, (unsigned long long)len, n};
    DS_MPI(MPI_Bcast(hdr, 3, MPI_UNSIGNED_LONG_LONG, 0, comm));
    *sealed = (int)hdr[0];
    if (!*sealed) return DS_OK;
    len = (size_t)hdr[1];
    n = (uint32_t)hdr[2];
    if (rank != 0) rec = ds_calloc(len + 1, 1);
    rc = rec ? DS_OK : ds_error_set(DS_ERR_NOMEM, __FILE__, __LINE__, __func__, "out of memory for a record");
    DS_TRY_GOTO(rc, ds_h5_agree(comm, rc), out);
    if (len) DS_MPI_GOTO(rc, out, MPI_Bcast(rec, (int)len, MPI_BYTE, 0, comm));
    rc = ds_h5_agree(comm, parse_entries(rec, len, n, path, kind, ix));
out:
    ds_free(rec);
    if (rc != DS_OK) ds_h5_index_free(ix);
    return rc;
}

/* ---- the checks of a dataset being read ------------------------------------------ */

ds_status ds_h5_dset_check(const ds_h5_rd *r, hid_t d, const char *name)
{
    htri_t has = H5Aexists(d, DS_H5_CRC_ATTR);
    if (!r->sealed) return DS_OK; /* a file written before the checksums: ds_h5_open_for_read warned */
    DS_CHECK(has > 0, DS_ERR_FORMAT, "%s %s: dataset %s has no %s attribute (damaged, or not written by diffsamp)",
             r->kind, r->path, name, DS_H5_CRC_ATTR);
    uint32_t crc = 0;
    DS_TRY(ds_h5_attr_read_num(r, d, name, DS_H5_CRC_ATTR, H5T_NATIVE_UINT32, &crc));
    hsize_t size = H5Dget_storage_size(d);
    if (size == 0) {
        DS_CHECK(crc == 0, DS_ERR_FORMAT, "%s %s: dataset %s has no data but a checksum 0x%08x", r->kind, r->path,
                 name, crc);
        return DS_OK;
    }
    const ds_h5_entry *e = ds_h5_index_find(&r->index, name);
    haddr_t off = H5Dget_offset(d);
    /* The record verified e's bytes before HDF5 opened the file: a dataset
     * whose bytes are e's, with e's checksum, was read as it was written. */
    DS_CHECK(e && off != HADDR_UNDEF && e->offset == (uint64_t)off && e->length == (uint64_t)size && e->crc == crc,
             DS_ERR_FORMAT, "%s %s: dataset %s (checksum 0x%08x, %llu bytes at offset %llu) does not match the file's "
             "completion record%s", r->kind, r->path, name, crc, (unsigned long long)size,
             (unsigned long long)(off == HADDR_UNDEF ? 0 : off), e ? "" : ", which does not list it");
    return DS_OK;
}

ds_status ds_h5_record_index(const char *path, ds_h5_index *ix, uint64_t *content)
{
    unsigned char foot[FOOTER], *rec = NULL;
    ds_status rc = DS_OK;
    *content = 0;
    int fd = open(path, O_RDONLY);
    DS_CHECK(fd >= 0, DS_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    CHECK(fstat(fd, &st) == 0 && st.st_size >= FOOTER, rc, done, DS_ERR_FORMAT, "%s has no record", path);
    uint64_t size = (uint64_t)st.st_size;
    CHECK(pread(fd, foot, FOOTER, (off_t)(size - FOOTER)) == FOOTER && memcmp(foot, record_magic, 8) == 0, rc, done,
          DS_ERR_FORMAT, "%s has no record", path);
    uint64_t c = get64(foot + 8);
    uint32_t n = get32(foot + 16), len = get32(foot + 20);
    CHECK(len <= RECORD_MAX && c <= size - FOOTER && size - FOOTER - c == len, rc, done, DS_ERR_FORMAT,
          "%s: its record does not fit", path);
    rec = ds_calloc((size_t)len + 1, 1);
    CHECK(rec != NULL, rc, done, DS_ERR_NOMEM, "out of memory");
    CHECK(len == 0 || pread(fd, rec, len, (off_t)c) == (ssize_t)len, rc, done, DS_ERR_IO, "cannot read %s", path);
    DS_TRY_GOTO(rc, parse_entries(rec, len, n, path, "file", ix), done);
    *content = c;
done:
    close(fd);
    ds_free(rec);
    if (rc != DS_OK) ds_h5_index_free(ix);
    return rc;
}

/* ---- HDF5's global heap, checked before HDF5 reads it ----------------------------- */

/* A global heap collection ("GCOL", version 1, 3 zero bytes, u64 size, then
 * objects of u16 index, u16 refcount, u32 reserved, u64 size and the data
 * padded to 8 bytes; index 0 is free space, its size counting its header):
 * HDF5 1.10 walks the objects trusting their sizes, and loops forever on a
 * free-space object of size 0 or crashes when an object overruns the
 * collection. 1 when the collection at off is sound, walked the way HDF5
 * walks it (H5HG__cache_heap_deserialize). */
static int heap_sound(int fd, uint64_t off, uint64_t file_size, uint64_t *bad_at)
{
    unsigned char h[16];
    static unsigned char seen[65536 / 8];
    if (pread(fd, h, 16, (off_t)off) != 16) return 0;
    uint64_t size = get64(h + 8);
    *bad_at = off;
    if (size < 16 || size > file_size || off > file_size - size) return 0;
    memset(seen, 0, sizeof seen);
    uint64_t p = off + 16, end = off + size;
    while (end - p >= 16) {
        *bad_at = p;
        if (pread(fd, h, 16, (off_t)p) != 16) return 0;
        unsigned idx = (unsigned)h[0] | (unsigned)h[1] << 8;
        uint64_t n = get64(h + 8);
        if (n > end - p) return 0;
        uint64_t need = idx ? 16 + ((n + 7) & ~(uint64_t)7) : n;
        if (need < 16 || need > end - p) return 0;
        if (idx) {
            if (seen[idx / 8] & (1u << (idx % 8))) return 0; /* two objects with one index */
            seen[idx / 8] |= (unsigned char)(1u << (idx % 8));
        }
        p += need;
    }
    return 1;
}

/* Checks every collection whose signature starts in [from, to). */
static ds_status heaps_in(int fd, const char *path, const char *kind, uint64_t from, uint64_t to, uint64_t size,
                          unsigned char *buf)
{
    static const unsigned char sig[8] = {'G', 'C', 'O', 'L', 1, 0, 0, 0};
    for (uint64_t at = from; at < to; at += IO_CHUNK) {
        /* 7 bytes past the chunk, so that a signature across its end is seen */
        uint64_t lim = to - at < IO_CHUNK ? to - at : IO_CHUNK, want = lim + 7 <= size - at ? lim + 7 : size - at;
        ssize_t got = pread(fd, buf, (size_t)want, (off_t)at);
        DS_CHECK(got == (ssize_t)want, DS_ERR_IO, "cannot read %s %s", kind, path);
        for (unsigned char *p = buf; (p = memchr(p, 'G', (size_t)(buf + lim - p))) != NULL; p++) {
            if ((uint64_t)(p - buf) + 8 > want || memcmp(p, sig, 8) != 0) continue;
            uint64_t bad = 0, off = at + (uint64_t)(p - buf);
            DS_CHECK(heap_sound(fd, off, size, &bad), DS_ERR_FORMAT,
                     "%s %s: the HDF5 global heap at byte %llu (it holds the variable-length strings: the config and "
                     "the other root attributes, column names, descriptions) is damaged at byte %llu; not opened",
                     kind, path, (unsigned long long)off, (unsigned long long)bad);
        }
    }
    return DS_OK;
}

/* The collections outside the datasets' data (ix, already verified to lie
 * inside the file without overlapping) or, without ix, anywhere. */
static ds_status heaps_local(const char *path, const char *kind, const ds_h5_index *ix)
{
    ds_status rc = DS_OK;
    const ds_h5_entry **s = NULL;
    unsigned char *buf = ds_calloc(IO_CHUNK + 8, 1);
    int fd = open(path, O_RDONLY);
    CHECK(buf != NULL, rc, done, DS_ERR_NOMEM, "out of memory to check %s", path);
    CHECK(fd >= 0, rc, done, DS_ERR_IO, "cannot open %s %s: %s", kind, path, strerror(errno));
    struct stat st;
    CHECK(fstat(fd, &st) == 0, rc, done, DS_ERR_IO, "cannot stat %s %s", kind, path);
    uint64_t size = (uint64_t)st.st_size, at = 0;
    if (ix && ix->n) {
        DS_TRY_GOTO(rc, sorted_entries(ix, size, path, kind, &s), done);
        for (int i = 0; i < ix->n; i++) {
            if (s[i]->length == 0) continue;
            DS_TRY_GOTO(rc, heaps_in(fd, path, kind, at, s[i]->offset, size, buf), done);
            at = s[i]->offset + s[i]->length;
        }
    }
    DS_TRY_GOTO(rc, heaps_in(fd, path, kind, at, size, size, buf), done);
done:
    if (fd >= 0) close(fd);
    ds_free(s);
    ds_free(buf);
    return rc;
}

ds_status ds_h5_check_heaps(MPI_Comm comm, const char *path, const char *kind, const ds_h5_index *ix)
{
    int rank;
    DS_MPI(MPI_Comm_rank(comm, &rank));
    return ds_h5_agree(comm, rank == 0 ? heaps_local(path, kind, ix) : DS_OK);
}
