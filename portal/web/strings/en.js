// Every user-facing string of the portal's web UI, in English. A translation is a copy
// of this file under another language tag (e.g. strings/et.js) with the same keys, and
// its tag added to strings/languages.js. `{name}` marks a value filled in at run time.
export default {
  site_name: 'Citizen portal',
  site_tagline: 'Tell us once: your data, your consent, your record',
  skip_to_content: 'Skip to content',
  nav_label: 'Main',
  nav_consents: 'My consents',
  nav_grant: 'Give consent',
  nav_history: 'Who used my data',
  nav_told_once: 'Told once',
  sign_out: 'Sign out',
  signed_in_as: 'Signed in as {citizen}',
  session_ends: 'Your session ends at {time}.',
  dev_banner:
    'DEVELOPMENT SIGN-IN: this portal lets anyone sign in as a synthetic citizen. ' +
    'For demonstrations only, never with real people or real data.',
  loading: 'Loading…',
  error_prefix: 'Something went wrong: {message}',
  error_sign_in_again: 'Please sign in again.',

  // Sign-in
  sign_in_title: 'Sign in',
  sign_in_intro:
    'Sign in to see who obtained which of your data, to give or take back your consent, ' +
    'and to check every record yourself.',
  sign_in_eid: 'Sign in with your national eID',
  sign_in_dev_title: 'Development sign-in',
  sign_in_dev_legend: 'Sign in as a synthetic citizen',
  sign_in_dev_button: 'Sign in as this citizen',
  sign_in_none: 'No way to sign in is configured on this portal.',
  signed_in_continue: 'You are signed in. Continue to your consents.',

  // Consents
  consents_title: 'Your consents',
  consents_intro:
    'An agency may obtain your data through the broker only while a consent of yours ' +
    '(or a law) allows it. Here is every consent you gave, including those that ended.',
  consents_none: 'You have not given any consent yet.',
  consents_give: 'Give a consent',
  status_ACTIVE: 'Active',
  status_REVOKED: 'Revoked',
  status_EXPIRED: 'Expired',
  status_USED: 'Used',
  consent_heading: '{agency} may obtain your data',
  consent_agency: 'Agency',
  consent_purpose: 'What for',
  consent_attributes: 'Which data',
  consent_from_provider: '{attribute} (from {provider})',
  consent_valid: 'Valid',
  consent_valid_range: 'from {from} until {until}',
  consent_mode: 'How often',
  mode_ONE_TIME: 'Once',
  mode_UNTIL_EXPIRY: 'Any number of times until it ends',
  consent_basis: 'Legal basis',
  consent_basis_text: 'Your consent, which you may revoke at any time.',
  consent_id: 'Consent id',
  consent_history: 'History',
  event_GRANTED: 'Given on {time} through {actor}',
  event_REVOKED: 'Revoked on {time} through {actor}',
  event_USED: 'Used on {time}',
  event_EXPIRED: 'Expired on {time}',
  receipt_check: 'Check the receipt',
  receipt_download: 'Download the receipt',
  receipt_verified:
    'Receipt verified: signed by the broker (key {key}), and it says what is shown here.',
  receipt_failed: 'Receipt check failed: {reason}',
  revoke: 'Revoke',
  revoke_reason_label: 'Reason (optional, never shared with the agency)',
  revoke_confirm: 'Yes, revoke this consent',
  revoke_cancel: 'Keep it',
  revoked_done: 'The consent is revoked. The agency can no longer obtain this data with it.',

  // Grant
  grant_title: 'Give a consent',
  grant_intro:
    'Choose who may obtain which of your data, and what for. The broker fetches it from ' +
    'the one agency that keeps it, only while your consent lasts, and records every access.',
  grant_agency: 'Which agency may obtain the data',
  grant_purpose: 'What for',
  grant_attributes: 'Which data',
  grant_attribute_option: '{attribute}, kept by {provider}',
  grant_until: 'Until when (at most {max} days from today)',
  grant_mode: 'How often',
  grant_mode_once: 'Once: the consent ends after the first use',
  grant_mode_until: 'Any number of times until the date above',
  grant_basis_title: 'Legal basis',
  grant_basis_text:
    'Your consent (GDPR Article 6(1)(a)). You can revoke it at any time on the "My ' +
    'consents" page; revoking stops further access but does not undo accesses made before.',
  grant_summary: '{agency} may obtain {attributes} for: {purpose}. {mode} Until {until}.',
  grant_submit: 'Give consent',
  grant_done: 'Consent given. The broker signed a receipt for it.',
  grant_see_consents: 'See your consents',
  grant_choose_agency: 'Choose an agency',
  grant_choose_purpose: 'Choose a purpose',

  // History
  history_title: 'Who used my data',
  history_intro:
    'Every decision the broker made about your data: who asked for what, when, why, on ' +
    'which basis, and whether they got it. Each entry can be checked in your own browser ' +
    'against the broker\'s signed log.',
  history_none: 'Nobody has asked for your data yet.',
  history_when: 'When',
  history_who: 'Who',
  history_what: 'What',
  history_from: 'From',
  history_why: 'Why',
  history_basis: 'Basis',
  history_outcome: 'Outcome',
  history_entry: 'Entry {index}',
  history_notified: 'Told that your data changed ({event})',
  basis_consent: 'Your consent {id}',
  basis_mandate: 'The law: {reference}',
  basis_none: 'None',
  outcome_ALLOWED: 'Delivered',
  outcome_DENIED: 'Refused',
  code_RESULT_OK: 'delivered',
  code_RESULT_NO_BASIS: 'no consent of yours and no law allows it',
  code_RESULT_CONSENT_REVOKED: 'you had revoked your consent',
  code_RESULT_CONSENT_EXPIRED: 'your consent had expired',
  code_RESULT_WRONG_PURPOSE: 'your consent is for another purpose',
  code_RESULT_UNKNOWN_ATTRIBUTE: 'no such data exists',
  code_RESULT_PROVIDER_UNAVAILABLE: 'the agency that keeps it could not be reached',
  code_RESULT_NOT_FOUND: 'the agency that keeps it has no record',
  code_RESULT_DEADLINE_EXCEEDED: 'the agency that keeps it did not answer in time',
  code_RESULT_PROVIDER_ERROR: 'the agency that keeps it answered wrongly',
  code_RESULT_CONSENT_USED: 'your one-time consent had already been used',
  code_RESULT_CODE_UNSPECIFIED: 'unknown',
  verify: 'Verify',
  verify_running: 'Checking…',
  verify_ok:
    'Verified: this entry is number {index} of the {size} entries in the broker\'s log, ' +
    'whose state the broker signed on {time} (key {key}).',
  verify_failed: 'Verification failed: {reason}',
  verify_unknown_key: 'signed with a key ({detail}) that is not among the broker\'s keys',
  verify_bad_signature:
    'the checkpoint or receipt signature does not verify with the broker\'s key',
  verify_size_mismatch: 'the proof is for another log size than the signed checkpoint',
  verify_event_differs: 'the logged entry differs from what is shown ({detail})',
  verify_proof_shape: 'the inclusion proof has the wrong length for this entry',
  verify_root_mismatch: 'the inclusion proof does not lead to the signed log root',
  verify_receipt_differs: 'the receipt says something else than is shown ({detail})',
  verify_malformed: 'the data to check is malformed ({detail})',
  verify_fetch_failed: 'the proof could not be fetched ({detail})',

  // Told once
  told_once_title: 'Told once',
  told_once_intro:
    'You gave each fact once, to the one agency that keeps it. Here is how often other ' +
    'agencies reused it through the broker instead of asking you again.',
  told_once_total: 'Agencies reused your data {count} times without asking you for it again.',
  told_once_total_one: 'Agencies reused your data once without asking you for it again.',
  told_once_refusals: 'The broker refused {count} requests that had no basis.',
  told_once_refusals_one: 'The broker refused one request that had no basis.',
  told_once_none: 'No agency has reused your data yet.',
  told_once_fact: 'Fact',
  told_once_source: 'Kept by',
  told_once_times: 'Times reused',
  told_once_by: 'Reused by',
  told_once_changes: 'Changes passed on',
};
