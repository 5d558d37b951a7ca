// Every string key the web UI uses exists in the strings table (portal/web/strings/en.js),
// and every translation listed in languages.js has exactly the same keys: a translation is
// a file, and a missing key would show the key itself to citizens.
//
//   node strings_test.mjs PATH/portal/web
import assert from 'node:assert/strict';
import {readFileSync, readdirSync} from 'node:fs';
import {join} from 'node:path';
import test from 'node:test';
import {pathToFileURL} from 'node:url';

const web = process.argv[2];
const load = async (lang) =>
  (await import(pathToFileURL(join(web, 'strings', `${lang}.js`)).href)).default;
const en = await load('en');
const languages = (await import(pathToFileURL(join(web, 'strings', 'languages.js')).href)).default;

// Keys built at run time from the broker's enums (proto names).
const dynamic = {
  status_: ['ACTIVE', 'REVOKED', 'EXPIRED', 'USED'],
  mode_: ['ONE_TIME', 'UNTIL_EXPIRY'],
  event_: ['GRANTED', 'REVOKED', 'USED', 'EXPIRED'],
  outcome_: ['ALLOWED', 'DENIED'],
  code_: ['RESULT_OK', 'RESULT_NO_BASIS', 'RESULT_CONSENT_REVOKED', 'RESULT_CONSENT_EXPIRED',
    'RESULT_WRONG_PURPOSE', 'RESULT_UNKNOWN_ATTRIBUTE', 'RESULT_PROVIDER_UNAVAILABLE',
    'RESULT_NOT_FOUND', 'RESULT_DEADLINE_EXCEEDED', 'RESULT_PROVIDER_ERROR',
    'RESULT_CONSENT_USED', 'RESULT_CODE_UNSPECIFIED'],
};

function usedKeys() {
  const keys = new Set();
  for (const file of readdirSync(join(web, 'js'))) {
    const text = readFileSync(join(web, 'js', file), 'utf8');
    if (file === 'verify.js') {
      // Its quoted snake_case words are mostly field names; its keys are the reasons.
      for (const m of text.matchAll(/reason: '([a-z_]+)'/g)) keys.add(m[1]);
    } else {
      // Every quoted snake_case word of the pages' scripts is a key (t('...'), and the
      // helpers that call t: row('...'), th('...'), link(href, '...'), title: '...').
      for (const m of text.matchAll(/'([a-z]+(?:_[a-z]+)+)'/g)) keys.add(m[1]);
    }
  }
  for (const file of readdirSync(web).filter((f) => f.endsWith('.html'))) {
    const text = readFileSync(join(web, file), 'utf8');
    for (const m of text.matchAll(/data-i18n="([a-z_]+)"/g)) keys.add(m[1]);
  }
  for (const [prefix, names] of Object.entries(dynamic)) {
    for (const n of names) keys.add(prefix + n);
  }
  return keys;
}

test('every key the UI uses is in the English table', () => {
  const keys = usedKeys();
  assert.ok(keys.size > 80, `only ${keys.size} keys found: the scan is broken`);
  const missing = [...keys].filter((k) => !(k in en));
  assert.deepEqual(missing, []);
});

test('every listed translation has the same keys and placeholders as English', async () => {
  assert.equal(languages[0], 'en');
  for (const lang of languages) {
    const table = await load(lang);
    assert.deepEqual(Object.keys(table).sort(), Object.keys(en).sort(), lang);
    for (const [key, text] of Object.entries(en)) {
      const names = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      assert.deepEqual(names(table[key]), names(text), `${lang}: ${key}`);
    }
  }
});
