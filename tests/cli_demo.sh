#!/usr/bin/env bash
# `make demo` ends with two pictures. On a short run of the demo's embedded
# default (25gmm, TB + exploration + local search) this runs the same recipe
# (`make demo-plots`, with the program under test for the exact samples behind
# the density contours) and checks that it prints both paths, and that the PNGs
# show what they claim: the report each script embeds in its PNG (what was
# drawn) and the pixels themselves: a blue mode marker at each of the 25 modes
# of the 25gmm grid and none between them, model samples in red, contours;
# the training panels with one point per metrics.csv row, each panel inked.
# Skipped without /usr/bin/python3 with matplotlib, h5py, numpy and yaml.
set -u
exe="$1"
src="$2"
py=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1
if ! [ -x "$py" ] || ! "$py" -c "import h5py, numpy, matplotlib, yaml" 2>/dev/null; then
    echo "SKIP: $py lacks one of h5py, numpy, matplotlib, yaml"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }

check "make demo trains the embedded default into runs/demo, then draws" \
    'make -n -C "$src" demo BUILD=/nonexistent 2>/dev/null | grep -qx "/nonexistent/diffsamp train --out runs/demo --resume never" &&
     make -n -C "$src" demo BUILD=/nonexistent 2>/dev/null | grep -q "demo-plots DEMO_DIR=runs/demo"'

"$exe" train --set train.iterations=60 --set eval.every=30 --set eval.samples=400 \
    --set eval.ground_truth_samples=100 --set output.checkpoint_every=60 --set local_search.cycle=20 \
    --out "$tmp/demo" --resume never > "$tmp/train.log" 2>&1; rc=$?
check "short demo run succeeds" '[ $rc -eq 0 ] && [ -s "$tmp/demo/samples.h5" ]'
[ $rc -eq 0 ] || { cat "$tmp/train.log"; exit 1; }

# BUILD: the scripts ask the program under test for the exact samples
make -s --no-print-directory -C "$src" demo-plots DEMO_DIR="$tmp/demo" BUILD="$(cd "$(dirname "$exe")" && pwd)" \
    > "$tmp/plots.log" 2>&1; rc=$?
check "make demo-plots succeeds" '[ $rc -eq 0 ]'
check "it prints the path of samples.png" 'grep -qx "samples over the target density: $tmp/demo/samples.png" "$tmp/plots.log"'
check "it prints the path of training.png" 'grep -qx "training curves: *$tmp/demo/training.png" "$tmp/plots.log"'
[ $rc -eq 0 ] || cat "$tmp/plots.log"

check "samples.png shows the 25gmm samples over its density with 25 mode markers" \
    '"$py" - "$tmp/demo/samples.png" <<"PY"
import json, struct, sys, zlib
import matplotlib.image as mpimg
import numpy as np

def png_text(path):
    """The PNG text chunks (tEXt, zTXt, iTXt) as a dict, and (width, height)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, text, size = 8, {}, None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"tEXt":
            k, v = body.split(b"\0", 1)
            text[k.decode()] = v.decode("latin-1")
        elif kind == b"zTXt":
            k, v = body.split(b"\0", 1)
            text[k.decode()] = zlib.decompress(v[1:]).decode("latin-1")
        elif kind == b"iTXt":
            k, rest = body.split(b"\0", 1)
            comp = rest[0]
            rest = rest[2:].split(b"\0", 2)[2]
            text[k.decode()] = (zlib.decompress(rest) if comp else rest).decode("utf-8")
        pos += 12 + n
    return text, size

path = sys.argv[1]
text, size = png_text(path)
rep = json.loads(text["diffsamp-report"])
assert rep["energy"] == "25gmm" and rep["dim"] == 2, rep["energy"]
assert list(size) == rep["image"], (size, rep["image"])
(panel,) = rep["panels"]
assert panel["mode_markers"] == 25, panel["mode_markers"]
grid = sorted((a, b) for a in (-10.0, -5.0, 0.0, 5.0, 10.0) for b in (-10.0, -5.0, 0.0, 5.0, 10.0))
assert sorted(map(tuple, panel["modes"])) == grid, panel["modes"]
assert panel["model_points"] >= 100 and panel["contour_levels"] > 0, panel
# the contours are of exact samples from the program (diffsamp ground-truth) at the keys of the run
assert panel["density_samples"] == 200000, panel["density_samples"]
assert rep["energy_section"]["spacing"] == 5.0 and rep["energy_section"]["variance"] == 0.3, rep["energy_section"]
img = mpimg.imread(path)[:, :, :3]
h, w = img.shape[:2]
assert (w, h) == tuple(size), (w, h, size)
blue = (img[:, :, 2] > 0.7) & (img[:, :, 0] < 0.4) & (img[:, :, 1] < 0.5)
def near(mask, px, py, r=5):
    x0, y0 = int(round(px)), int(round(py))
    return mask[max(0, y0 - r):y0 + r + 1, max(0, x0 - r):x0 + r + 1].any()
pix = panel["mode_pixels"]
missing = [m for m, p in zip(panel["modes"], pix) if not near(blue, *p)]
assert not missing, "no marker drawn at modes %s" % missing
# nothing marker-blue halfway between neighbouring modes
pm = {tuple(m): p for m, p in zip(panel["modes"], pix)}
for a in (-10.0, -5.0, 0.0, 5.0):
    for b in (-10.0, -5.0, 0.0, 5.0, 10.0):
        p, q = pm[(a, b)], pm[(a + 5.0, b)]
        assert not near(blue, (p[0] + q[0]) / 2, (p[1] + q[1]) / 2, 3), "marker between modes at %s" % ((a + 2.5, b),)
red = (img[:, :, 0] > 0.7) & (img[:, :, 1] < 0.6) & (img[:, :, 2] < 0.6)
gray = (np.abs(img[:, :, 0] - img[:, :, 1]) < 0.03) & (np.abs(img[:, :, 1] - img[:, :, 2]) < 0.03) & \
       (img[:, :, 0] > 0.4) & (img[:, :, 0] < 0.8)
assert red.sum() > 50, "no model samples drawn (%d red pixels)" % red.sum()
assert gray.sum() > 2000, "no density contours drawn (%d gray pixels)" % gray.sum()
print("samples.png: 25 markers at the 25 modes, %d red and %d contour pixels, %d of 25 modes held"
      % (red.sum(), gray.sum(), panel["modes_with_samples"]))
PY'

check "training.png shows the training curves, one point per metrics.csv row" \
    '"$py" - "$tmp/demo/training.png" "$tmp/demo/metrics.csv" <<"PY"
import csv, json, struct, sys, zlib
import matplotlib.image as mpimg
import numpy as np
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, text = 8, {}
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"tEXt":
        k, v = body.split(b"\0", 1)
        text[k.decode()] = v.decode("latin-1")
    elif kind == b"iTXt":
        k, rest = body.split(b"\0", 1)
        comp, rest = rest[0], rest[2:].split(b"\0", 2)[2]
        text[k.decode()] = (zlib.decompress(rest) if comp else rest).decode("utf-8")
    pos += 12 + n
rep = json.loads(text["diffsamp-report"])
rows = list(csv.DictReader(open(sys.argv[2])))
assert len(rows) == 2, len(rows)
titles = [p["title"] for p in rep["panels"]]
for want in ("training loss", "log Z estimates", "|log Z - estimate|", "effective sample size", "modes with samples"):
    assert want in titles, (want, titles)
img = mpimg.imread(sys.argv[1])[:, :, :3]
assert [img.shape[1], img.shape[0]] == rep["image"], (img.shape, rep["image"])
for p in rep["panels"]:
    for c in p["curves"]:
        col = c["label"]
        want = sum(1 for r in rows if r.get(col, "").strip() not in ("", "nan"))
        assert c["points"] == want, (p["title"], col, c["points"], want)
    l, t, r, b = (int(round(v)) for v in p["box"])
    ink = (img[t:b, l:r].min(axis=2) < 0.6).mean()
    assert ink > 0.005, "panel %s is blank (%.4f inked)" % (p["title"], ink)
loss = [p for p in rep["panels"] if p["title"] == "training loss"][0]
assert [c["label"] for c in loss["curves"]] == ["loss"], loss
print("training.png: %d panels: %s" % (len(titles), ", ".join(titles)))
PY'
exit $fail
