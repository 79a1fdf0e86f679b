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

// --- a browser stand-in: one cookie jar, manual redirects, the broker's two forms -------

class CookieJar {
  #cookies = new Map();

  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attributes.some((a) => {
        const [k, v = ''] = a.trim().split('=');
        if (k.toLowerCase() === 'max-age') return Number(v) <= 0;
        if (k.toLowerCase() === 'expires') return Date.parse(v) <= Date.now();
        return false;
      });
      if (expired || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }

  header() {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

const jar = new CookieJar();

// Every request on a new connection. Node's fetch does not retry a request that meets a
// kept-alive connection the server has just closed (browsers do, transparently); under
// parallel test load that race made runs fail with "other side closed".
function oneShotFetch(url, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('connection', 'close');
  return fetch(url, { ...init, headers });
}

async function browse(url, init = {}) {
  const headers = new Headers(init.headers);
  const cookie = jar.header();
  if (cookie) headers.set('cookie', cookie);
  const response = await oneShotFetch(url, { ...init, headers, redirect: 'manual' });
  jar.store(response);
  return response;
}

function decodeEntities(text) {
  return text
    .replace(/&#(\d+);/g, (_, n) => String.fromCodePoint(Number(n)))
    .replace(/&#x([0-9a-f]+);/gi, (_, n) => String.fromCodePoint(parseInt(n, 16)))
    .replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function attribute(tag, name) {
  const match = tag.match(new RegExp(`\\s${name}="([^"]*)"`, 'i'));
  return match ? decodeEntities(match[1]) : undefined;
}

// The POST form holding an input called `field`: its action and its hidden inputs.
function formWith(html, field) {
  for (const [, openTag, body] of html.matchAll(/(<form\b[^>]*>)([\s\S]*?)<\/form>/gi)) {
    const inputs = [...body.matchAll(/<input\b[^>]*>/gi)].map(([tag]) => tag);
    if (!inputs.some((tag) => attribute(tag, 'name') === field)) continue;
    const hidden = {};
    for (const tag of inputs) {
      if (attribute(tag, 'type') === 'hidden') hidden[attribute(tag, 'name')] = attribute(tag, 'value') ?? '';
    }
    if (!hidden.csrf_token) throw new Error(`the form with "${field}" has no csrf_token hidden input`);
    return { action: attribute(openTag, 'action'), hidden };
  }
  return undefined;
}

function describePage(html) {
  const text = (re) => (html.match(re)?.[1] ?? '').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
  return `title "${text(/<title>([\s\S]*?)<\/title>/i)}", heading "${text(/<h1[^>]*>([\s\S]*?)<\/h1>/i)}", ` +
    `errors "${text(/class="[^"]*govuk-error-summary__list[^"]*"[^>]*>([\s\S]*?)<\/ul>/i)}"`;
}

// Follow `start` through redirects and the sign-in forms until the broker redirects to
// the relying party; return that callback URL. Forms are filled only when shown, so a
// second authorization in the same jar rides on the SSO session.
async function reachCallback(start, { pages = [] } = {}) {
  let url = start;
  let response = await browse(url);
  for (let step = 0; step < 15; step += 1) {
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      url = new URL(location, url).href;
      if (url.startsWith(redirectUri)) return new URL(url);
      pages.push(`GET ${new URL(url).pathname}`);
      response = await browse(url);
      continue;
    }
    const html = await response.text();
    const emailForm = formWith(html, 'email');
    const passwordForm = formWith(html, 'password');
    const form = emailForm ?? passwordForm;
    if (!form || response.status !== 200) {
      throw new Error(`unexpected page at ${url} (HTTP ${response.status}): ${describePage(html)}`);
    }
    const body = new URLSearchParams(form.hidden);
    if (emailForm) body.set('email', email);
    else body.set('password', password);
    const target = new URL(form.action ?? url, url).href;
    pages.push(`POST ${new URL(target).pathname}`);
    response = await browse(target, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    url = target;
  }
  throw new Error(`no redirect to ${redirectUri} after 15 steps (last ${url})`);
}

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
