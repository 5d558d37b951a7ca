// What every page shares: the strings table, the session (with its CSRF token), the
// page frame (development banner, navigation, sign-out), calls to the portal's JSON
// API, and DOM helpers. Text is only ever inserted with textContent, never as HTML.

import languages from '/strings/languages.js';

let strings = {};
let session = null;

async function loadStrings() {
  const wanted = (navigator.languages || [navigator.language || 'en'])
      .map((l) => String(l).toLowerCase().split('-')[0]);
  const lang = wanted.find((l) => languages.includes(l)) || languages[0];
  strings = (await import(`/strings/${lang}.js`)).default;
  document.documentElement.lang = lang;
}

// The string `key` with {name} filled from `values`.
export function t(key, values = {}) {
  const text = strings[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in values ? String(values[name]) : m));
}

// el('p', {class: 'x'}, 'text', child...): an element; strings become text nodes.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// t() for a count: the key's plural form for the language ("<key>_one" for one, say)
// when the table has it, else the key itself.
export function tn(key, count, values = {}) {
  const rule = new Intl.PluralRules(document.documentElement.lang).select(count);
  const form = `${key}_${rule}`;
  return t(form in strings ? form : key, {count, ...values});
}

export function fillStrings(root = document) {
  for (const node of root.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
}

export function formatTime(rfc3339) {
  if (!rfc3339) return '';
  const d = new Date(rfc3339);
  return d.toLocaleString(document.documentElement.lang, {dateStyle: 'medium', timeStyle: 'short'});
}

export function formatDate(rfc3339) {
  if (!rfc3339) return '';
  return new Date(rfc3339).toLocaleDateString(document.documentElement.lang, {dateStyle: 'medium'});
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// A call to the portal's JSON API. POST bodies are JSON and carry the CSRF token.
export async function api(path, {method = 'GET', body} = {}) {
  const headers = {Accept: 'application/json'};
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    if (session) headers['X-CSRF-Token'] = session.csrf_token;
  }
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  if (res.status === 204) return null;
  let json = null;
  try {
    json = await res.json();
  } catch (e) {
    json = null;
  }
  if (!res.ok) {
    if (res.status === 401 && json?.sign_in && session) {
      window.location.assign('/sign-in');
    }
    throw new ApiError(res.status, json);
  }
  return json;
}

let directoryCache = null;
// The directory in words, with lookups by id.
export async function directory() {
  if (directoryCache) return directoryCache;
  const d = await api('/api/directory');
  const by = (list, key) => new Map((list || []).map((x) => [x[key], x]));
  directoryCache = {
    ...d,
    agency: by(d.agencies, 'id'),
    attribute: by(d.attributes, 'name'),
    purpose: by(d.purposes, 'code'),
  };
  return directoryCache;
}

export const agencyName = (d, id) => d.agency.get(id)?.name || id;
export const attributeWords = (d, name) => d.attribute.get(name)?.description || name;
export const purposeWords = (d, code) => d.purpose.get(code)?.description || code;

let keysCache = null;
export async function signingKeys() {
  if (!keysCache) keysCache = (await api('/api/keys')).keys;
  return keysCache;
}

// A live region for messages (role=status), created once per page.
export function announce(text, kind = 'info') {
  let region = document.getElementById('messages');
  if (!region) return;
  region.replaceChildren(el('p', {class: `message ${kind}`}, text));
}

export function showError(error) {
  const message = error?.body?.message || error?.message || String(error);
  announce(t('error_prefix', {message}), 'error');
}

function frame(options) {
  const header = document.getElementById('site-header');
  const parts = [];
  if (options.devSignIn) {
    parts.push(el('p', {class: 'dev-banner', role: 'note', id: 'dev-banner'}, t('dev_banner')));
  }
  const brand = el('div', {class: 'brand'},
      el('p', {class: 'site-name'}, t('site_name')),
      el('p', {class: 'tagline'}, t('site_tagline')));
  parts.push(brand);
  if (session) {
    const here = window.location.pathname;
    const link = (href, key) => el('li', {},
        el('a', {href, 'aria-current': href === here ? 'page' : null}, t(key)));
    parts.push(el('nav', {'aria-label': t('nav_label')},
        el('ul', {},
            link('/', 'nav_consents'),
            link('/grant', 'nav_grant'),
            link('/history', 'nav_history'),
            link('/told-once', 'nav_told_once'))));
    parts.push(el('div', {class: 'who'},
        el('p', {id: 'signed-in-as'}, t('signed_in_as', {citizen: session.citizen_id}), ' ',
            t('session_ends', {time: formatTime(session.expires_at)})),
        el('button', {type: 'button', id: 'sign-out', class: 'secondary', onclick: signOut},
            t('sign_out'))));
  }
  header.replaceChildren(...parts);
  if (options.devSignIn) document.title = `[DEV] ${document.title}`;
}

async function signOut() {
  try {
    await api('/auth/logout', {method: 'POST'});
  } finally {
    window.location.assign('/sign-in');
  }
}

// Sets up the page: strings, session (unless `needsSession` is false), frame. Returns
// the session (null on public pages without one).
export async function start({needsSession = true, title} = {}) {
  await loadStrings();
  fillStrings();
  const skip = document.querySelector('.skip');
  if (skip) skip.textContent = t('skip_to_content');
  let devSignIn = false;
  try {
    session = await api('/api/session');
    devSignIn = session.dev_sign_in;
  } catch (e) {
    session = null;
    if (needsSession) {
      window.location.assign('/sign-in');
      return null;
    }
    const options = await api('/api/sign-in-options');
    devSignIn = options.dev_sign_in;
  }
  if (title) document.title = `${t(title)} – ${t('site_name')}`;
  frame({devSignIn});
  return session;
}
