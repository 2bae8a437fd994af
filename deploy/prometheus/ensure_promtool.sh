#!/usr/bin/env bash
# Print the path of promtool (Prometheus' rule checker, Debian package `prometheus`), installing it if missing.
exec "$(dirname "$0")/../ensure_debian_tool.sh" promtool prometheus
