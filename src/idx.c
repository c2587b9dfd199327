/* idx: the idx files of MNIST-format image sets (idx.h). */
#include "diffsamp/idx.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static ds_status read_exact(gzFile g, const char *path, void *buf, size_t n, const char *what)
{
    uint8_t *p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(g, p, chunk);
        if (got < 0) {
            int err = 0;
            const char *msg = gzerror(g, &err);
            DS_CHECK(0, DS_ERR_IO, "%s: read error in the %s: %s", path, what, msg ? msg : "unknown");
        }
        DS_CHECK(got > 0, DS_ERR_FORMAT, "%s: the file ends inside the %s (%zu bytes missing)", path, what, n);
        p += got;
        n -= (size_t)got;
    }
    return DS_OK;
}

static ds_status read_file(gzFile g, const char *path, size_t first, size_t n, ds_idx *out)
{
    uint8_t magic[4];
    DS_TRY(read_exact(g, path, magic, 4, "header"));
    DS_CHECK(magic[0] == 0 && magic[1] == 0, DS_ERR_FORMAT,
             "%s: not an idx file (magic bytes %02x %02x %02x %02x; idx files start 00 00)", path, magic[0],
             magic[1], magic[2], magic[3]);
    DS_CHECK(magic[2] == 0x08, DS_ERR_FORMAT,
             "%s: idx element type 0x%02x; only unsigned bytes (0x08, MNIST images and labels) are read", path,
             magic[2]);
    const int nd = magic[3];
    DS_CHECK(nd >= 1 && nd <= DS_IDX_MAX_DIMS, DS_ERR_FORMAT, "%s: idx file with %d dimensions; allowed 1..%d",
             path, nd, DS_IDX_MAX_DIMS);
    out->ndims = nd;
    size_t width = 1;
    for (int i = 0; i < nd; i++) {
        uint8_t b[4];
        DS_TRY(read_exact(g, path, b, 4, "header"));
        size_t v = ((size_t)b[0] << 24) | ((size_t)b[1] << 16) | ((size_t)b[2] << 8) | (size_t)b[3];
        DS_CHECK(v >= 1, DS_ERR_FORMAT, "%s: dimension %d of the idx header is 0", path, i);
        out->dims[i] = v;
        if (i > 0) {
            DS_CHECK(width <= ((size_t)1 << 32) / v, DS_ERR_FORMAT, "%s: items of more than 2^32 bytes", path);
            width *= v;
        }
    }
    const size_t total = out->dims[0];
    DS_CHECK(first < total && (n == 0 || n <= total - first), DS_ERR_FORMAT,
             "%s: items [%zu, %zu) asked for; the file holds %zu", path, first, n == 0 ? total : first + n, total);
    if (n == 0) n = total - first;
    out->width = width;
    out->count = n;
    out->dims[0] = n;
    if (first > 0 && gzseek(g, (z_off_t)(4 + 4 * nd + first * width), SEEK_SET) < 0)
        DS_CHECK(0, DS_ERR_FORMAT, "%s: cannot skip to item %zu (the file is shorter than its header says)", path,
                 first);
    out->data = malloc(n * width);
    DS_ALLOC_CHECK(out->data);
    DS_TRY(read_exact(g, path, out->data, n * width, "data"));
    return DS_OK;
}

ds_status ds_idx_read(const char *path, size_t first, size_t n, ds_idx *out)
{
    DS_CHECK(path && out, DS_ERR_INVALID, "ds_idx_read: NULL argument");
    memset(out, 0, sizeof *out);
    DS_TRY(ds_check_readable(path, "the idx file"));
    gzFile g = gzopen(path, "rb");
    DS_CHECK(g != NULL, DS_ERR_IO, "%s: cannot open the idx file", path);
    ds_status rc = read_file(g, path, first, n, out);
    gzclose(g);
    if (rc != DS_OK) {
        ds_idx_free(out);
        ds_error_trace(__FILE__, __LINE__, __func__);
    }
    return rc;
}

void ds_idx_free(ds_idx *x)
{
    if (!x) return;
    free(x->data);
    memset(x, 0, sizeof *x);
}

ds_status ds_idx_read_images(const char *path, size_t first, size_t n, ds_real **pixels, size_t *count,
                             size_t *width)
{
    DS_CHECK(pixels && count && width, DS_ERR_INVALID, "ds_idx_read_images: NULL argument");
    *pixels = NULL;
    ds_idx x;
    DS_TRY(ds_idx_read(path, first, n, &x));
    if (x.ndims < 2) {
        ds_idx_free(&x);
        DS_CHECK(0, DS_ERR_FORMAT, "%s: a label file (1 dimension); an image file has 3 (count, rows, cols)", path);
    }
    ds_real *p = ds_calloc(x.count * x.width, sizeof(ds_real));
    if (!p) {
        ds_idx_free(&x);
        DS_CHECK(0, DS_ERR_NOMEM, "out of memory for %zu images of %s", x.count, path);
    }
    for (size_t i = 0; i < x.count * x.width; i++) p[i] = (ds_real)((double)x.data[i] / 255.0);
    *pixels = p;
    *count = x.count;
    *width = x.width;
    ds_idx_free(&x);
    return DS_OK;
}
