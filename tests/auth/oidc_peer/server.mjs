// An independent OAuth 2.0 / OpenID Connect server for wattplan's auth tests:
// panva's oidc-provider (OpenID Certified), configured like a strict Nomos:
// PKCE (S256) required, refresh tokens rotated on every use (a reused one revokes
// the grant), client_secret_basic, client credentials, 60-minute access tokens.
//
// Usage: node server.mjs   (env PEER_CLIENT_ID, PEER_CLIENT_SECRET, PEER_REDIRECT_URIS)
// Listens on 127.0.0.1 at a free port and prints one JSON line {"issuer": ...}.
import http from 'node:http';
import Provider from 'oidc-provider';

const clientId = process.env.PEER_CLIENT_ID ?? 'wattplan-peer';
const clientSecret = process.env.PEER_CLIENT_SECRET ?? 'peer-secret';
const redirectUris = (process.env.PEER_REDIRECT_URIS ?? 'http://127.0.0.1/callback').split(' ');

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: redirectUris,
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'openid offline_access api:read',
    }],
    pkce: { required: () => true },
    rotateRefreshToken: true,
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    scopes: ['openid', 'offline_access', 'api:read'],
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
    },
    ttl: { AccessToken: 3600, AuthorizationCode: 600, ClientCredentials: 3600, RefreshToken: 86400 },
    cookies: { keys: ['wattplan-test-only-cookie-key'] },
    findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
