// node-oidc-provider 9 as the benchmark's peer: the same two clients as Authserver's bench
// (client_credentials; code + rotating refresh tokens), RS256, JWT access tokens, its
// in-memory store. Started by bench/peer.py: `node peer.mjs PORT WORKDIR_JSON`.
// GET /__bench/refresh-tokens?n=16 mints refresh-token families directly (the interaction
// pages are not what is measured), like Authserver's families made by the code flow.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import Provider from 'oidc-provider';

const [port, configPath] = process.argv.slice(2);
const cfg = JSON.parse(readFileSync(configPath, 'utf8'));
const issuer = `http://127.0.0.1:${port}`;
const resource = 'urn:authserver-bench:api';
const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  .export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [
    { client_id: cfg.cc_client_id, client_secret: cfg.cc_client_secret,
      grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
      scope: 'profile' },
    { client_id: cfg.rp_client_id, client_secret: cfg.rp_client_secret,
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
      redirect_uris: [cfg.redirect_uri] },
  ],
  jwks: { keys: [{ ...key, kid: 'bench-rs256', alg: 'RS256', use: 'sig' }] },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email'] },
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({ scope: 'profile openid email', accessTokenFormat: 'jwt',
                                       accessTokenTTL: 3600, jwt: { sign: { alg: 'RS256' } } }),
    },
  },
  rotateRefreshToken: true,
  issueRefreshToken: () => true,
  findAccount: (ctx, sub) => ({ accountId: sub,
    claims: () => ({ sub, name: 'Bench User', preferred_username: 'benchuser',
                     email: 'benchuser@example.com' }) }),
  ttl: { AccessToken: 3600, ClientCredentials: 3600, IdToken: 3600, RefreshToken: 2592000,
         Grant: 2592000 },
});

async function mintRefreshTokens(n) {
  const client = await provider.Client.find(cfg.rp_client_id);
  const out = [];
  for (let i = 0; i < n; i += 1) {
    const accountId = `bench-${randomUUID()}`;
    const grant = new provider.Grant({ accountId, clientId: client.clientId });
    grant.addOIDCScope('openid offline_access profile email');
    grant.addResourceScope(resource, 'profile openid email');
    const grantId = await grant.save();
    const token = new provider.RefreshToken({
      accountId, client, grantId, gty: 'authorization_code', authTime: Math.floor(Date.now() / 1000),
      scope: 'openid offline_access profile email', resource, rotations: 0,
      claims: {}, sessionUid: randomUUID(), expiresWithSession: false,
    });
    out.push(await token.save());
  }
  return out;
}

const callback = provider.callback();
http.createServer((req, res) => {
  if (req.url.startsWith('/__bench/refresh-tokens')) {
    const n = Number(new URL(req.url, issuer).searchParams.get('n') || 16);
    mintRefreshTokens(n).then((tokens) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(tokens));
    }, (err) => { res.statusCode = 500; res.end(String(err && err.stack)); });
    return;
  }
  callback(req, res);
}).listen(Number(port), '127.0.0.1', () => console.log(`peer listening on ${issuer}`));
