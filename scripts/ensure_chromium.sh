#!/usr/bin/env bash
# Static plotly export (kaleido) drives a Chrome or Chromium binary. Install Debian's chromium when
# none is found and we may (root with apt-get); otherwise say how, and figures fall back to HTML.
for browser in chromium chromium-browser google-chrome google-chrome-stable chrome; do
  command -v "$browser" >/dev/null 2>&1 && exit 0
done
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing chromium for PNG figure export (apt-get) ..."
  if apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; then
    exit 0
  fi
fi
echo "WARNING: no Chrome/Chromium found: figures will be saved as HTML only." >&2
echo "         Install one for PNGs, e.g. 'sudo apt-get install -y chromium'." >&2
exit 0
