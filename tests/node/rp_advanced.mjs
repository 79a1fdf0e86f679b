// openid-client 6 (OpenID Certified RP) against the broker beyond the basic code flow:
// refresh-token rotation, private_key_jwt client authentication, and back-channel logout
// received by this script's own small HTTP server.
//
// Usage:
//   node rp_advanced.mjs --issuer URL --client-id ID --redirect-uri URI --email EMAIL --mode MODE
//        [--post-logout-redirect-uri URI] [--backchannel-port PORT]
// Modes:
//   refresh           sign in (client_secret_basic), refresh twice, then replay the first refresh token
//   private_key_jwt   the same with private_key_jwt (key from RP_PRIVATE_KEY_PEM, kid RP_KEY_ID)
//   backchannel       sign in, listen on --backchannel-port, RP-initiated logout with id_token_hint,
//                     then validate the logout token POSTed to /backchannel (jose, against the JWKS)
// Secrets come from the environment: RP_CLIENT_SECRET (secret modes), RP_PASSWORD.
// Prints one JSON object; exits non-zero with a message on stderr if anything unexpected happens.

import http from 'node:http';
import { parseArgs } from 'node:util';
import * as jose from 'jose';
import * as client from 'openid-client';
import { createBrowser, oneShotFetch } from './browser_standin.mjs';

const { values: args } = parseArgs({
  options: {
    issuer: { type: 'string' },
    'client-id': { type: 'string' },
    'redirect-uri': { type: 'string' },
    'post-logout-redirect-uri': { type: 'string' },
    'backchannel-port': { type: 'string' },
    email: { type: 'string' },
    mode: { type: 'string', default: 'refresh' },
    scope: { type: 'string', default: 'openid profile email' },
  },
});

function required(name, value) {
  if (!value) throw new Error(`missing ${name}`);
  return value;
}

const issuer = new URL(required('--issuer', args.issuer));
const clientId = required('--client-id', args['client-id']);
const redirectUri = required('--redirect-uri', args['redirect-uri']);
const email = required('--email', args.email);
const password = required('RP_PASSWORD', process.env.RP_PASSWORD);

const { browse, reachCallback } = createBrowser({ email, password, redirectUri });

// --- the relying party ---------------------------------------------------------------------

async function configure() {
  let auth;
  const metadata = {};
  if (args.mode === 'private_key_jwt') {
    const key = await jose.importPKCS8(required('RP_PRIVATE_KEY_PEM', process.env.RP_PRIVATE_KEY_PEM), 'ES256');
    auth = client.PrivateKeyJwt({ key, kid: required('RP_KEY_ID', process.env.RP_KEY_ID) });
    metadata.token_endpoint_auth_method = 'private_key_jwt';
  } else {
    auth = client.ClientSecretBasic(required('RP_CLIENT_SECRET', process.env.RP_CLIENT_SECRET));
  }
  return client.discovery(issuer, clientId, metadata, auth, {
    execute: [client.allowInsecureRequests],
    [client.customFetch]: oneShotFetch,
  });
}

async function signIn(config) {
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope: args.scope, state, nonce,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier), code_challenge_method: 'S256',
  });
  const callback = await reachCallback(url.href);
  return client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  });
}

function describeError(err) {
  return { name: err?.name, code: err?.code, error: err?.error, status: err?.status, message: err?.message };
}

async function attempt(fn) {
  try {
    return { rejected: false, value: await fn() };
  } catch (err) {
    return { rejected: true, error: describeError(err) };
  }
}

async function refreshFlow() {
  const config = await configure();
  const tokens = await signIn(config);
  const claims = tokens.claims();
  const first = await client.refreshTokenGrant(config, tokens.refresh_token);
  const second = await client.refreshTokenGrant(config, first.refresh_token);
  const userinfo = await client.fetchUserInfo(config, second.access_token, claims.sub);
  const replay = await attempt(() => client.refreshTokenGrant(config, tokens.refresh_token));
  const afterReplay = await attempt(() => client.refreshTokenGrant(config, second.refresh_token));
  return {
    sub: claims.sub,
    sid: claims.sid,
    refresh_tokens_distinct: new Set([tokens.refresh_token, first.refresh_token, second.refresh_token]).size === 3,
    refreshed_id_token_claims: second.claims(),
    userinfo,
    replay_rejected: replay.rejected,
    replay_error: replay.error,
    family_revoked: afterReplay.rejected,
    family_error: afterReplay.error,
  };
}

async function backchannelFlow() {
  const port = Number(required('--backchannel-port', args['backchannel-port']));
  const config = await configure();
  const metadata = config.serverMetadata();
  const jwks = jose.createRemoteJWKSet(new URL(metadata.jwks_uri));
  let deliver;
  const received = new Promise((resolve) => { deliver = resolve; });
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', async () => {
      const token = new URLSearchParams(body).get('logout_token');
      try {
        // OIDC Back-Channel Logout 1.0 §2.6: validate as an ID token, plus typ, events, no nonce.
        const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, {
          issuer: metadata.issuer, audience: clientId, typ: 'logout+jwt', algorithms: ['ES256', 'RS256'], maxTokenAge: '2m',
        });
        const valid = payload.events?.['http://schemas.openid.net/event/backchannel-logout'] !== undefined
          && payload.nonce === undefined && typeof payload.jti === 'string' && (payload.sid || payload.sub);
        response.writeHead(valid ? 200 : 400, { 'cache-control': 'no-store' }).end();
        deliver({ valid, claims: payload, header: protectedHeader, content_type: request.headers['content-type'], path: request.url });
      } catch (err) {
        response.writeHead(400).end();
        deliver({ valid: false, error: describeError(err) });
      }
    });
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  try {
    const tokens = await signIn(config);
    const claims = tokens.claims();
    const state = client.randomState();
    const endSession = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token,
      post_logout_redirect_uri: required('--post-logout-redirect-uri', args['post-logout-redirect-uri']),
      state,
    });
    const logout = await browse(endSession.href);
    const location = logout.headers.get('location');
    const timeout = new Promise((resolve) => setTimeout(() => resolve({ valid: false, error: 'no logout token within 15 s' }), 15000));
    const logoutToken = await Promise.race([received, timeout]);
    const userinfoAfter = await attempt(() => client.fetchUserInfo(config, tokens.access_token, claims.sub));
    return {
      sub: claims.sub,
      sid: claims.sid,
      end_session_status: logout.status,
      post_logout_location: location,
      expected_state: state,
      logout_token: logoutToken,
      userinfo_after_logout_rejected: userinfoAfter.rejected,
    };
  } finally {
    server.close();
  }
}

try {
  const result = args.mode === 'backchannel' ? await backchannelFlow() : await refreshFlow();
  process.stdout.write(`${JSON.stringify(result)}\n`);
} catch (err) {
  process.stderr.write(`rp_advanced failed: ${JSON.stringify(describeError(err))}\n${err?.stack ?? ''}\n`);
  process.exit(1);
}
