#!/usr/bin/env bash
# Debian packages the tests need: Chromium opens the dashboard in a real headless browser;
# weasyprint draws the scorecard PDF with Pango and the DejaVu fonts; poppler-utils
# (pdftoppm) renders its pages to PNG for review.
set -euo pipefail
PACKAGES="chromium fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0 poppler-utils"
missing=""
for p in $PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -z "$missing" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages:$missing; run 'sudo apt-get install -y$missing'" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
