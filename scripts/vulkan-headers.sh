#!/usr/bin/env bash
# Vulkan and SPIR-V headers new enough for llama.cpp's Vulkan backend; prints the prefix to build with
# (one holding usr/include/vulkan and usr/share/cmake/SPIRV-Headers).
#   scripts/vulkan-headers.sh DEST
# The system's headers when they have VK_EXT_layer_settings (the Vulkan backend uses it). Debian 12's
# (libvulkan-dev 1.3.239) do not, so there the headers of Debian 13 (1.4.309) are downloaded from
# Debian's archive and unpacked into DEST — headers only, nothing is installed; the loader
# (libvulkan1) and glslc stay Debian 12's, which build and run the backend.
set -euo pipefail
dest=${1:?the folder to unpack newer headers into}
# apt reads a relative path against /etc/apt: everything it is given is absolute.
dest=$(realpath -m "$dest")
root=${RUN_FIT_SYSROOT:-}
fresh_enough() { grep -q VK_EXT_layer_settings "$1/usr/include/vulkan/vulkan_core.h" 2>/dev/null && [ -d "$1/usr/share/cmake/SPIRV-Headers" ]; }
if fresh_enough "$root"; then
  echo "${root:-/}"
  exit 0
fi
if fresh_enough "$dest"; then
  echo "$dest"
  exit 0
fi
echo "run-fit: this system's Vulkan headers lack VK_EXT_layer_settings (Debian 12 has 1.3.239); unpacking Debian 13's into $dest" >&2
work="$dest.download"
rm -rf "$work" && mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/cache" "$work/parts"
echo "deb http://deb.debian.org/debian trixie main" > "$work/sources.list"
apt_opts=(-o Dir::Etc::sourcelist="$work/sources.list" -o Dir::Etc::sourceparts="$work/parts" -o Dir::State::Lists="$work/lists"
  -o Dir::Cache="$work/cache" -o Dir::Cache::Archives="$work/archives" -o APT::Sandbox::User=root -qq)
apt-get "${apt_opts[@]}" update >&2
(cd "$work" && apt-get "${apt_opts[@]}" download libvulkan-dev spirv-headers >&2)
rm -rf "$dest" && mkdir -p "$dest"
for deb in "$work"/*.deb; do dpkg -x "$deb" "$dest"; done
rm -rf "$work"
fresh_enough "$dest" || { echo "run-fit: Debian 13's Vulkan headers did not unpack into $dest" >&2; exit 1; }
echo "$dest"
