#!/usr/bin/env bash
# Which GPU backends this machine can build, read from the toolchains on it. Prints one line per
# backend to build on stdout — `cuda ARCHS` (ARCHS for CMAKE_CUDA_ARCHITECTURES, or `default`),
# `vulkan`, `metal` — and nothing for a CPU-only build. What it found, and for a GPU without its
# toolchain what to install, goes to stderr as lines starting "run-fit:".
#   RUN_FIT_BACKENDS=cpu | cuda | vulkan | cuda,vulkan  overrides the choice (the toolchain must exist).
#   CMAKE_CUDA_ARCHITECTURES=86 (or CUDAARCHS)          builds for those architectures only.
#   RUN_FIT_SYSROOT=DIR  where /dev, /sys and /usr/include are looked for (tests fake a machine there).
set -euo pipefail
root=${RUN_FIT_SYSROOT:-}
say() { echo "run-fit: $*" >&2; }
again="then run \`bash scripts/setup.sh\` again (it rebuilds in a few minutes); building for the CPU now"

nvcc_path() {
  command -v nvcc 2>/dev/null && return
  [ -x "$root/usr/local/cuda/bin/nvcc" ] && echo "$root/usr/local/cuda/bin/nvcc"
  return 0
}

# "12.4" from nvcc's "Cuda compilation tools, release 12.4, V12.4.131"
cuda_version() { "$1" --version 2>/dev/null | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -1; }

# The cards' compute capabilities, "86;89", from nvidia-smi; empty when it is absent or says nothing.
card_archs() {
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | tr -d ' .' | grep -E '^[0-9]+$' |
    sort -un | paste -sd ';' || true
}

nvidia_visible() {
  [ -e "$root/dev/nvidiactl" ] && { echo "$root/dev/nvidiactl"; return; }
  command -v nvidia-smi 2>/dev/null || true
}

# Render nodes of AMD (0x1002) and Intel (0x8086) GPUs, which Vulkan drives.
other_gpus() {
  local v
  for v in "$root"/sys/class/drm/renderD*/device/vendor; do
    [ -f "$v" ] || continue
    case "$(cat "$v")" in 0x1002) echo "AMD ($(dirname "$(dirname "$v")"))" ;; 0x8086) echo "Intel ($(dirname "$(dirname "$v")"))" ;; esac
  done
}

# Every GPU's render node, whatever its vendor.
gpu_nodes() { ls -d "$root"/sys/class/drm/renderD* 2>/dev/null || true; }

vulkan_toolchain() {
  command -v glslc >/dev/null 2>&1 && [ -f "$root/usr/include/vulkan/vulkan.hpp" ] &&
    [ -d "$root/usr/share/cmake/SPIRV-Headers" ] || [ -n "${VULKAN_SDK:-}" ]
}

cuda_line() {
  local nvcc=$1 version archs
  version=$(cuda_version "$nvcc")
  if [ -z "$version" ] || [ "$(printf '%s\n11.7\n' "$version" | sort -V | head -1)" != 11.7 ]; then
    say "$nvcc is CUDA ${version:-of unknown version}; llama.cpp needs 11.7 or newer: install a newer CUDA toolkit, $again"
    return 1
  fi
  archs=${CMAKE_CUDA_ARCHITECTURES:-${CUDAARCHS:-$(card_archs)}}
  if [ -n "$archs" ]; then
    say "CUDA $version ($nvcc): building the CUDA backend for compute capability ${archs//;/, }"
  else
    archs=default
    say "CUDA $version ($nvcc), no card seen (nvidia-smi): building for llama.cpp's default set of architectures"
  fi
  echo "cuda $archs"
}

choose() {
  local nvcc wanted
  nvcc=$(nvcc_path)
  wanted=${RUN_FIT_BACKENDS:-auto}
  if [ "$(uname -s)" = Darwin ]; then
    [ "$wanted" = cpu ] || echo metal
    return
  fi
  case ",$wanted," in
    ,cpu,) return ;;
    ,auto,) ;;
    *cuda* | *vulkan*) ;;
    *) say "RUN_FIT_BACKENDS=$wanted: use cpu, cuda, vulkan or cuda,vulkan"; exit 2 ;;
  esac
  local cuda=no
  if [[ ",$wanted," == *,cuda,* || ( $wanted == auto && -n $nvcc ) ]]; then
    if [ -z "$nvcc" ]; then
      say "RUN_FIT_BACKENDS asks for CUDA but there is no nvcc: install the CUDA toolkit, $again"
    elif cuda_line "$nvcc"; then
      cuda=yes
    fi
  fi
  # Vulkan drives NVIDIA cards too; with CUDA built, a second backend would show each card twice.
  if [[ ",$wanted," == *,vulkan,* || ( $wanted == auto && $cuda == no ) ]]; then
    if vulkan_toolchain && [ "$wanted" = auto ] && [ -z "$(gpu_nodes)" ] && [ -z "$(nvidia_visible)" ]; then
      # A CPU-only machine with glslc around for something else: not worth a 15-minute build.
      say "a Vulkan toolchain is here but no GPU ($root/sys/class/drm has no render node): building for the CPU; RUN_FIT_BACKENDS=vulkan builds the Vulkan backend anyway"
    elif vulkan_toolchain; then
      say "Vulkan toolchain ($(command -v glslc)): building the Vulkan backend"
      echo vulkan
      return
    elif [ "$wanted" != auto ]; then
      say "RUN_FIT_BACKENDS asks for Vulkan but glslc, the Vulkan headers or SPIR-V headers are missing: apt install glslc libvulkan-dev spirv-headers, $again"
    fi
  fi
  [ "$cuda" = yes ] && return
  local nvidia others
  nvidia=$(nvidia_visible)
  others=$(other_gpus | paste -sd ',' | sed 's/,/, /g')
  if [ -n "$nvidia" ]; then
    say "an NVIDIA GPU is here ($nvidia) but no CUDA toolkit (nvcc): install it (Debian: apt install nvidia-cuda-toolkit; or NVIDIA's cuda-toolkit packages), or Vulkan (apt install glslc libvulkan-dev spirv-headers), $again"
  elif [ -n "$others" ]; then
    say "a GPU is here ($others) but no Vulkan toolchain: apt install glslc libvulkan-dev spirv-headers mesa-vulkan-drivers, $again"
  fi
}

choose
