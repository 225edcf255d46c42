<?php
/*
 * A campus PHP application signing in with phpCAS (Debian's php-cas), run by PHP's built-in
 * server for tests/interop/test_phpcas.py:
 *
 *   php -S 127.0.0.1:<port> router.php
 *
 * with HONGLIU_IDP_URL (the IdP, http://127.0.0.1:<port>), PHPCAS_PROTOCOL ("2.0" or "3.0"),
 * PHPCAS_BASE (this application's own base URL) and PHPCAS_LOG (phpCAS's trace) in the
 * environment. Every page under /phpcas/ is protected and prints, as JSON, what the application
 * learns from phpCAS (/phpcas/gateway only asks, with gateway=true); /phpcas/logout signs out
 * through the IdP; /phpcas/signed-out is open.
 */

declare(strict_types=1);

require_once 'CAS.php';

/** phpCAS's trace, one line each, in PHPCAS_LOG: what the test prints when it fails. */
final class TraceFile
{
    public function __construct(private string $path)
    {
    }

    public function info(string $message): void
    {
        file_put_contents($this->path, $message . "\n", FILE_APPEND | LOCK_EX);
    }
}

$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if ($path === '/phpcas/signed-out') {
    header('Content-Type: text/plain; charset=utf-8');
    echo "signed out\n";
    return true;
}
if (!str_starts_with((string) $path, '/phpcas/')) {
    http_response_code(404);
    return true;
}

$idp = getenv('HONGLIU_IDP_URL');
$base = getenv('PHPCAS_BASE');
$version = getenv('PHPCAS_PROTOCOL') === '3.0' ? CAS_VERSION_3_0 : CAS_VERSION_2_0;
$idpHost = parse_url($idp, PHP_URL_HOST);

phpCAS::setLogger(new TraceFile(getenv('PHPCAS_LOG')));
// phpCAS builds https:// URLs from the host, port and path given here; the live IdP of the
// tests speaks plain http on loopback, so every URL phpCAS uses is set explicitly below. A
// login URL set so is used as it stands: it must carry the service itself.
phpCAS::client($version, $idpHost, (int) parse_url($idp, PHP_URL_PORT), '/cas', $base);
phpCAS::setServerLoginURL("$idp/cas/login?service=" . urlencode(phpCAS::getServiceURL()));
$validate = $version === CAS_VERSION_3_0 ? 'p3/serviceValidate' : 'serviceValidate';
phpCAS::setServerServiceValidateURL("$idp/cas/$validate");
$proxyValidate = $version === CAS_VERSION_3_0 ? 'p3/proxyValidate' : 'proxyValidate';
phpCAS::setServerProxyValidateURL("$idp/cas/$proxyValidate");
phpCAS::setServerLogoutURL("$idp/cas/logout");
// Test only: phpCAS refuses to validate until it is given the IdP's CA certificate or told
// not to check one. The validation here goes over plain http to loopback, where there is no
// certificate to check; a deployment points phpCAS::setCasServerCACert() at its CA instead.
phpCAS::setNoCasServerValidation();

// Single logout: the IdP posts a SAML logoutRequest to the service URL; phpCAS accepts it
// only from the IdP's host and ends the session it renamed after that service ticket.
phpCAS::handleLogoutRequests(true, [$idpHost]);

if ($path === '/phpcas/logout') {
    phpCAS::logoutWithRedirectService("$base/phpcas/signed-out");
}

if ($path === '/phpcas/gateway') {
    // A page open to visitors that still knows who is signed in: gateway=true asks the IdP,
    // which answers with a ticket from the SSO session or sends the browser back without one.
    $signedIn = phpCAS::checkAuthentication();
} else {
    phpCAS::forceAuthentication();
    $signedIn = true;
}

header('Content-Type: application/json; charset=utf-8');
echo json_encode(
    [
        'user' => $signedIn ? phpCAS::getUser() : null,
        'attributes' => (object) ($signedIn ? phpCAS::getAttributes() : []),
        'protocol' => $version,
        'session_name' => session_name(),
        'session_id' => session_id(),
    ],
    JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR
), "\n";
return true;
