// What the citizen's browser checks itself, with WebCrypto only: that an entry of their
// history is in the broker's signed log (RFC 6962 / RFC 9162 inclusion proof against a
// checkpoint signed with ECDSA P-256), and that a consent receipt is signed by the
// broker. The bytes checked are the broker's own (the serialized AccessEvent, Checkpoint
// and ReceiptBody), decoded here from the protobuf wire format, so the portal cannot
// show one thing and prove another.
//
// Every function works in a browser and in Node.js (>= 18, globalThis.crypto).
// Failures are {ok: false, reason: "<key>", detail: "..."}: `reason` is a key of the
// strings table (strings/en.js, verify_*), `detail` what exactly differed.

const subtle = () => globalThis.crypto.subtle;

// Context strings that start every signed payload (certs/signing.h).
const CONTEXT = {
  receipt: 'tellonce-receipt-v1\0',
  checkpoint: 'tellonce-checkpoint-v1\0',
};

export function b64decode(text) {
  const bin = atob(text || '');
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export async function sha256(bytes) {
  return new Uint8Array(await subtle().digest('SHA-256', bytes));
}

// RFC 6962 section 2.1: leaves SHA-256(0x00 || data), nodes SHA-256(0x01 || l || r).
export async function leafHash(data) {
  return sha256(concat(Uint8Array.of(0), data));
}

export async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

// RFC 9162 section 2.1.3.2: the root that `proof` leads to from the leaf hash at
// `index` in a tree of `size` leaves; {ok: false} when the proof has the wrong shape.
export async function rootFromInclusionProof(index, size, leaf, proof) {
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (BigInt(index) >= BigInt(size)) return {ok: false, reason: 'verify_proof_shape'};
  let r = leaf;
  for (const p of proof) {
    if (p.length !== 32 || sn === 0n) return {ok: false, reason: 'verify_proof_shape'};
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) return {ok: false, reason: 'verify_proof_shape'};
  return {ok: true, root: r};
}

export async function verifyInclusion(index, size, leaf, proof, root) {
  const computed = await rootFromInclusionProof(index, size, leaf, proof);
  if (!computed.ok) return computed;
  if (!equalBytes(computed.root, root)) return {ok: false, reason: 'verify_root_mismatch'};
  return {ok: true};
}

// --- protobuf wire format (only what the signed messages use) --------------------------

// Field number -> list of values: BigInt for varints, Uint8Array for length-delimited.
export function decodeFields(bytes) {
  const fields = new Map();
  let at = 0;
  const varint = () => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      if (at >= bytes.length || shift > 63n) throw new Error('truncated varint');
      const b = bytes[at++];
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v;
      shift += 7n;
    }
  };
  while (at < bytes.length) {
    const key = varint();
    const number = Number(key >> 3n);
    const wire = Number(key & 7n);
    let value;
    if (wire === 0) {
      value = varint();
    } else if (wire === 2) {
      const n = Number(varint());
      if (at + n > bytes.length) throw new Error('truncated field');
      value = bytes.subarray(at, at + n);
      at += n;
    } else if (wire === 1) {
      at += 8;
      continue;
    } else if (wire === 5) {
      at += 4;
      continue;
    } else {
      throw new Error('unsupported wire type');
    }
    if (!fields.has(number)) fields.set(number, []);
    fields.get(number).push(value);
  }
  return fields;
}

const utf8 = new TextDecoder('utf-8', {fatal: true});
const str = (f, n) => (f.has(n) ? utf8.decode(f.get(n).at(-1)) : '');
const strs = (f, n) => (f.get(n) || []).map((b) => utf8.decode(b));
const num = (f, n) => (f.has(n) ? f.get(n).at(-1) : 0n);
const bytesOf = (f, n) => (f.has(n) ? f.get(n).at(-1) : new Uint8Array());
const sub = (f, n) => (f.has(n) ? decodeFields(f.get(n).at(-1)) : new Map());
// google.protobuf.Timestamp -> whole seconds since the epoch (BigInt).
const seconds = (f, n) => num(sub(f, n), 1);

export const OUTCOMES = ['OUTCOME_UNSPECIFIED', 'ALLOWED', 'DENIED'];
export const RESULT_CODES = [
  'RESULT_CODE_UNSPECIFIED', 'RESULT_OK', 'RESULT_NO_BASIS', 'RESULT_CONSENT_REVOKED',
  'RESULT_CONSENT_EXPIRED', 'RESULT_WRONG_PURPOSE', 'RESULT_UNKNOWN_ATTRIBUTE',
  'RESULT_PROVIDER_UNAVAILABLE', 'RESULT_NOT_FOUND', 'RESULT_DEADLINE_EXCEEDED',
  'RESULT_PROVIDER_ERROR', 'RESULT_CONSENT_USED',
];
export const MODES = ['CONSENT_MODE_UNSPECIFIED', 'ONE_TIME', 'UNTIL_EXPIRY'];

// tellonce.v1.Checkpoint
export function decodeCheckpoint(bytes) {
  const f = decodeFields(bytes);
  return {
    issuer: str(f, 1),
    treeSize: num(f, 2),
    root: bytesOf(f, 3),
    signedAt: seconds(f, 4),
  };
}

// tellonce.v1.AccessEvent
export function decodeAccessEvent(bytes) {
  const f = decodeFields(bytes);
  const basis = sub(f, 8);
  return {
    at: seconds(f, 1),
    exchange_id: str(f, 2),
    consumer: str(f, 3),
    provider: str(f, 4),
    citizen_id: str(f, 5),
    attributes: strs(f, 6),
    purpose: str(f, 7),
    basis: {
      consent_id: str(basis, 1),
      mandate_id: str(basis, 2),
      legal_reference: str(basis, 3),
    },
    outcome: OUTCOMES[Number(num(f, 9))] || 'OUTCOME_UNSPECIFIED',
    code: RESULT_CODES[Number(num(f, 10))] || 'RESULT_CODE_UNSPECIFIED',
    notified_event_type: str(f, 11),
  };
}

// tellonce.v1.ReceiptBody
export function decodeReceiptBody(bytes) {
  const f = decodeFields(bytes);
  return {
    version: str(f, 1),
    record_id: str(f, 2),
    issued_at: seconds(f, 3),
    issuer: str(f, 4),
    principal_id: str(f, 6),
    controller: str(f, 7),
    purposes: (f.get(8) || []).map((b) => {
      const p = decodeFields(b);
      return {code: str(p, 1), description: str(p, 2)};
    }),
    attributes: strs(f, 9),
    valid_from: seconds(f, 10),
    expires_at: seconds(f, 11),
    mode: MODES[Number(num(f, 12))] || 'CONSENT_MODE_UNSPECIFIED',
    collection_method: str(f, 13),
  };
}

// RFC 3339 (proto3 JSON) -> whole seconds since the epoch (BigInt).
export function rfc3339Seconds(text) {
  if (!text) return 0n;
  const ms = Date.parse(String(text).replace(/\.\d+Z$/, 'Z'));
  return BigInt(Math.floor(ms / 1000));
}

// --- signatures -------------------------------------------------------------------------

// DER ECDSA-Sig-Value -> the 64-byte r || s WebCrypto verifies; null when malformed.
export function derToRaw(der) {
  if (!der || der.length < 8 || der[0] !== 0x30) return null;
  let at = 1;
  let length = der[at++];
  if (length & 0x80) {
    if ((length & 0x7f) !== 1) return null;
    length = der[at++];
  }
  if (at + length !== der.length) return null;
  const out = new Uint8Array(64);
  for (const half of [0, 32]) {
    if (der[at++] !== 0x02) return null;
    const n = der[at++];
    if (n === undefined || (n & 0x80) || at + n > der.length) return null;
    let v = der.subarray(at, at + n);
    at += n;
    while (v.length > 32 && v[0] === 0) v = v.subarray(1);
    if (v.length === 0 || v.length > 32) return null;
    out.set(v, half + 32 - v.length);
  }
  return at === der.length ? out : null;
}

// Checks `signature` (DER, base64) over CONTEXT[kind] || body with the key of `keyId`
// among `keys` (GET /api/keys). {ok} or {ok: false, reason}.
export async function verifySignature(kind, keys, keyId, body, signatureB64) {
  const key = (keys || []).find((k) => k.key_id === keyId);
  if (!key) return {ok: false, reason: 'verify_unknown_key', detail: keyId};
  const raw = derToRaw(b64decode(signatureB64));
  if (raw === null) return {ok: false, reason: 'verify_bad_signature'};
  let cryptoKey;
  try {
    cryptoKey = await subtle().importKey('spki', b64decode(key.spki),
        {name: 'ECDSA', namedCurve: 'P-256'}, false, ['verify']);
  } catch (e) {
    return {ok: false, reason: 'verify_unknown_key', detail: keyId};
  }
  const data = concat(new TextEncoder().encode(CONTEXT[kind]), body);
  const ok = await subtle().verify({name: 'ECDSA', hash: 'SHA-256'}, cryptoKey, raw, data);
  return ok ? {ok: true} : {ok: false, reason: 'verify_bad_signature'};
}

// --- what the pages call ----------------------------------------------------------------

const sameList = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// Is the history entry `entry` (a LoggedAccessEvent as /api/history gives it) in the
// broker's log? `bundle` is /api/proof/<index>, `keys` /api/keys.
export async function verifyEntry(entry, bundle, keys) {
  try {
    const signed = bundle.checkpoint || {};
    const body = b64decode(signed.body);
    const sig = await verifySignature('checkpoint', keys, signed.key_id, body, signed.signature);
    if (!sig.ok) return sig;
    const checkpoint = decodeCheckpoint(body);
    const proof = bundle.proof || {};
    if (BigInt(proof.tree_size || 0) !== checkpoint.treeSize) {
      return {ok: false, reason: 'verify_size_mismatch'};
    }
    if (String(proof.index) !== String(entry.index)) {
      return {ok: false, reason: 'verify_event_differs', detail: 'index'};
    }
    const eventBytes = b64decode(proof.event_bytes);
    const logged = decodeAccessEvent(eventBytes);
    const shown = entry.event || {};
    const differs = [];
    for (const field of ['consumer', 'provider', 'citizen_id', 'purpose', 'outcome', 'code',
      'exchange_id', 'notified_event_type']) {
      if ((shown[field] || '') !== logged[field]) differs.push(field);
    }
    if (!sameList(shown.attributes || [], logged.attributes)) differs.push('attributes');
    if (rfc3339Seconds(shown.at) !== logged.at) differs.push('at');
    const basis = shown.basis || {};
    for (const field of ['consent_id', 'mandate_id', 'legal_reference']) {
      if ((basis[field] || '') !== logged.basis[field]) differs.push(`basis.${field}`);
    }
    if (differs.length) {
      return {ok: false, reason: 'verify_event_differs', detail: differs.join(', ')};
    }
    const path = (proof.path || []).map(b64decode);
    const result = await verifyInclusion(proof.index, proof.tree_size,
        await leafHash(eventBytes), path, checkpoint.root);
    if (!result.ok) return result;
    return {
      ok: true,
      treeSize: checkpoint.treeSize,
      signedAt: checkpoint.signedAt,
      root: hex(checkpoint.root),
      keyId: signed.key_id,
    };
  } catch (e) {
    return {ok: false, reason: 'verify_malformed', detail: String(e.message || e)};
  }
}

// Is `receipt` (ConsentReceipt JSON) the broker's signed receipt of `consent`?
export async function verifyReceipt(consent, receipt, keys) {
  try {
    const body = b64decode(receipt.body);
    const sig = await verifySignature('receipt', keys, receipt.key_id, body, receipt.signature);
    if (!sig.ok) return sig;
    const r = decodeReceiptBody(body);
    const differs = [];
    if (r.record_id !== consent.consent_id) differs.push('record_id');
    if (r.principal_id !== consent.citizen_id) differs.push('principal_id');
    if (r.controller !== consent.consumer) differs.push('controller');
    if (!sameList(r.attributes, consent.attributes || [])) differs.push('attributes');
    if (!r.purposes.length || r.purposes[0].code !== consent.purpose) differs.push('purposes');
    if (r.expires_at !== rfc3339Seconds(consent.expires_at)) differs.push('expires_at');
    if (r.mode !== consent.mode) differs.push('mode');
    if (differs.length) {
      return {ok: false, reason: 'verify_receipt_differs', detail: differs.join(', ')};
    }
    return {ok: true, body: r, keyId: receipt.key_id};
  } catch (e) {
    return {ok: false, reason: 'verify_malformed', detail: String(e.message || e)};
  }
}
