// An upstream OpenID Provider (node oidc-provider 9, OpenID Certified) standing in for NHS CIS2.
//
// It answers like CIS2 (see ../../../shared/SCENARIOS.md): the nine CIS2 scopes, acr values
// AAL3_ANY / AAL2_OR_AAL3_ANY / AAL2_ANY / AAL1_USERPASS, amr (N3_SMARTCARD ...), the ID
// token carrying selected_roleid, id_assurance_level and authentication_assurance_level,
// userinfo carrying nhsid_nrbac_roles, nhsid_user_orgs, registrations and the other spelling
// idassurancelevel. Clients authenticate with private_key_jwt (keys fetched from the broker's
// /jwks.json) or a client secret; PKCE is required.
//
// No browser is needed: /interaction/:uid signs in the persona named by login_hint's local
// part (consultant@nhs.test → consultant) or, on re-authentication, the session's account,
// with the first of its authenticators that meets the acr_values asked for (else its
// default, so a test can see the broker refuse too weak an answer), and grants consent.
//
// Test-only control (loopback only): POST /test/tamper {id_token|userinfo|token: ...} changes
// the NEXT answer of that endpoint once, so adversarial tests run through the real peer:
//   id_token: {set: {claim: value}, unset: [claim], sign: "original"|"rogue"|"none"|"hs256-public"|"rogue-jwk-header"}
//   userinfo: {set: {...}, unset: [...]}
//   token:    {status: 500} or {status: 400, body: {error: "invalid_grant"}}
// POST /test/logout-token {client_id, sub, sid, set: {...}, unset: [...], sign: ..., typ} returns
// {logout_token} signed like the provider's own back-channel logout tokens (its key, typ
// logout+jwt), changed as asked: for attack tests on the broker's back-channel endpoint.
//
// Logout: RP-initiated logout (/session/end) and back-channel logout are on; a client with
// backchannel_logout_uri and backchannel_logout_session_required gets sid in its ID tokens
// and a logout token when the person signs out here.
//
// Configuration is one JSON document in OIDC_UPSTREAM_CONFIG:
//   {port, host, clients: [oidc-provider client metadata ...]}
// It prints {"issuer": ...} on one line when it listens.

import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import * as jose from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_UPSTREAM_CONFIG ?? '{}');
const host = config.host ?? '127.0.0.1';
const port = Number(config.port);
if (!port) throw new Error('OIDC_UPSTREAM_CONFIG needs a port');
const issuer = `http://${host}:${port}`;

// --- keys: the provider's own, and a rogue one for forgeries -----------------------------

function rsaJwk(kid) {
  // Generated as PEM and imported again: Node 20 can deadlock when a garbage collection during
  // a JWK export of a key it generated finalises the key-generation job, as both lock that key
  // (seen in CI: the peer hung before listening). Imported keys share nothing with the job.
  const pem = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const privateKey = createPrivateKey(pem.privateKey);
  const publicKey = createPublicKey(pem.publicKey);
  return {
    private: { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' },
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }),
    publicJwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' },
    key: privateKey,
  };
}
const signing = rsaJwk('cis2-stand-in-1');
const rogue = rsaJwk('rogue-1');

// --- personas ---------------------------------------------------------------------------

const AAL3_SMARTCARD = { acr: 'AAL3_ANY', amr: ['N3_SMARTCARD'], aal: '3' };
const AAL3_FIDO2 = { acr: 'AAL3_ANY', amr: ['FIDO2'], aal: '3' };
const AAL2_OTP = { acr: 'AAL2_ANY', amr: ['PASSWORD', 'OTP'], aal: '2' };
const AAL1_PASSWORD = { acr: 'AAL1_USERPASS', amr: ['PASSWORD'], aal: '1' };
const LEVEL = { AAL1_USERPASS: 1, AAL2_ANY: 2, AAL3_ANY: 3 };

function role(id, org, code, name, activities = []) {
  return {
    person_orgid: `${id}9`, person_roleid: id, org_code: org, role_name: name, role_code: code,
    activity_codes: activities, workgroups_codes: [], aow_codes: [],
  };
}

const ORGS = {
  RAL: { org_code: 'RAL', org_name: 'Royal Free London NHS Foundation Trust' },
  RRV: { org_code: 'RRV', org_name: 'University College London Hospitals NHS Foundation Trust' },
};

const ACCOUNTS = {
  consultant: {
    methods: [AAL3_SMARTCARD],
    idToken: { name: 'Dr Ada Okafor', selected_roleid: '555000002001', id_assurance_level: '3' },
    userinfo: {
      name: 'Dr Ada Okafor', given_name: 'Ada', family_name: 'Okafor', email: 'ada.okafor@nhs.test',
      nhsid_useruid: '555000000001', uid: '555000000001', idassurancelevel: '3', gmc_id: '7012345',
      nhsid_user_orgs: [ORGS.RAL, ORGS.RRV],
      nhsid_nrbac_roles: [
        role('555000002001', 'RAL', 'S0010:G0020:R8000', '"Clinical":"Clinical Provision":"Clinical Practitioner Access Role"', ['B0172', 'B0264']),
        role('555000002002', 'RRV', 'S0080:G0450:R5080', '"Admin & Clerical":"Admin":"Referring Clinician Admin"'),
      ],
    },
  },
  nurse: {
    methods: [AAL2_OTP, AAL3_FIDO2],
    idToken: { name: 'Sam Nurse', selected_roleid: '555000002101', id_assurance_level: '3' },
    userinfo: {
      name: 'Sam Nurse', given_name: 'Sam', family_name: 'Nurse', email: 'sam.nurse@nhs.test',
      nhsid_useruid: '555000000002', uid: '555000000002', idassurancelevel: '3', nmc_id: '12A3456E',
      nhsid_user_orgs: [ORGS.RRV],
      nhsid_nrbac_roles: [role('555000002101', 'RRV', 'S0010:G0020:R8001', '"Clinical":"Clinical Provision":"Nurse Access Role"')],
    },
  },
  'privacy-officer': {
    methods: [AAL3_SMARTCARD],
    idToken: { name: 'Priya Officer', selected_roleid: '555000002201', id_assurance_level: '3' },
    userinfo: {
      name: 'Priya Officer', email: 'priya.officer@nhs.test', nhsid_useruid: '555000000003', uid: '555000000003',
      idassurancelevel: '3', nhsid_user_orgs: [ORGS.RAL],
      nhsid_nrbac_roles: [role('555000002201', 'RAL', 'S8000:G8001:R0001', '"Admin & Clerical":"Privacy Officer"', ['B0015'])],
    },
  },
  locum: {
    methods: [AAL1_PASSWORD, AAL2_OTP],
    idToken: { name: 'Lee Locum', selected_roleid: '555000002401', id_assurance_level: '3' },
    userinfo: {
      name: 'Lee Locum', email: 'lee.locum@nhs.test', nhsid_useruid: '555000000006', uid: '555000000006',
      idassurancelevel: '3', gmc_id: '7098765', nhsid_user_orgs: [ORGS.RAL],
      nhsid_nrbac_roles: [role('555000002401', 'RAL', 'S0010:G0020:R8000', '"Clinical":"Clinical Provision":"Clinical Practitioner Access Role"')],
    },
  },
  'no-role': {
    methods: [AAL1_PASSWORD],
    idToken: { name: 'Nell Norole', id_assurance_level: '2' },
    userinfo: {
      name: 'Nell Norole', email: 'nell.norole@nhs.test', nhsid_useruid: '555000000004', uid: '555000000004',
      idassurancelevel: '2', nhsid_user_orgs: [], nhsid_nrbac_roles: [],
    },
  },
  incomplete: {
    methods: [AAL2_OTP],
    idToken: { selected_roleid: '555000002301' },
    userinfo: {
      email: 'ian.complete@nhs.test', nhsid_useruid: '555000000005',
      nhsid_nrbac_roles: [role('555000002301', 'RAL', 'S0010:G0020:R8001', 'Nurse')],
    },
  },
};
const SUBS = Object.fromEntries(Object.entries(ACCOUNTS).map(([id, a]) => [id, a.userinfo.nhsid_useruid]));
const BY_SUB = Object.fromEntries(Object.entries(SUBS).map(([id, sub]) => [sub, id]));
const lastMethod = new Map();

function chooseMethod(account, acrValues) {
  const wanted = (acrValues ?? '').split(' ').filter(Boolean);
  if (!wanted.length) return { ...account.methods[0] };
  for (const method of account.methods) {
    if (wanted.includes(method.acr)) return { ...method };
    if (wanted.includes('AAL2_OR_AAL3_ANY') && LEVEL[method.acr] >= 2) return { ...method, acr: 'AAL2_OR_AAL3_ANY' };
  }
  return { ...account.methods[0] };
}

// --- the provider -----------------------------------------------------------------------

const configuration = {
  clients: config.clients ?? [],
  jwks: { keys: [signing.private] },
  cookies: { keys: ['cis2-stand-in-cookie-key-0123456789'] },
  pkce: { required: () => true },
  acrValues: ['AAL3_ANY', 'AAL2_OR_AAL3_ANY', 'AAL2_ANY', 'AAL1_USERPASS'],
  conformIdTokenClaims: false,
  scopes: ['openid', 'profile', 'email', 'nhsperson', 'associatedorgs', 'nationalrbacaccess',
    'professionalmemberships', 'organisationalmemberships', 'selectedrole'],
  claims: {
    openid: ['sub', 'acr', 'amr'],  // CIS2 always puts acr and amr in the ID token
    profile: ['name', 'given_name', 'family_name', 'uid', 'nhsid_useruid'],
    email: ['email'],
    nhsperson: ['id_assurance_level', 'idassurancelevel', 'authentication_assurance_level'],
    associatedorgs: ['nhsid_user_orgs'],
    nationalrbacaccess: ['nhsid_nrbac_roles'],
    professionalmemberships: ['gmc_id', 'nmc_id'],
    organisationalmemberships: [],
    selectedrole: ['selected_roleid'],
  },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  // oidc-provider refuses to fetch from special-use addresses (SSRF protection); this peer
  // fetches the broker's JWKS on loopback, and only there.
  fetch(url, options) {
    if (!new URL(url).hostname.startsWith('127.')) throw new Error('this test peer fetches only from loopback');
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const id = BY_SUB[sub];
    if (!id) return undefined;
    const account = ACCOUNTS[id];
    return {
      accountId: sub,
      async claims(use) {
        const method = lastMethod.get(id) ?? account.methods[0];
        if (use === 'id_token') {
          return { sub, ...account.idToken, authentication_assurance_level: method.aal };
        }
        return { sub, ...account.userinfo };
      },
    };
  },
};

const provider = new Provider(issuer, configuration);
provider.proxy = false;
// Why the provider refused something, for the test's failure messages (never tokens).
for (const event of ['grant.error', 'userinfo.error', 'server_error', 'authorization.error', 'backchannel.error',
  'end_session.error']) {
  provider.on(event, (ctx, err) => {
    process.stderr.write(`${event}: ${err.name} ${err.message} ${err.error_detail ?? ''} ${err.cause?.message ?? ''} ${err.cause?.cause?.message ?? ''} ${err.cause?.cause?.cause?.message ?? ''}\n`);
  });
}

// --- one-shot tampering with the next answer --------------------------------------------

const tamper = {};

function b64url(data) {
  return Buffer.from(data).toString('base64url');
}

async function forgeIdToken(original, spec) {
  const payload = jose.decodeJwt(original);
  const header = jose.decodeProtectedHeader(original);
  for (const [k, v] of Object.entries(spec.set ?? {})) payload[k] = v;
  for (const k of spec.unset ?? []) delete payload[k];
  const sign = spec.sign ?? 'original';
  if (sign === 'none') {
    return `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify(payload))}.`;
  }
  if (sign === 'hs256-public') {
    // The classic confusion: HMAC keyed with the provider's public key, same kid.
    const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT', kid: header.kid }))}.${b64url(JSON.stringify(payload))}`;
    return `${input}.${createHmac('sha256', signing.publicPem).update(input).digest('base64url')}`;
  }
  if (sign === 'rogue' || sign === 'rogue-jwk-header') {
    const rogueHeader = { alg: 'RS256', typ: 'JWT', kid: spec.kid ?? rogue.private.kid };
    if (sign === 'rogue-jwk-header') rogueHeader.jwk = rogue.publicJwk;
    return new jose.SignJWT(payload).setProtectedHeader(rogueHeader).sign(rogue.key);
  }
  return new jose.SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: header.typ ?? 'JWT', kid: header.kid }).sign(signing.key);
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/token' && ctx.method === 'POST' && tamper.token) {
    const spec = tamper.token;
    delete tamper.token;
    ctx.status = spec.status ?? 500;
    ctx.body = spec.body ?? 'upstream failure';
    return;
  }
  await next();
  if (ctx.path === '/token' && ctx.status === 200 && tamper.id_token && ctx.body?.id_token) {
    const spec = tamper.id_token;
    delete tamper.id_token;
    ctx.body = { ...ctx.body, id_token: await forgeIdToken(ctx.body.id_token, spec) };
  }
  if (ctx.path === '/me' && ctx.status === 200 && tamper.userinfo && ctx.body && typeof ctx.body === 'object') {
    const spec = tamper.userinfo;
    delete tamper.userinfo;
    const body = { ...ctx.body, ...(spec.set ?? {}) };
    for (const k of spec.unset ?? []) delete body[k];
    ctx.body = body;
  }
});

// --- the interaction: sign the persona in and grant consent, no form --------------------

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  let result;
  if (prompt.name === 'login') {
    const hinted = typeof params.login_hint === 'string' ? params.login_hint.split('@')[0] : undefined;
    const id = (hinted && ACCOUNTS[hinted] ? hinted : undefined) ?? (session?.accountId ? BY_SUB[session.accountId] : undefined);
    if (!id) {
      result = { error: 'login_required', error_description: 'no such persona' };
    } else {
      const method = chooseMethod(ACCOUNTS[id], params.acr_values);
      lastMethod.set(id, method);
      result = { login: { accountId: SUBS[id], acr: method.acr, amr: method.amr } };
    }
  } else if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  } else {
    result = { error: 'interaction_required' };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

async function mintLogoutToken(req, res) {
  let body = '';
  for await (const chunk of req) body += chunk;
  const spec = JSON.parse(body || '{}');
  const now = Math.floor(Date.now() / 1000);
  const payload = {
    iss: issuer, aud: spec.client_id, iat: now, exp: now + 120, jti: `jti-${Math.random().toString(36).slice(2)}${now}`,
    events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
  };
  if (spec.sub) payload.sub = spec.sub;
  if (spec.sid) payload.sid = spec.sid;
  for (const [k, v] of Object.entries(spec.set ?? {})) payload[k] = v;
  for (const k of spec.unset ?? []) delete payload[k];
  const typ = spec.typ ?? 'logout+jwt';
  const sign = spec.sign ?? 'original';
  let token;
  if (sign === 'none') {
    token = `${b64url(JSON.stringify({ alg: 'none', typ }))}.${b64url(JSON.stringify(payload))}.`;
  } else if (sign === 'hs256-public') {
    const input = `${b64url(JSON.stringify({ alg: 'HS256', typ, kid: signing.private.kid }))}.${b64url(JSON.stringify(payload))}`;
    token = `${input}.${createHmac('sha256', signing.publicPem).update(input).digest('base64url')}`;
  } else if (sign === 'rogue') {
    token = await new jose.SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ, kid: spec.kid ?? signing.private.kid }).sign(rogue.key);
  } else {
    token = await new jose.SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ, kid: signing.private.kid }).sign(signing.key);
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ logout_token: token }));
}

async function control(req, res) {
  let body = '';
  for await (const chunk of req) body += chunk;
  Object.assign(tamper, JSON.parse(body || '{}'));
  res.writeHead(204).end();
}

const callback = provider.callback();
const server = createServer((req, res) => {
  const path = new URL(req.url, issuer).pathname;
  const handle = path.startsWith('/interaction/') ? interaction
    : (path === '/test/tamper' && req.method === 'POST') ? control
      : (path === '/test/logout-token' && req.method === 'POST') ? mintLogoutToken
      : null;
  if (!handle) return callback(req, res);
  handle(req, res).catch((err) => {
    process.stderr.write(`${err.stack ?? err}\n`);
    if (!res.headersSent) res.writeHead(500).end('interaction failed');
  });
});
server.keepAliveTimeout = 1000;
server.listen(port, host, () => {
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
