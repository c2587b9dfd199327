#!/usr/bin/env bash
# Installs the Debian packages diffsamp needs, only those that are missing.
# Runs as root (apt-get); does nothing when everything is present.
set -euo pipefail
pkgs=(build-essential cmake pkg-config git libopenmpi-dev openmpi-bin libhdf5-openmpi-dev
      hdf5-tools libopenblas-dev libyaml-dev zlib1g-dev check python3-h5py python3-numpy
      python3-matplotlib python3-pot python3-yaml
      r-base-core r-cran-spatstat.data  # R: the lgcp energy's data (finpines), extracted at build
      dataset-fashion-mnist)  # dataset-fashion-mnist: the default images of diffsamp vae-train
# `deps.sh fuzz` (make fuzz): clang and its libFuzzer runtime as well
[ "${1:-}" = fuzz ] && pkgs+=(clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages and not root; run as root or install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
