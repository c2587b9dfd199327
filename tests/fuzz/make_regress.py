#!/usr/bin/env python3
"""Makes the damaged-file regression inputs of tests/fuzz/regress/ from a seed
(tests/fuzz/corpus/<kind>/tiny_np1), one per crash class of issue 21, each as
written (with its completion record) and as a file from before the checksums
("legacy_": no record, no integrity or crc32c attributes), so both paths of the
readers are replayed. Usage: make_regress.py SEED OUTDIR [checkpoint|samples]
"""
import os
import shutil
import struct
import sys
import tempfile

import h5py

FOOTER = 32


def strip_record(b):
    """The HDF5 bytes of a file with a completion record."""
    if len(b) >= FOOTER and b[-FOOTER:-FOOTER + 8] == b"DSRECRD1":
        return b[:struct.unpack("<Q", b[-FOOTER + 8:-FOOTER + 16])[0]]
    return b


def legacy(b):
    """The file as diffsamp wrote it before the checksums."""
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "f.h5")
        open(p, "wb").write(strip_record(b))
        with h5py.File(p, "r+") as f:
            if "integrity" in f.attrs:
                del f.attrs["integrity"]
            names = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            for n in names:
                if "crc32c" in f[n].attrs:
                    del f[n].attrs["crc32c"]
        return open(p, "rb").read()


def heap(b):
    """Offset of the first global heap collection and of its objects."""
    g = b.find(b"GCOL\x01\x00\x00\x00")
    objs, p = [], g + 16
    while True:
        idx, _, _, size = struct.unpack("<HHIQ", b[p:p + 16])
        if idx == 0:
            break
        objs.append((p, size))
        p += 16 + ((size + 7) & ~7)
    return g, objs


def data_offset(b, name):
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "f.h5")
        open(p, "wb").write(b)
        with h5py.File(p, "r") as f:
            return f[name].id.get_offset()


def shape(b, name):
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "f.h5")
        open(p, "wb").write(b)
        with h5py.File(p, "r") as f:
            return f[name].shape


def put(b, off, raw):
    b = bytearray(b)
    b[off:off + len(raw)] = raw
    return bytes(b)


def cases(b, kind):
    g, objs = heap(b)
    out = {
        # one byte of the collection size and one of an object's index
        "gheap_size_byte": put(b, g + 9, b"\x7f"),
        "gheap_index_byte": put(b, objs[1][0], b"\xff"),
        # a string's text, and an object length that overruns the collection
        "gheap_text_byte": put(b, objs[0][0] + 16, b"X"),
        "gheap_length": put(b, objs[1][0] + 8, struct.pack("<Q", 1000000)),
        "gheap_length_small": put(b, objs[0][0] + 8, struct.pack("<Q", 4000)),
        "truncated_half": b[:len(b) // 2],
        "truncated_record": b[:len(b) - 10],
    }
    if kind == "checkpoint":
        dims = b.find(struct.pack("<QQ", *shape(b, "/metrics")))  # in its dataspace message
        out["metrics_rows_3"] = put(b, dims, struct.pack("<Q", 3))
        out["metrics_rows_huge"] = put(b, dims, struct.pack("<Q", 1 << 62))
        v = data_offset(b, "/optimizer/v")
        out["optimizer_v_flip"] = put(b, v + 5, bytes([b[v + 5] ^ 0x10]))
    else:
        x = data_offset(b, "/x")
        out["x_flip"] = put(b, x + 3, bytes([b[x + 3] ^ 0x01]))
    return out


def main():
    seed, outdir, kind = sys.argv[1], sys.argv[2], sys.argv[3]
    sealed = open(seed, "rb").read()
    old = legacy(sealed)
    os.makedirs(outdir, exist_ok=True)
    shutil.copy(seed, os.path.join(outdir, "sealed_intact"))
    open(os.path.join(outdir, "legacy_intact"), "wb").write(old)
    for prefix, b in (("sealed_", sealed), ("legacy_", old)):
        for name, data in cases(b, kind).items():
            open(os.path.join(outdir, prefix + name), "wb").write(data)


if __name__ == "__main__":
    main()
