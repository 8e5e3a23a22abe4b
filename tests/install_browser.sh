#!/usr/bin/env sh
# Installs Debian's Chromium for the end-to-end browser test when it is missing.
# Never `playwright install`: it downloads a browser, and these machines reach only package registries.
set -eu
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
  chromium chromium-driver fonts-dejavu-core
