// "Give consent": which agency, which data, what for, until when, once or until then,
// with the legal basis spelled out and a summary of what the citizen is agreeing to.
import {
  agencyName, announce, api, attributeWords, directory, el, formatDate, purposeWords, showError,
  start, t,
} from '/js/app.js';

const DAY_MS = 86400000;

function isoDate(d) {
  return d.toISOString().slice(0, 10);
}

async function main() {
  if (!(await start({title: 'grant_title'}))) return;
  const d = await directory();
  const form = document.getElementById('grant-form');
  const consumer = document.getElementById('consumer');
  const purpose = document.getElementById('purpose');
  const attributes = document.getElementById('attributes');
  const expires = document.getElementById('expires');
  const summary = document.getElementById('grant-summary');

  consumer.replaceChildren(el('option', {value: ''}, t('grant_choose_agency')),
      ...d.agencies.filter((a) => a.consumer).map((a) => el('option', {value: a.id}, a.name)));
  purpose.replaceChildren(el('option', {value: ''}, t('grant_choose_purpose')),
      ...d.purposes.map((p) => el('option', {value: p.code}, p.description)));
  attributes.append(...d.attributes.map((a, i) => el('p', {},
      el('input', {type: 'checkbox', id: `attribute-${i}`, name: 'attribute', value: a.name}),
      ' ',
      el('label', {for: `attribute-${i}`},
          t('grant_attribute_option',
              {attribute: a.description, provider: agencyName(d, a.provider)})))));
  // proto3 JSON Duration: "31536000s".
  const lifetime = Number(String(d.max_consent_lifetime || '31536000s').replace('s', ''));
  const maxDays = Math.floor(lifetime / 86400);
  document.getElementById('expires-label').textContent = t('grant_until', {max: maxDays});
  const today = new Date();
  expires.min = isoDate(new Date(today.getTime() + DAY_MS));
  expires.max = isoDate(new Date(today.getTime() + (maxDays - 1) * DAY_MS));
  expires.value = isoDate(new Date(today.getTime() + 90 * DAY_MS));

  const chosen = () =>
    [...form.querySelectorAll('input[name=attribute]:checked')].map((i) => i.value);
  const mode = () => form.querySelector('input[name=mode]:checked').value;
  const update = () => {
    if (!consumer.value || !purpose.value || !chosen().length) {
      summary.textContent = '';
      return;
    }
    summary.textContent = t('grant_summary', {
      agency: agencyName(d, consumer.value),
      attributes: chosen().map((a) => attributeWords(d, a)).join(', '),
      purpose: purposeWords(d, purpose.value),
      mode: t(mode() === 'ONE_TIME' ? 'grant_mode_once' : 'grant_mode_until') + '.',
      until: formatDate(`${expires.value}T23:59:59Z`),
    });
  };
  form.addEventListener('change', update);
  update();

  // One request id per form shown: a double submission is one consent.
  const requestId = crypto.randomUUID();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const submit = document.getElementById('grant-submit');
    submit.disabled = true;
    try {
      const answer = await api('/api/consents', {
        method: 'POST',
        body: {
          request_id: requestId,
          consumer: consumer.value,
          attributes: chosen(),
          purpose: purpose.value,
          expires_at: expires.value ? `${expires.value}T23:59:59Z` : undefined,
          mode: mode(),
        },
      });
      form.hidden = true;
      const done = el('div', {id: 'grant-done', class: 'message ok', tabindex: '-1',
        'data-consent-id': answer.consent.consent_id},
      el('p', {}, t('grant_done')),
      el('p', {}, el('a', {href: '/'}, t('grant_see_consents'))));
      form.after(done);
      done.focus();
    } catch (e) {
      submit.disabled = false;
      showError(e);
    }
  });
}

main().catch(showError);
