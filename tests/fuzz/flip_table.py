#!/usr/bin/env python3
"""The damage count of issue 21: one flipped bit at 80 places of a checkpoint
(40 inside numeric datasets' data, 40 elsewhere) and 10 truncations, each read
through `diffsamp eval --checkpoint`, classified as crash (killed by a signal,
or a sanitizer report), refused (exit 1 or 2) or accepted (exit 0).
Usage: flip_table.py DIFFSAMP CHECKPOINT [SEED]   (prints one table)"""
import os
import random
import shutil
import subprocess
import sys
import tempfile

import h5py


def data_ranges(path):
    out = []
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.id.get_storage_size() > 0 and obj.dtype.kind in "fiu":
                out.append((obj.id.get_offset(), obj.id.get_storage_size()))
        f.visititems(visit)
    return sorted(out)


def classify(exe, path):
    try:
        p = subprocess.run([exe, "eval", "--checkpoint", path], capture_output=True, text=True, timeout=120,
                           errors="replace")
    except subprocess.TimeoutExpired:
        return "hang"
    if p.returncode < 0 or p.returncode >= 128 or "Sanitizer" in p.stderr:
        return "crash"
    return "accepted" if p.returncode == 0 else "refused"


def main():
    exe, ckpt = sys.argv[1], sys.argv[2]
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 21)
    size = os.path.getsize(ckpt)
    ranges = data_ranges(ckpt)
    inside = [o + i for o, n in ranges for i in range(n)]
    in_set = set(inside)
    outside = [i for i in range(size) if i not in in_set]
    counts = {}
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "checkpoint.h5")
        trials = [("flip in data", rng.choice(inside)) for _ in range(40)]
        trials += [("flip elsewhere", rng.choice(outside)) for _ in range(40)]
        trials += [("truncation", rng.randrange(size)) for _ in range(10)]
        for kind, at in trials:
            shutil.copy(ckpt, f)
            if kind == "truncation":
                os.truncate(f, at)
            else:
                with open(f, "r+b") as h:
                    h.seek(at)
                    b = h.read(1)[0]
                    h.seek(at)
                    h.write(bytes([b ^ (1 << rng.randrange(8))]))
            c = classify(exe, f)
            counts.setdefault(kind, {}).setdefault(c, 0)
            counts[kind][c] += 1
    print("%s on %s (%d bytes, %d bytes of numeric data)" % (exe, ckpt, size, len(inside)))
    for kind in ("flip in data", "flip elsewhere", "truncation"):
        c = counts.get(kind, {})
        print("  %-15s crash %2d  hang %2d  refused %2d  accepted %2d" % (kind, c.get("crash", 0), c.get("hang", 0),
                                                                          c.get("refused", 0), c.get("accepted", 0)))


if __name__ == "__main__":
    main()
