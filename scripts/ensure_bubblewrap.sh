#!/usr/bin/env bash
# Generated code (code tasks) runs under bubblewrap (bwrap): namespaces, read-only root, no network.
# Install Debian's bubblewrap when it is missing and we may (root with apt-get); otherwise say how.
# Without it, code tasks refuse to run unless SLM_NOTEBOOKS_WEAK_SANDBOX=1 / --allow-weak-sandbox.
if command -v "${SLM_NOTEBOOKS_BWRAP:-bwrap}" >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing bubblewrap to sandbox generated code (apt-get) ..."
  if apt-get install -y -q bubblewrap >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1; }; then
    exit 0
  fi
fi
echo "WARNING: bubblewrap (bwrap) not found: generated code will be refused (code tasks)." >&2
echo "         Install it, e.g. 'sudo apt-get install -y bubblewrap', or opt in to the weaker" >&2
echo "         Python-level guard with SLM_NOTEBOOKS_WEAK_SANDBOX=1 (CLI: --allow-weak-sandbox)." >&2
exit 0
