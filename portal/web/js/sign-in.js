// The sign-in page: the national eID (OpenID Connect) and, in development, a list of
// synthetic citizens.
import {api, el, showError, start, t} from '/js/app.js';

async function main() {
  const session = await start({needsSession: false, title: 'sign_in_title'});
  if (session) {
    window.location.replace('/');
    return;
  }
  const options = await api('/api/sign-in-options');
  const box = document.getElementById('sign-in-methods');
  const parts = [];
  if (options.oidc) {
    parts.push(el('p', {}, el('a', {class: 'button', id: 'sign-in-eid', href: '/auth/login'},
        t('sign_in_eid'))));
  }
  if (options.dev_sign_in) {
    const radios = options.dev_citizens.map((c, i) => el('p', {},
        el('input', {type: 'radio', name: 'citizen', id: `citizen-${i}`, value: c.citizen_id,
          checked: i === 0}),
        ' ',
        el('label', {for: `citizen-${i}`}, `${c.label || c.citizen_id} (${c.citizen_id})`)));
    const form = el('form', {id: 'dev-sign-in', class: 'dev'},
        el('h2', {}, t('sign_in_dev_title')),
        el('p', {class: 'dev-banner'}, t('dev_banner')),
        el('fieldset', {}, el('legend', {}, t('sign_in_dev_legend')), radios),
        el('p', {}, el('button', {type: 'submit', id: 'dev-sign-in-submit'},
            t('sign_in_dev_button'))));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const chosen = form.querySelector('input[name=citizen]:checked');
      try {
        await api('/auth/dev', {method: 'POST', body: {citizen_id: chosen.value}});
        window.location.assign('/');
      } catch (e) {
        showError(e);
      }
    });
    parts.push(form);
  }
  if (!parts.length) parts.push(el('p', {}, t('sign_in_none')));
  box.replaceChildren(...parts);
}

main().catch(showError);
