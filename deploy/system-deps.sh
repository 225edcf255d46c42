#!/bin/sh
# Debian packages the test suite needs: Chromium for the browser tests (never a downloaded
# browser) and a CJK font so Chinese text renders. Installs what is missing when run as root.
set -eu
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
if ! fc-list 2>/dev/null | grep -qi -e "WenQuanYi" -e "Noto Sans CJK"; then
  missing="$missing fonts-wqy-microhei"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing Debian packages:$missing — install them with: sudo apt-get install$missing" >&2
  exit 1
fi
echo "system-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
