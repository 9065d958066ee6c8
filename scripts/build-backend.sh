#!/usr/bin/env bash
# Build one ggml backend module (libggml-BACKEND.so) from ggml's source with CMake and put it in DEST,
# beside a run-fit built with the dynamic-backends feature, which loads it at start. The one way
# backends are built: scripts/setup.sh uses it for users, the GPU kit (scripts/gpu/run.sh) on the
# lent GPU machine, where there is no Rust.
#   scripts/build-backend.sh BACKEND GGML_SOURCE DEST [CUDA_ARCHS]
#   BACKEND: cuda, vulkan, rpc or cpu; CUDA_ARCHS: "86;89" or "default" (llama.cpp's own set)
# Prints what it built and how long it took on stderr; the build's log goes to DEST/build-BACKEND.log.
set -euo pipefail
backend=${1:?backend: cuda, vulkan, rpc or cpu}
src=${2:?the ggml source folder}
dest=${3:?the folder of the run-fit that loads it}
archs=${4:-default}
build=${RUN_FIT_BACKEND_BUILD_DIR:-$dest/build-$backend}
log="$dest/build-$backend.log"
root=${RUN_FIT_SYSROOT:-} # where the driver's libcuda.so is looked for (tests fake a machine there)
# The CUDA toolkit's top folder (/usr/local/cuda), from the nvcc that CMake will find.
toolkit_top() {
  local nvcc
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  dirname "$(dirname "$(readlink -f "$nvcc")")"
}
# Whether there is a libcuda.so for FindCUDAToolkit to link ggml-cuda to: toolkit TOP's stub, or the
# driver's own.
driver_stub() {
  local top=$1
  for stub in "$top"/lib64/stubs/libcuda.so "$top"/lib/stubs/libcuda.so "$top"/targets/*/lib/stubs/libcuda.so \
    "$top"/lib/x86_64-linux-gnu/stubs/libcuda.so \
    "$root"/usr/lib/x86_64-linux-gnu/libcuda.so "$root"/usr/lib64/libcuda.so; do
    [ -e "$stub" ] && return 0
  done
  command -v ldconfig >/dev/null && ldconfig -p | grep -q 'libcuda\.so '
}
# The same switches llama-cpp-sys-2 gives the ggml it builds for run-fit (dynamic-backends), so the
# module matches the libggml-base.so beside it.
flags=(-DGGML_BACKEND_DL=ON -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF -DCMAKE_BUILD_TYPE=Release
  -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF)
case "$backend" in
  cuda)
    flags+=(-DGGML_CUDA=ON)
    [ "$archs" = default ] || flags+=(-DCMAKE_CUDA_ARCHITECTURES="$archs")
    # The module is copied beside run-fit, not installed, so its build RUNPATH is the one it keeps:
    # the toolkit's own lib folders go in it, so libcudart/libcublas are found where they were linked
    # even when the toolkit is not known to the loader (pip wheels, a toolkit with no ld.so.conf entry).
    top=$(toolkit_top) rpath=""
    for dir in "$top"/lib64 "$top"/lib "$top"/targets/*/lib; do
      [ -d "$dir" ] || continue
      dir=$(readlink -f "$dir")
      [[ ";$rpath;" == *";$dir;"* ]] || rpath+="${rpath:+;}$dir"
    done
    [ -z "$rpath" ] || flags+=(-DCMAKE_BUILD_RPATH="$rpath")
    # ggml links the driver's libcuda.so for CUDA's virtual-memory pool; a toolkit without the
    # driver stub (NVIDIA's pip wheels) cannot, so ggml's pool without it (GGML_CUDA_NO_VMM) is built.
    if ! driver_stub "$top"; then
      flags+=(-DGGML_CUDA_NO_VMM=ON)
      echo "run-fit: no libcuda.so to link (the toolkit has no lib64/stubs): building CUDA without its virtual-memory pool (GGML_CUDA_NO_VMM)" >&2
    fi
    ;;
  vulkan)
    flags+=(-DGGML_VULKAN=ON)
    prefix=$(bash "$(dirname "$0")/vulkan-headers.sh" "$dest/vulkan-headers")
    [ "$prefix" = / ] || flags+=(-DVulkan_INCLUDE_DIR="$prefix/usr/include" -DCMAKE_PREFIX_PATH="$prefix/usr")
    ;;
  rpc) flags+=(-DGGML_RPC=ON) ;;
  cpu) flags+=(-DGGML_CPU=ON) ;;
  *) echo "run-fit: backend '$backend': use cuda, vulkan, rpc or cpu" >&2; exit 2 ;;
esac
[ -f "$src/CMakeLists.txt" ] || { echo "run-fit: $src is not ggml's source (no CMakeLists.txt)" >&2; exit 2; }
mkdir -p "$dest"
start=$(date +%s)
# llama-cpp-sys-2 ships ggml's source without ggml.pc.in, which ggml's own CMake configures; a stub
# serves (nothing is installed). The crate's source is read-only, so a copy gets it.
if [ ! -f "$src/ggml.pc.in" ]; then
  rm -rf "$build.src" && cp -r "$src" "$build.src" && src="$build.src"
  printf 'Name: ggml\nDescription: ggml\nVersion: @GGML_VERSION@\nLibs: -lggml\n' > "$src/ggml.pc.in"
fi
if ! { cmake -S "$src" -B "$build" "${flags[@]}" &&
  cmake --build "$build" --target "ggml-$backend" -j "$(nproc)"; } > "$log" 2>&1; then
  echo "run-fit: building the $backend backend failed; the last lines of $log:" >&2
  tail -n 15 "$log" >&2
  exit 1
fi
module=$(find "$build" -name "libggml-$backend.so" -type f | head -1)
[ -n "$module" ] || { echo "run-fit: the $backend build made no libggml-$backend.so (see $log)" >&2; exit 1; }
cp "$module" "$dest/"
# What was built for which architectures: run-fit reads this to say why a module does not fit a card.
printf '%s %s\n' "$backend" "$archs" > "$dest/libggml-$backend.so.built-for"
size=$(du -h "$dest/libggml-$backend.so" | cut -f1)
echo "run-fit: built libggml-$backend.so ($size) in $(( $(date +%s) - start )) s on $(nproc) cores" >&2
