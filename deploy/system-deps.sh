#!/bin/sh
# Debian packages the test suite needs: Chromium for the browser tests (never a downloaded
# browser), a CJK font so Chinese text renders, and Apache httpd with mod_auth_cas and
# mod_auth_openidc for the interop tests (apache2-bin only: no system service is set up or
# started). Installs what is missing when run as root.
set -eu
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -x /usr/sbin/apache2 ] || missing="$missing apache2-bin"
[ -f /usr/lib/apache2/modules/mod_auth_cas.so ] || missing="$missing libapache2-mod-auth-cas"
[ -f /usr/lib/apache2/modules/mod_auth_openidc.so ] || missing="$missing libapache2-mod-auth-openidc"
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
