#!/usr/bin/env bash
# Usage: ensure_debian_tool.sh TOOL PACKAGE
# Print the path of TOOL; install the Debian/Ubuntu PACKAGE that provides it first if it is missing.
#
# The package is installed non-interactively with apt-get (as root, or through password-less sudo; a
# package's service is not started where policy-rc.d forbids it, as in containers). Exits non-zero with
# a message naming the problem when TOOL can neither be found nor installed: the checks that need it
# must fail then, not be skipped.
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 TOOL PACKAGE" >&2
    exit 2
fi
tool=$1
package=$2

if command -v "$tool" >/dev/null 2>&1; then
    command -v "$tool"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "$tool is not on PATH and apt-get is not available to install it: install $tool" \
         "(Debian/Ubuntu package '$package', or the release archive from prometheus.io) and put it on PATH" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "$tool is not on PATH and installing the '$package' package needs root:" \
         "run 'sudo apt-get install $package' once, then rerun" >&2
    exit 1
fi

echo "$tool not found: installing the Debian package '$package' (it provides $tool)..." >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >&2

if ! command -v "$tool" >/dev/null 2>&1; then
    echo "the '$package' package was installed but $tool is still not on PATH" >&2
    exit 1
fi
command -v "$tool"
