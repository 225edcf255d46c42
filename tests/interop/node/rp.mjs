// A relying party built on the certified openid-client v6, driven by
// tests/interop/test_openid_client.py.
//
// Input: one JSON object, as argv[2] or as the first line of stdin:
//   {"issuer", "client_id", "client_secret", "redirect_uri", "scope",
//    "token_endpoint_auth_method"?: "client_secret_basic" | "client_secret_post"}
// Protocol (one JSON object per stdout line):
//   1. prints {"authorization_url": ...} (discovery done, PKCE S256 + state + nonce);
//   2. reads the callback URL (redirect_uri?code=…&state=…&iss=…) as the next stdin line;
//   3. code exchange with the ID token's signature checked against the JWKS, claim checks,
//      userinfo, refresh; prints {"sub", "userinfo", "refreshed", "id_token_claims", ...}.
// Any failure prints {"error", "message", "code"?, "cause"?} and exits with status 1.
import { createInterface } from 'node:readline'
import * as client from 'openid-client'

const stdin = createInterface({ input: process.stdin, crlfDelay: Infinity })
const lines = stdin[Symbol.asyncIterator]()

function emit(object) {
  process.stdout.write(JSON.stringify(object) + '\n')
}

async function nextLine(what) {
  const { value, done } = await lines.next()
  if (done) throw new Error(`stdin closed before the ${what}`)
  return value.trim()
}

function check(condition, message) {
  if (!condition) throw new Error(`claim check failed: ${message}`)
}

async function main() {
  const input = JSON.parse(process.argv[2] ?? (await nextLine('input JSON')))
  const auth =
    input.token_endpoint_auth_method === 'client_secret_post'
      ? client.ClientSecretPost(input.client_secret)
      : client.ClientSecretBasic(input.client_secret)

  // Discovery over plain http (the IdP listens on 127.0.0.1); every signed token response
  // has its ID token's signature verified against jwks_uri (openid-client skips that by
  // default on TLS-protected token responses).
  const config = await client.discovery(
    new URL(input.issuer),
    input.client_id,
    undefined,
    auth,
    { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] },
  )
  const metadata = config.serverMetadata()

  const codeVerifier = client.randomPKCECodeVerifier()
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier)
  const state = client.randomState()
  const nonce = client.randomNonce()
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: input.redirect_uri,
    scope: input.scope,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state,
    nonce,
  })
  emit({ authorization_url: authorizationUrl.href, state, nonce })

  const callback = new URL(await nextLine('callback URL'))
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  })
  const claims = tokens.claims()
  check(claims !== undefined, 'no ID token in the token response')
  check(typeof claims.sub === 'string' && claims.sub.length > 0, 'sub missing')
  check(claims.iss === metadata.issuer, `iss ${claims.iss} != ${metadata.issuer}`)
  const audience = Array.isArray(claims.aud) ? claims.aud : [claims.aud]
  check(audience.includes(input.client_id), `aud ${JSON.stringify(claims.aud)}`)
  check(claims.nonce === nonce, 'nonce does not match the authorization request')
  const [header] = tokens.id_token.split('.')
  const idTokenHeader = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'))

  // fetchUserInfo checks that the userinfo sub is the ID token's sub.
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub)

  let refreshed = false
  let refreshRotated = null
  let refreshedUserinfo = null
  if (tokens.refresh_token) {
    const renewed = await client.refreshTokenGrant(config, tokens.refresh_token)
    refreshed = typeof renewed.access_token === 'string' && renewed.access_token.length > 0
    refreshRotated =
      renewed.refresh_token !== undefined && renewed.refresh_token !== tokens.refresh_token
    const renewedClaims = renewed.claims()
    if (renewedClaims !== undefined) {
      check(renewedClaims.sub === claims.sub, 'refreshed ID token has another sub')
    }
    refreshedUserinfo = await client.fetchUserInfo(config, renewed.access_token, claims.sub)
  }

  emit({
    sub: claims.sub,
    userinfo,
    refreshed,
    refresh_rotated: refreshRotated,
    refreshed_userinfo: refreshedUserinfo,
    id_token_claims: claims,
    id_token_header: idTokenHeader,
    token_type: tokens.token_type,
    scope: tokens.scope ?? null,
  })
}

function describe(error) {
  const out = { error: error?.name ?? 'Error', message: String(error?.message ?? error) }
  if (error?.code) out.code = error.code
  if (error?.error) out.oauth_error = error.error
  if (error?.error_description) out.oauth_error_description = error.error_description
  if (error?.cause !== undefined) {
    const cause = error.cause
    out.cause =
      cause instanceof Error
        ? { error: cause.name, message: cause.message, code: cause.code }
        : cause instanceof URLSearchParams
          ? Object.fromEntries(cause)
          : cause
  }
  return out
}

try {
  await main()
  process.exitCode = 0
} catch (error) {
  try {
    emit(describe(error))
  } catch {
    emit({ error: 'Error', message: String(error) })
  }
  process.exitCode = 1
} finally {
  stdin.close()
}
