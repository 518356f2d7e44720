#!/bin/sh
# System packages the tests need beyond Python: Chromium, for the report's browser test
# (tests/test_report.py). Debian/Ubuntu with apt; idempotent and quiet: does nothing when a
# Chromium is already installed. Needs root or sudo.
set -eu
for exe in chromium chromium-browser; do
    if command -v "$exe" >/dev/null 2>&1; then
        exit 0
    fi
done
if [ "$(id -u)" -eq 0 ]; then
    as_root=""
else
    as_root="sudo"
fi
$as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null 2>&1 || {
    echo "install-system-deps: chromium was not installed" >&2
    exit 1
}
