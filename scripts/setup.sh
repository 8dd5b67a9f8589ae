#!/usr/bin/env bash
# Installs everything on a fresh Debian 12 machine (as root): BIRD 2, FRR, iproute2, a venv
# with the daemon and its test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (it installs Debian packages and the lab needs network namespaces)" >&2
  exit 1
fi

need=()
for pkg in bird2 frr iproute2 python3-venv procps; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The packaged services would run on the host's own network; the lab and tests start their
# own instances inside namespaces, so stop the packaged ones where an init system started them.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now bird frr >/dev/null 2>&1 || true
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
echo "setup: done (venv: .venv, BIRD $(bird --version 2>&1 | awk '{print $3}'), FRR $(dpkg-query -W -f='${Version}' frr))"
