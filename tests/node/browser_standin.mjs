// A browser stand-in for the node relying parties: one cookie jar, manual redirects, and the
// broker's sign-in forms (email, then password) filled when shown.
//
// createBrowser({ email, password, redirectUri }) returns { browse, reachCallback }; the
// module also exports oneShotFetch for openid-client's customFetch.


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

// Every request on a new connection. Node's fetch does not retry a request that meets a
// kept-alive connection the server has just closed (browsers do, transparently); under
// parallel test load that race made runs fail with "other side closed".
export function oneShotFetch(url, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('connection', 'close');
  return fetch(url, { ...init, headers });
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

export function createBrowser({ email, password, redirectUri }) {
  const jar = new CookieJar();

  async function browse(url, init = {}) {
    const headers = new Headers(init.headers);
    const cookie = jar.header();
    if (cookie) headers.set('cookie', cookie);
    const response = await oneShotFetch(url, { ...init, headers, redirect: 'manual' });
    jar.store(response);
    return response;
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

  return { browse, reachCallback };
}
