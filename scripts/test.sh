#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, then runs them.
# apt (only when running as root and missing): Chromium and its driver for the browser tests (and kaleido's
# static figures), snmpd for the SNMP tests, fping and nftables for the ICMP tests, poppler-utils (pdftotext,
# pdftoppm) and DejaVu fonts for the report tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v snmpd >/dev/null 2>&1 || need+=(snmpd snmp)
command -v fping >/dev/null 2>&1 || need+=(fping)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "note: ${need[*]} missing and not root: the tests that need them will be skipped" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev,embedded]'
exec .venv/bin/python -m pytest "$@"
