#!/bin/sh
# Debian packages the test suite needs: Chromium for the browser tests (never a downloaded
# browser), a CJK font so Chinese text renders, Apache httpd with mod_auth_cas and
# mod_auth_openidc for the interop tests (apache2-bin only: no system service is set up or
# started), and PHP's command line with phpCAS (php-cas, with the curl and DOM extensions it
# uses) for the phpCAS interop test (PHP's built-in server; no web server service either).
# Installs what is missing when run as root.
set -eu
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -x /usr/sbin/apache2 ] || missing="$missing apache2-bin"
[ -f /usr/lib/apache2/modules/mod_auth_cas.so ] || missing="$missing libapache2-mod-auth-cas"
[ -f /usr/lib/apache2/modules/mod_auth_openidc.so ] || missing="$missing libapache2-mod-auth-openidc"
if ! fc-list 2>/dev/null | grep -qi -e "WenQuanYi" -e "Noto Sans CJK"; then
  missing="$missing fonts-wqy-microhei"
fi
php_missing=""
[ -x /usr/bin/php ] || php_missing="$php_missing php-cli"
[ -f /usr/share/php/CAS.php ] || php_missing="$php_missing php-cas"
if [ -x /usr/bin/php ]; then
  php -m 2>/dev/null | grep -qx curl || php_missing="$php_missing php-curl"
  php -m 2>/dev/null | grep -qx dom || php_missing="$php_missing php-xml"
fi
[ -z "$missing$php_missing" ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing Debian packages:$missing$php_missing — install them with:" \
    "sudo apt-get install$missing; and for PHP: sudo apt-get install php-cli php-cgi" \
    "php-curl php-xml && sudo apt-get install php-cas" >&2
  exit 1
fi
echo "system-deps: installing$missing$php_missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ -n "$php_missing" ]; then
  # php-cas depends on the metapackage php, which wants one PHP server binding: Apache's
  # mod_php (libapache2-mod-php, chosen by default), php-fpm (a system service) or php-cgi (a
  # plain program). php-cgi goes in first so that apt takes it and neither of the others.
  apt-get install -y -qq --no-install-recommends php-cli php-cgi php-curl php-xml >/dev/null
  apt-get install -y -qq --no-install-recommends php-cas >/dev/null
fi
