#!/usr/bin/env bash
# Print the path of promtool; install it first if it is missing.
#
# promtool ships in the Debian/Ubuntu package `prometheus`; it is installed non-interactively with
# apt-get (as root, or through password-less sudo). Exits non-zero with a message naming the problem
# when promtool can neither be found nor installed: the rule tests must fail then, not be skipped.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    command -v promtool
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "promtool is not on PATH and apt-get is not available to install it: install Prometheus' promtool" \
         "(Debian/Ubuntu package 'prometheus', or the release archive from prometheus.io) and put it on PATH" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "promtool is not on PATH and installing the 'prometheus' package needs root:" \
         "run 'sudo apt-get install prometheus' once, then rerun" >&2
    exit 1
fi

echo "promtool not found: installing the Debian package 'prometheus' (it provides promtool)..." >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2

if ! command -v promtool >/dev/null 2>&1; then
    echo "the 'prometheus' package was installed but promtool is still not on PATH" >&2
    exit 1
fi
command -v promtool
