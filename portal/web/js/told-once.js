// "Told once": which of the citizen's facts agencies reused through the broker, how
// often, and how many times the citizen did not have to hand them over again.
import {
  agencyName, api, attributeWords, directory, el, showError, start, t, tn,
} from '/js/app.js';

async function main() {
  if (!(await start({title: 'told_once_title'}))) return;
  const [d, summary] = await Promise.all([directory(), api('/api/told-once')]);
  const box = document.getElementById('told-once');
  const parts = [el('p', {class: 'total', id: 'times-not-asked'},
      tn('told_once_total', summary.times_not_asked))];
  if (summary.refusals) parts.push(el('p', {}, tn('told_once_refusals', summary.refusals)));
  if (!summary.facts.length) {
    parts.push(el('p', {}, t('told_once_none')));
  } else {
    const th = (key) => el('th', {scope: 'col'}, t(key));
    parts.push(el('div', {class: 'table-wrap'}, el('table', {id: 'facts'},
        el('thead', {}, el('tr', {}, th('told_once_fact'), th('told_once_source'),
            th('told_once_times'), th('told_once_by'), th('told_once_changes'))),
        el('tbody', {}, summary.facts.map((f) => el('tr', {},
            el('th', {scope: 'row'}, attributeWords(d, f.attribute)),
            el('td', {}, agencyName(d, f.provider)),
            el('td', {}, String(f.deliveries)),
            el('td', {}, f.consumers.map((c) => agencyName(d, c)).join(', ')),
            el('td', {}, String(f.changes_told))))))));
  }
  box.replaceChildren(...parts);
  box.setAttribute('aria-busy', 'false');
}

main().catch(showError);
