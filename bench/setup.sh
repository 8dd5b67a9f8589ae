#!/usr/bin/env bash
# Installs what the benchmark harness (bench/run) needs beyond scripts/setup.sh: GoBGP and
# ExaBGP from Debian, matplotlib (charts for docs/benchmarks.md) into .venv. Not part of the
# test path: the test suite needs neither GoBGP nor ExaBGP. Safe to run again; as root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/setup: run as root (installs Debian packages)" >&2
  exit 1
fi
[ -x .venv/bin/python ] || scripts/setup.sh

need=()
for pkg in gobgpd exabgp bird2 frr iproute2 procps; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The packaged services would run on the host's network; bench/run starts its own instances
# inside namespaces.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now gobgpd exabgp bird frr >/dev/null 2>&1 || true
fi
.venv/bin/python -m pip install -q matplotlib
echo "bench/setup: done (gobgpd $(dpkg-query -W -f='${Version}' gobgpd)," \
  "exabgp $(dpkg-query -W -f='${Version}' exabgp), matplotlib" \
  "$(.venv/bin/python -c 'import matplotlib; print(matplotlib.__version__)'))"
