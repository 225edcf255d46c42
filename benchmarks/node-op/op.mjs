// Reference OpenID provider for benchmarks/protocols.py: panva's oidc-provider (a certified
// OP), configured like Hongliu's refresh grant so the two can be compared request for request.
//
//   node op.mjs --port 4000        (or PORT=4000 node op.mjs)
//
// * One confidential client, client_secret_basic, grant types authorization_code and
//   refresh_token, from NODE_OP_CLIENT_ID / NODE_OP_CLIENT_SECRET / NODE_OP_REDIRECT_URI.
// * Refresh tokens on every code exchange of that client (issueRefreshToken), rotated on every
//   use (rotateRefreshToken: true), valid 30 days and not tied to the browser session
//   (expiresWithSession: false) - as Hongliu does. Access tokens are opaque, 1 hour.
// * Storage: a plain in-memory adapter (below). The package's bundled MemoryAdapter is not used:
//   it is an LRU capped at 1000 entries, and on every token write it recomputes the largest
//   expiry over all tokens of the grant, so a long rotation chain makes each refresh slower
//   than the last (quadratic) - a property of that development adapter, not of the OP.
// * Signing: an RS256 key generated at start (Hongliu's default algorithm).
// * Interaction, non-interactive: devInteractions is off and /interaction/<uid> is answered by
//   this file, without any page: the "login" prompt is finished at once for the fixed account
//   ACCOUNT_ID, the "consent" prompt by granting whatever the request asked for. A client
//   following redirects (requests with allow_redirects=False and a cookie jar) goes
//   /auth -> /interaction/<uid> -> /auth/<uid> -> ... -> redirect_uri?code=... with no input.
//
// Prints one line, "listening http://127.0.0.1:<port>", once it accepts requests. No request
// logging. Traffic: it listens on 127.0.0.1 only and calls nobody.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({ options: { port: { type: 'string' } } });
const port = Number(args.port ?? process.env.PORT ?? 4000);
const issuer = `http://127.0.0.1:${port}`;
const ACCOUNT_ID = process.env.NODE_OP_ACCOUNT ?? 'bench00000';
const client = {
  client_id: process.env.NODE_OP_CLIENT_ID ?? 'bench-client',
  client_secret: process.env.NODE_OP_CLIENT_SECRET ?? 'bench-secret-0123456789abcdef',
  redirect_uris: [process.env.NODE_OP_REDIRECT_URI ?? 'http://127.0.0.1:9/callback'],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
};

// --- storage: one Map, entries expire lazily; a grant index to revoke a token family -------

const entries = new Map(); // "Model:id" -> { payload, expiresAt (ms) }
const grants = new Map(); // grantId -> Set of "Model:id"

function live(key) {
  const entry = entries.get(key);
  if (entry === undefined) return undefined;
  if (entry.expiresAt <= Date.now()) {
    entries.delete(key);
    return undefined;
  }
  return entry.payload;
}

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    entries.set(key, { payload, expiresAt });
    if (this.model === 'Session') entries.set(`sessionUid:${payload.uid}`, { payload: id, expiresAt });
    if (payload.userCode) entries.set(`userCode:${payload.userCode}`, { payload: id, expiresAt });
    if (payload.grantId) {
      let members = grants.get(payload.grantId);
      if (members === undefined) grants.set(payload.grantId, (members = new Set()));
      members.add(key);
    }
  }

  async find(id) {
    return live(this.key(id));
  }

  async findByUid(uid) {
    const id = live(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = live(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = live(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    const key = this.key(id);
    const payload = live(key);
    entries.delete(key);
    if (payload?.grantId) grants.get(payload.grantId)?.delete(key);
  }

  async revokeByGrantId(grantId) {
    for (const key of grants.get(grantId) ?? []) entries.delete(key);
    grants.delete(grantId);
  }
}

// --- the provider -------------------------------------------------------------------------

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-rs256', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  adapter: MapAdapter,
  clients: [client],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, preferred_username: sub, name: 'Benchmark user' }),
  }),
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'] },
  scopes: ['openid', 'profile', 'offline_access'],
  issueRefreshToken: async (_ctx, theClient) => theClient.grantTypeAllowed('refresh_token'),
  expiresWithSession: async () => false,
  rotateRefreshToken: true,
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 30 * 86400,
    Grant: 30 * 86400,
    Interaction: 600,
    Session: 12 * 3600,
  },
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
});

// --- the non-interactive interaction: log in ACCOUNT_ID, grant what was asked --------------

async function interact(req, res) {
  const interaction = await provider.interactionDetails(req, res);
  const { prompt, params } = interaction;
  if (prompt.name === 'login') {
    await provider.interactionFinished(req, res, { login: { accountId: ACCOUNT_ID } }, {
      mergeWithLastSubmission: false,
    });
    return;
  }
  if (prompt.name === 'consent') {
    const { details } = prompt;
    const grant = interaction.grantId
      ? await provider.Grant.find(interaction.grantId)
      : new provider.Grant({ accountId: interaction.session.accountId, clientId: params.client_id });
    if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
    if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    const consent = interaction.grantId ? {} : { grantId };
    await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
    return;
  }
  res.statusCode = 400;
  res.end(`unexpected prompt ${prompt.name}`);
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interact(req, res).catch((error) => {
      res.statusCode = 500;
      res.end(String(error));
    });
    return;
  }
  callback(req, res);
});
server.keepAliveTimeout = 30_000;
server.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
