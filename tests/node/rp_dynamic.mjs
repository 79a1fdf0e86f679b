// openid-client 6 (OpenID Certified RP) registers itself with the broker by dynamic client
// registration (RFC 7591, with an initial access token), then signs a person in with the code
// flow and PKCE, refreshes, reads and deletes its registration (RFC 7592).
//
// Usage:
//   node rp_dynamic.mjs --issuer URL --redirect-uri URI --email EMAIL [--auth client_secret_post|private_key_jwt]
//        [--alg ES256|RS256]
// Secrets come from the environment: RP_INITIAL_ACCESS_TOKEN, RP_PASSWORD, and for private_key_jwt
// RP_PRIVATE_KEY_PEM, RP_PUBLIC_JWK (JSON) and RP_KEY_ID.
// Prints one JSON object; exits non-zero with a message on stderr if anything unexpected happens.

import { parseArgs } from 'node:util';
import * as jose from 'jose';
import * as client from 'openid-client';
import { createBrowser, oneShotFetch } from './browser_standin.mjs';

const { values: args } = parseArgs({
  options: {
    issuer: { type: 'string' },
    'redirect-uri': { type: 'string' },
    email: { type: 'string' },
    auth: { type: 'string', default: 'client_secret_post' },
    alg: { type: 'string', default: 'ES256' },
  },
});

function required(name, value) {
  if (!value) throw new Error(`missing ${name}`);
  return value;
}

const issuer = new URL(required('--issuer', args.issuer));
const redirectUri = required('--redirect-uri', args['redirect-uri']);
const email = required('--email', args.email);
const password = required('RP_PASSWORD', process.env.RP_PASSWORD);
const initialAccessToken = required('RP_INITIAL_ACCESS_TOKEN', process.env.RP_INITIAL_ACCESS_TOKEN);
const options = { execute: [client.allowInsecureRequests], [client.customFetch]: oneShotFetch };

async function register() {
  const metadata = {
    client_name: 'openid-client registered dynamically',
    redirect_uris: [redirectUri],
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_method: args.auth,
    id_token_signed_response_alg: args.alg,
  };
  let auth;
  if (args.auth === 'private_key_jwt') {
    const key = await jose.importPKCS8(required('RP_PRIVATE_KEY_PEM', process.env.RP_PRIVATE_KEY_PEM), 'ES256');
    metadata.jwks = { keys: [JSON.parse(required('RP_PUBLIC_JWK', process.env.RP_PUBLIC_JWK))] };
    auth = client.PrivateKeyJwt({ key, kid: required('RP_KEY_ID', process.env.RP_KEY_ID) });
  }
  // Without an explicit method openid-client authenticates with client_secret_post and the issued secret.
  return client.dynamicClientRegistration(issuer, metadata, auth, { ...options, initialAccessToken });
}

async function signIn(config) {
  const { reachCallback } = createBrowser({ email, password, redirectUri });
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope: 'openid profile email', state, nonce,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier), code_challenge_method: 'S256',
  });
  const callback = await reachCallback(url.href);
  return client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  });
}

async function attempt(fn) {
  try {
    return { rejected: false, value: await fn() };
  } catch (err) {
    return { rejected: true, error: { name: err?.name, code: err?.code, error: err?.error, status: err?.status } };
  }
}

async function main() {
  const config = await register();
  const registered = config.clientMetadata();
  const tokens = await signIn(config);
  const claims = tokens.claims();
  const header = jose.decodeProtectedHeader(tokens.id_token);
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);

  const bearer = { authorization: `Bearer ${registered.registration_access_token}` };
  const read = await oneShotFetch(registered.registration_client_uri, { headers: bearer });
  const readBody = await read.json();
  const removed = await oneShotFetch(registered.registration_client_uri, { method: 'DELETE', headers: bearer });
  const afterDelete = await attempt(() => client.refreshTokenGrant(config, refreshed.refresh_token));
  const readAfter = await oneShotFetch(registered.registration_client_uri, { headers: bearer });

  process.stdout.write(JSON.stringify({
    client_id: registered.client_id,
    token_endpoint_auth_method: registered.token_endpoint_auth_method,
    has_secret: typeof registered.client_secret === 'string' && registered.client_secret.length > 0,
    registration_client_uri: registered.registration_client_uri,
    id_token_header: header,
    claims,
    userinfo,
    refreshed_sub: refreshed.claims()?.sub,
    read_status: read.status,
    read_client_id: readBody.client_id,
    read_redirect_uris: readBody.redirect_uris,
    delete_status: removed.status,
    refresh_after_delete: afterDelete,
    read_after_delete_status: readAfter.status,
  }));
}

main().catch((err) => {
  process.stderr.write(`${err?.stack || err}\n${err?.cause ? JSON.stringify(err.cause) : ''}\n`);
  process.exit(1);
});
