/* idx: reader of the idx format of MNIST and Fashion-MNIST (LeCun et al.),
 * plain or gzip-compressed (zlib reads both).
 *
 * Layout: a 4-byte magic 0x00 0x00 <type> <ndims>, ndims big-endian uint32
 * sizes, then the data row-major. Only unsigned bytes (type 0x08) are read:
 * image files (ndims 3: count, rows, cols) and label files (ndims 1). */
#ifndef DS_IDX_H
#define DS_IDX_H

#include "diffsamp/core.h"

#include <stddef.h>
#include <stdint.h>

#define DS_IDX_MAX_DIMS 4

typedef struct ds_idx {
    int ndims;
    size_t dims[DS_IDX_MAX_DIMS];
    size_t count;  /* dims[0]: images or labels */
    size_t width;  /* product of dims[1..]: pixels per image (1 for labels) */
    uint8_t *data; /* (count, width) */
} ds_idx;

/* Reads items [first, first + n) of path (n = 0: to the end). Errors name
 * the file: DS_ERR_IO when it cannot be opened or read, DS_ERR_FORMAT for a
 * bad magic, an element type other than unsigned byte, a size of 0, data
 * shorter than the header says, or a range outside the file's items. */
ds_status ds_idx_read(const char *path, size_t first, size_t n, ds_idx *out);
void ds_idx_free(ds_idx *x);

/* Images of an idx file as ds_real pixels / 255: (count, width) into a new
 * ds_calloc'ed array *pixels (the caller frees with ds_free). */
ds_status ds_idx_read_images(const char *path, size_t first, size_t n, ds_real **pixels, size_t *count,
                             size_t *width);

#endif
