// "Who used my data": every access decision about the citizen, newest first, each with
// a "Verify" button that checks it in this browser against the broker's signed log.
import {
  agencyName, api, attributeWords, directory, el, formatTime, purposeWords, showError,
  signingKeys, start, t,
} from '/js/app.js';
import {verifyEntry} from '/js/verify.js';

function basisWords(b) {
  if (b?.consent_id) return t('basis_consent', {id: b.consent_id});
  if (b?.mandate_id) return t('basis_mandate', {reference: b.legal_reference || b.mandate_id});
  return t('basis_none');
}

function outcomeWords(e) {
  if (e.outcome === 'ALLOWED') return t('outcome_ALLOWED');
  return `${t('outcome_DENIED')}: ${t(`code_${e.code}`)}`;
}

function entry(d, logged) {
  const e = logged.event;
  const row = (key, ...value) => [el('dt', {}, t(key)), el('dd', {}, ...value)];
  const result = el('p', {class: 'verify-result', 'aria-live': 'polite'});
  const button = el('button', {type: 'button', class: 'secondary verify'}, t('verify'));
  button.addEventListener('click', async () => {
    button.disabled = true;
    result.className = 'verify-result';
    result.removeAttribute('data-verify-state');
    result.textContent = t('verify_running');
    let outcome;
    try {
      const [bundle, keys] = await Promise.all([api(`/api/proof/${logged.index}`), signingKeys()]);
      outcome = await verifyEntry(logged, bundle, keys);
    } catch (err) {
      outcome = {ok: false, reason: 'verify_fetch_failed', detail: err.message};
    }
    result.dataset.verifyState = outcome.ok ? 'verified' : 'failed';
    result.className = `verify-result ${outcome.ok ? 'ok' : 'failed'}`;
    result.textContent = outcome.ok ?
      t('verify_ok', {
        index: Number(logged.index) + 1,
        size: String(outcome.treeSize),
        time: formatTime(new Date(Number(outcome.signedAt) * 1000).toISOString()),
        key: outcome.keyId,
      }) :
      t('verify_failed', {reason: t(outcome.reason, {detail: outcome.detail || ''})});
    button.disabled = false;
  });
  const what = e.attributes.map((a) => attributeWords(d, a)).join(', ');
  return el('li', {class: `entry outcome-${e.outcome}`, 'data-index': logged.index},
      el('article', {},
          el('h2', {}, `${formatTime(e.at)}: ${agencyName(d, e.consumer)}`, ' ',
              el('span', {class: `badge ${e.outcome}`}, t(`outcome_${e.outcome}`))),
          el('dl', {},
              row('history_when', formatTime(e.at)),
              row('history_who', agencyName(d, e.consumer)),
              row('history_what', what),
              row('history_from',
                  agencyName(d, e.provider || d.attribute.get(e.attributes[0])?.provider)),
              row('history_why', e.notified_event_type ?
                t('history_notified', {event: e.notified_event_type}) : purposeWords(d, e.purpose)),
              row('history_basis', basisWords(e.basis)),
              row('history_outcome', outcomeWords(e))),
          el('p', {class: 'actions'}, button, ' ',
              el('span', {class: 'entry-number'}, t('history_entry', {index: logged.index}))),
          result));
}

async function main() {
  if (!(await start({title: 'history_title'}))) return;
  const [d, history] = await Promise.all([directory(), api('/api/history')]);
  const list = document.getElementById('history');
  const events = [...(history.events || [])].reverse();
  list.replaceChildren(...events.map((e) => entry(d, e)));
  if (!events.length) list.after(el('p', {id: 'no-history'}, t('history_none')));
  list.setAttribute('aria-busy', 'false');
}

main().catch(showError);
