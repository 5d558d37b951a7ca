// After the identity provider's redirect: continue from this origin, so that the
// SameSite=Strict session cookie is sent.
import {fillStrings, start} from '/js/app.js';

start({needsSession: false, title: 'sign_in_title'}).then(() => {
  fillStrings();
  window.location.replace('/');
});
