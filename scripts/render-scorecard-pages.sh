#!/usr/bin/env bash
# Render each page of a scorecard PDF to PNG (poppler's pdftoppm) for a visual review:
#   scripts/render-scorecard-pages.sh <scorecard.pdf> [out-folder] [dpi]
# With no PDF given, renders the newest scorecard under rai-audit-demo/ (from `make demo`).
set -euo pipefail
pdf="${1:-}"
if [ -z "$pdf" ]; then
  pdf=$(ls -t rai-audit-demo/pipeline_root/*/scorecard/scorecard/scorecard.pdf 2>/dev/null | head -n 1 || true)
  [ -n "$pdf" ] || { echo "no scorecard.pdf given and none under rai-audit-demo/: run 'make demo' first" >&2; exit 2; }
fi
[ -f "$pdf" ] || { echo "$pdf: no such file" >&2; exit 2; }
command -v pdftoppm >/dev/null || { echo "pdftoppm is missing: apt-get install poppler-utils" >&2; exit 1; }
out="${2:-scorecard-pages}"
mkdir -p "$out"
pdftoppm -r "${3:-100}" -png "$pdf" "$out/page"
ls "$out"/page-*.png
