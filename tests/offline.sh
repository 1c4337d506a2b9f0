#!/usr/bin/env bash
# Run a command with every network connection beyond loopback cut off.
# As root (CI) it runs in a fresh network namespace that holds only a loopback device;
# otherwise it tries an unprivileged user namespace. Where neither is allowed it runs the
# command as it is, and tests/conftest.py still refuses non-loopback connections in pytest.
set -euo pipefail
inner='ip link set lo up 2>/dev/null || true; exec "$@"'
if command -v unshare >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
    exec unshare -n bash -c "$inner" offline "$@"
  elif unshare -rn true 2>/dev/null; then
    exec unshare -rn bash -c "$inner" offline "$@"
  fi
fi
echo "tests/offline.sh: no network namespace available; relying on the in-process socket guard" >&2
exec "$@"
