// "My consents": every consent of the citizen with its terms in words, its receipt
// (checked in this browser and downloadable), and revocation.
import {
  agencyName, announce, api, attributeWords, directory, el, formatDate, formatTime,
  purposeWords, showError, signingKeys, start, t,
} from '/js/app.js';
import {verifyReceipt} from '/js/verify.js';

function describe(d, c) {
  const attributes = c.attributes.map((a) => {
    const provider = d.attribute.get(a)?.provider;
    return el('li', {}, provider ?
      t('consent_from_provider',
          {attribute: attributeWords(d, a), provider: agencyName(d, provider)}) :
      attributeWords(d, a));
  });
  const row = (key, ...value) => [el('dt', {}, t(key)), el('dd', {}, ...value)];
  return el('dl', {},
      row('consent_agency', agencyName(d, c.consumer)),
      row('consent_purpose', purposeWords(d, c.purpose)),
      row('consent_attributes', el('ul', {}, attributes)),
      row('consent_valid', t('consent_valid_range',
          {from: formatDate(c.valid_from), until: formatDate(c.expires_at)})),
      row('consent_mode', t(`mode_${c.mode}`)),
      row('consent_basis', t('consent_basis_text')),
      row('consent_id', el('code', {}, c.consent_id)),
      row('consent_history', el('ul', {}, (c.events || []).map((e) => el('li', {},
          t(`event_${e.kind}`, {time: formatTime(e.at), actor: agencyName(d, e.actor)}))))));
}

function card(d, c) {
  const result = el('p', {class: 'check-result', 'aria-live': 'polite'});
  const actions = el('div', {class: 'actions'});
  const article = el('article',
      {class: `consent status-${c.status}`, 'data-consent-id': c.consent_id},
      el('h2', {}, t('consent_heading', {agency: agencyName(d, c.consumer)}), ' ',
          el('span', {class: `badge ${c.status}`}, t(`status_${c.status}`))),
      describe(d, c), actions, result);

  const check = el('button', {type: 'button', class: 'secondary check-receipt'},
      t('receipt_check'));
  check.addEventListener('click', async () => {
    try {
      const [full, keys] = await Promise.all([api(`/api/consents/${c.consent_id}`), signingKeys()]);
      const outcome = await verifyReceipt(full.consent, full.receipt, keys);
      result.dataset.verifyState = outcome.ok ? 'verified' : 'failed';
      result.className = `check-result ${outcome.ok ? 'ok' : 'failed'}`;
      result.textContent = outcome.ok ? t('receipt_verified', {key: outcome.keyId}) :
        t('receipt_failed', {reason: t(outcome.reason, {detail: outcome.detail || ''})});
    } catch (e) {
      showError(e);
    }
  });
  const download = el('button', {type: 'button', class: 'secondary download-receipt'},
      t('receipt_download'));
  download.addEventListener('click', async () => {
    try {
      const full = await api(`/api/consents/${c.consent_id}`);
      const blob = new Blob([JSON.stringify(full.receipt, null, 2)], {type: 'application/json'});
      const a = el('a',
          {href: URL.createObjectURL(blob), download: `receipt-${c.consent_id}.json`});
      document.body.append(a);
      a.click();
      a.remove();
    } catch (e) {
      showError(e);
    }
  });
  actions.append(check, download);

  if (c.status === 'ACTIVE') {
    const revoke = el('button', {type: 'button', class: 'danger revoke'}, t('revoke'));
    revoke.addEventListener('click', () => {
      const id = `reason-${c.consent_id}`;
      const reason = el('input', {type: 'text', id, maxlength: '200'});
      const confirm = el('button', {type: 'button', class: 'danger revoke-confirm'},
          t('revoke_confirm'));
      const cancel = el('button', {type: 'button', class: 'secondary'}, t('revoke_cancel'));
      const box = el('div', {class: 'confirm'},
          el('p', {class: 'field'}, el('label', {for: id}, t('revoke_reason_label')), reason),
          el('p', {}, confirm, ' ', cancel));
      cancel.addEventListener('click', () => {
        box.remove();
        revoke.hidden = false;
        revoke.focus();
      });
      confirm.addEventListener('click', async () => {
        confirm.disabled = true;
        try {
          await api(`/api/consents/${c.consent_id}/revoke`,
              {method: 'POST', body: {reason: reason.value}});
          announce(t('revoked_done'), 'ok');
          await render();
        } catch (e) {
          confirm.disabled = false;
          showError(e);
        }
      });
      revoke.hidden = true;
      actions.after(box);
      reason.focus();
    });
    actions.append(revoke);
  }
  return article;
}

async function render() {
  const box = document.getElementById('consents');
  const [d, list] = await Promise.all([directory(), api('/api/consents')]);
  const consents = [...(list.consents || [])].reverse();
  box.replaceChildren(...(consents.length ? consents.map((c) => card(d, c)) :
    [el('p', {id: 'no-consents'}, t('consents_none'))]));
  box.setAttribute('aria-busy', 'false');
}

start({title: 'consents_title'}).then((s) => s && render()).catch(showError);
