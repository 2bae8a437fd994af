#!/usr/bin/env bash
# Print the path of amtool (Alertmanager's config checker); install it first if it is missing.
#
# amtool ships in the Debian/Ubuntu package `prometheus-alertmanager`, installed non-interactively with
# apt-get (as root, or through password-less sudo; the package's service is not started where
# policy-rc.d forbids it, as in containers). Exits non-zero with a message naming the problem when amtool
# can neither be found nor installed: the config check must fail then, not be skipped.
set -euo pipefail

if command -v amtool >/dev/null 2>&1; then
    command -v amtool
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "amtool is not on PATH and apt-get is not available to install it: install Alertmanager's amtool" \
         "(Debian/Ubuntu package 'prometheus-alertmanager', or the release archive from prometheus.io) and put it on PATH" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "amtool is not on PATH and installing the 'prometheus-alertmanager' package needs root:" \
         "run 'sudo apt-get install prometheus-alertmanager' once, then rerun" >&2
    exit 1
fi

echo "amtool not found: installing the Debian package 'prometheus-alertmanager' (it provides amtool)..." >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager >&2

if ! command -v amtool >/dev/null 2>&1; then
    echo "the 'prometheus-alertmanager' package was installed but amtool is still not on PATH" >&2
    exit 1
fi
command -v amtool
