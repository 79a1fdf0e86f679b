// A real downstream relying party (openid-client 6, OpenID Certified) against the broker.
//
// It discovers the broker, builds an authorization URL with PKCE S256, state and nonce,
// drives the broker's HTML sign-in pages with fetch and a small cookie jar, redeems the
// code with authorizationCodeGrant (which checks the RFC 9207 iss parameter and state, and
// validates the ID token: signature against the JWKS, alg, iss, aud, azp, nonce, exp, iat)
// and fetches userinfo (whose sub must match). It prints one JSON object on stdout; the
// Python tests check at_hash themselves.
//
// Usage:
//   node rp_code_flow.mjs --issuer URL --client-id ID --redirect-uri URI --email EMAIL \
//        [--alg ES256|RS256] [--mode signin|adversarial]
// Secrets come from the environment: RP_CLIENT_SECRET and RP_PASSWORD.
//
// Mode "signin" prints {id_token_header, id_token_claims, userinfo, token_response}.
// Mode "adversarial" prints {scenarios: {name: {rejected, error, ...}}}: each scenario
// tampers with one thing an attacker controls and reports whether openid-client (or the
// broker, through openid-client) refused it. Exit status is non-zero, with a message on
// stderr, whenever anything unexpected happens (a page the driver does not know, a
// rejected honest flow, a network error).

import { parseArgs } from 'node:util';
import * as client from 'openid-client';
import { createBrowser, oneShotFetch } from './browser_standin.mjs';

const { values: args } = parseArgs({
  options: {
    issuer: { type: 'string' },
    'client-id': { type: 'string' },
    'redirect-uri': { type: 'string' },
    email: { type: 'string' },
    alg: { type: 'string' },
    mode: { type: 'string', default: 'signin' },
    scope: { type: 'string', default: 'openid profile email organisation' },
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
const clientSecret = required('RP_CLIENT_SECRET', process.env.RP_CLIENT_SECRET);
const password = required('RP_PASSWORD', process.env.RP_PASSWORD);

const { reachCallback } = createBrowser({ email, password, redirectUri });

// --- the relying party ------------------------------------------------------------------

async function configure(alg) {
  const metadata = { client_secret: clientSecret };
  if (alg) metadata.id_token_signed_response_alg = alg;
  return client.discovery(issuer, clientId, metadata, client.ClientSecretBasic(clientSecret), {
    execute: [client.allowInsecureRequests],
    [client.customFetch]: oneShotFetch,
  });
}

async function authorization(config) {
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: args.scope,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  return { url, codeVerifier, state, nonce };
}

function decodeSegment(jwt, index) {
  return JSON.parse(Buffer.from(jwt.split('.')[index], 'base64url').toString('utf8'));
}

function describeError(err) {
  return {
    name: err?.name,
    code: err?.code,
    error: err?.error, // an OAuth error code from the broker (ResponseBodyError)
    status: err?.status,
    message: err?.message,
    cause: err?.cause?.message ?? undefined,
  };
}

async function attempt(fn) {
  try {
    const value = await fn();
    return { rejected: false, value };
  } catch (err) {
    return { rejected: true, error: describeError(err) };
  }
}

async function signIn() {
  const config = await configure(args.alg);
  const request = await authorization(config);
  const pages = [];
  const callback = await reachCallback(request.url, { pages });
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: request.codeVerifier,
    expectedState: request.state,
    expectedNonce: request.nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  return {
    pages,
    callback_parameters: [...callback.searchParams.keys()].sort(),
    id_token_header: decodeSegment(tokens.id_token, 0),
    id_token_claims: claims,
    expected_nonce: request.nonce,
    userinfo,
    token_response: {
      token_type: tokens.token_type,
      scope: tokens.scope,
      expires_in: tokens.expires_in,
      access_token: tokens.access_token,
    },
  };
}

// Each scenario changes one thing and reports whether it was refused. Where it makes
// sense, a control step in the same scenario shows the honest version still works, so a
// refusal is about the tampering and not a broken flow.
async function adversarial() {
  const config = await configure(args.alg);
  const scenarios = {};

  // 1. The state in the callback is not the one this RP sent (CSRF / mix-up).
  {
    const request = await authorization(config);
    const callback = await reachCallback(request.url);
    const tampered = new URL(callback);
    tampered.searchParams.set('state', `${request.state}x`);
    const result = await attempt(() => client.authorizationCodeGrant(config, tampered, {
      pkceCodeVerifier: request.codeVerifier, expectedState: request.state, expectedNonce: request.nonce,
    }));
    const control = await attempt(async () => (await client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: request.codeVerifier, expectedState: request.state, expectedNonce: request.nonce,
    })).claims().sub);
    scenarios.tampered_state = { ...result, control_rejected: control.rejected, control_error: control.error };
  }

  // 2. The RP expects a different nonce from the one in the ID token (replayed ID token).
  {
    const request = await authorization(config);
    const callback = await reachCallback(request.url);
    scenarios.wrong_nonce = await attempt(() => client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: request.codeVerifier, expectedState: request.state, expectedNonce: client.randomNonce(),
    }));
  }

  // 3. The callback names another issuer (RFC 9207 mix-up defence).
  {
    const request = await authorization(config);
    const callback = await reachCallback(request.url);
    const tampered = new URL(callback);
    tampered.searchParams.set('iss', 'https://attacker.example');
    scenarios.wrong_iss_parameter = await attempt(() => client.authorizationCodeGrant(config, tampered, {
      pkceCodeVerifier: request.codeVerifier, expectedState: request.state, expectedNonce: request.nonce,
    }));
  }

  // 4. A stolen code redeemed with another PKCE verifier: the broker must refuse.
  {
    const request = await authorization(config);
    const callback = await reachCallback(request.url);
    const result = await attempt(() => client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: client.randomPKCECodeVerifier(), expectedState: request.state, expectedNonce: request.nonce,
    }));
    scenarios.wrong_pkce_verifier = result;
  }

  // 5. The same code redeemed twice: the second time must be refused.
  {
    const request = await authorization(config);
    const callback = await reachCallback(request.url);
    const checks = { pkceCodeVerifier: request.codeVerifier, expectedState: request.state, expectedNonce: request.nonce };
    const first = await attempt(async () => (await client.authorizationCodeGrant(config, callback, checks)).access_token);
    const second = await attempt(() => client.authorizationCodeGrant(config, callback, checks));
    // RFC 6749 §4.1.2: tokens issued from a replayed code should be revoked.
    const userinfoAfterReplay = first.rejected ? undefined
      : await attempt(() => client.fetchUserInfo(config, first.value, client.skipSubjectCheck));
    scenarios.code_replay = {
      ...second,
      first_rejected: first.rejected,
      first_error: first.error,
      userinfo_after_replay_rejected: userinfoAfterReplay?.rejected,
      userinfo_after_replay_error: userinfoAfterReplay?.error,
    };
  }

  // 6. The RP insists on a signing algorithm the broker does not use for it.
  {
    const other = args.alg === 'RS256' ? 'ES256' : 'RS256';
    const strict = await configure(other);
    const request = await authorization(strict);
    const callback = await reachCallback(request.url);
    scenarios.unexpected_alg = { expected_alg: other, ...await attempt(() => client.authorizationCodeGrant(strict, callback, {
      pkceCodeVerifier: request.codeVerifier, expectedState: request.state, expectedNonce: request.nonce,
    })) };
  }

  // 7. Wrong client secret: the token endpoint must refuse to authenticate the client.
  {
    const request = await authorization(config);
    const callback = await reachCallback(request.url);
    const impostor = await client.discovery(issuer, clientId, {}, client.ClientSecretBasic(`${clientSecret}-wrong`), {
      execute: [client.allowInsecureRequests],
      [client.customFetch]: oneShotFetch,
    });
    scenarios.wrong_client_secret = await attempt(() => client.authorizationCodeGrant(impostor, callback, {
      pkceCodeVerifier: request.codeVerifier, expectedState: request.state, expectedNonce: request.nonce,
    }));
  }

  for (const scenario of Object.values(scenarios)) delete scenario.value;
  return { scenarios };
}

try {
  const result = args.mode === 'adversarial' ? await adversarial() : await signIn();
  process.stdout.write(`${JSON.stringify(result)}\n`);
} catch (err) {
  const detail = describeError(err);
  process.stderr.write(`rp_code_flow failed: ${JSON.stringify(detail)}\n`);
  if (err?.stack) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
}
