#!/usr/bin/env bash
# Install the system tools the project needs but PyPI does not ship: Icarus Verilog, and
# the C++ tool chain and perl that Verilator builds with (plus the zlib and lz4 headers its
# FST waveform writer needs: `--waves-from/--waves-to` on the replay path), and ccache,
# which caches the C++ compiles Verilator models share (hdl/flow/tools.py: objcache).
# Idempotent; uses apt-get as root or through sudo, and says what to install when it can
# do neither.
set -euo pipefail
missing=()
command -v iverilog >/dev/null 2>&1 || missing+=(iverilog)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v perl >/dev/null 2>&1 || missing+=(perl)
command -v ccache >/dev/null 2>&1 || missing+=(ccache)
[ -f /usr/include/lz4.h ] || missing+=(liblz4-dev)
[ -f /usr/include/zlib.h ] || missing+=(zlib1g-dev)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "system-deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then SUDO=""
elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"
else
  echo "system-deps: need root or sudo to run: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
for tool in iverilog g++ make perl ccache; do
  command -v "$tool" >/dev/null 2>&1 || { echo "system-deps: $tool still missing" >&2; exit 1; }
done
for h in lz4.h zlib.h; do
  [ -f "/usr/include/$h" ] || { echo "system-deps: /usr/include/$h still missing" >&2; exit 1; }
done
