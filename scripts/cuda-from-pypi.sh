#!/usr/bin/env bash
# A CUDA toolkit for building run-fit's CUDA module without root or NVIDIA's apt repository: NVIDIA's
# own PyPI wheels (nvcc, cicc, the runtime, cuBLAS, CCCL) unpacked into DEST, laid out as
# /usr/local/cuda is. Prints DEST's bin folder; put it first on PATH and run scripts/setup.sh:
#   PATH="$(bash scripts/cuda-from-pypi.sh ~/.cache/run-fit/cuda)":$PATH bash scripts/setup.sh
# The wheels hold no driver stub (lib64/stubs/libcuda.so), so scripts/build-backend.sh builds ggml's
# CUDA backend without its virtual-memory pool (GGML_CUDA_NO_VMM). The driver itself (libcuda.so.1)
# still comes with the card's driver. CUDA 13 builds for Turing (7.5) and newer only.
# The versions are those run-fit's CUDA module was built and timed with (docs/GPU.md); override:
#   RUN_FIT_CUDA_VERSION=13.5.37  the nvcc/nvvm/crt/runtime wheels' version
#   RUN_FIT_CUBLAS_VERSION=13.10.0.20 RUN_FIT_CCCL_VERSION=13.3.5.0.6
set -euo pipefail
dest=$(realpath -m "${1:?the folder to unpack the toolkit into}")
version=${RUN_FIT_CUDA_VERSION:-13.5.37}
cublas=${RUN_FIT_CUBLAS_VERSION:-13.10.0.20}
cccl=${RUN_FIT_CCCL_VERSION:-13.3.5.0.6}
if [ -x "$dest/bin/nvcc" ] && "$dest/bin/nvcc" --version >/dev/null 2>&1; then
  echo "$dest/bin"
  exit 0
fi
command -v python3 >/dev/null || { echo "run-fit: python3 (with pip) is needed to fetch NVIDIA's wheels" >&2; exit 1; }
work="$dest.download"
rm -rf "$work" && mkdir -p "$work"
echo "run-fit: fetching CUDA $version from NVIDIA's PyPI wheels (about 600 MB) into $dest" >&2
python3 -m pip download --quiet --no-deps --dest "$work" \
  "nvidia-cuda-nvcc==$version" "nvidia-nvvm==$version" "nvidia-cuda-crt==$version" \
  "nvidia-cuda-runtime==$version" "nvidia-cublas==$cublas" "nvidia-cuda-cccl==$cccl" >&2 ||
  { echo "run-fit: pip could not fetch NVIDIA's CUDA $version wheels: is PyPI reachable, and the versions there? (RUN_FIT_CUDA_VERSION, RUN_FIT_CUBLAS_VERSION, RUN_FIT_CCCL_VERSION set them)" >&2; exit 1; }
rm -rf "$dest" && mkdir -p "$dest"
for wheel in "$work"/*.whl; do python3 -m zipfile -e "$wheel" "$work/unpacked" >&2; done
# CUDA 13's wheels all unpack into nvidia/cu13/{bin,include,lib,nvvm}, /usr/local/cuda's layout.
cp -r "$work"/unpacked/nvidia/cu*/. "$dest/"
rm -rf "$work"
chmod +x "$dest"/bin/* "$dest"/nvvm/bin/*
# CMake's FindCUDAToolkit links the unversioned names and looks in lib64.
for lib in "$dest"/lib/lib*.so.*; do
  ln -sf "$(basename "$lib")" "${lib%.so.*}.so"
done
ln -sfn lib "$dest/lib64"
"$dest/bin/nvcc" --version >/dev/null || { echo "run-fit: the unpacked nvcc in $dest/bin does not run" >&2; exit 1; }
echo "$dest/bin"
