#!/usr/bin/env bash
# Print the path of amtool (Alertmanager's config checker, Debian package `prometheus-alertmanager`),
# installing it if missing.
exec "$(dirname "$0")/../ensure_debian_tool.sh" amtool prometheus-alertmanager
