// Unit test of the browser's checks (portal/web/js/verify.js) in Node.js, against
// vectors made by the C++ side (verify_vectors.cc: certs/merkle.h, certs/signing.h).
//
//   node verify_test.mjs PATH/portal_verify_vectors PATH/verify.js
import assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import {webcrypto} from 'node:crypto';
import test from 'node:test';
import {pathToFileURL} from 'node:url';

if (!globalThis.crypto) globalThis.crypto = webcrypto;  // Node 18 (Debian 12)

const [vectorsBin, verifyPath] = process.argv.slice(2);
const v = JSON.parse(execFileSync(vectorsBin, {encoding: 'utf8', maxBuffer: 64 << 20}));
const js = await import(pathToFileURL(verifyPath).href);
const {b64decode} = js;

const flip = (bytes, at) => {
  const copy = Uint8Array.from(bytes);
  copy[at] ^= 1;
  return copy;
};
const toB64 = (bytes) => Buffer.from(bytes).toString('base64');
const pemToSpki = (pem) => toB64(Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64'));
const keys = [{key_id: v.key.key_id, spki: pemToSpki(v.key.pem)}];

test('every inclusion proof of trees of 1..33 leaves verifies, as computed in C++', async () => {
  let checked = 0;
  for (const tree of v.trees) {
    const root = b64decode(tree.root);
    for (let i = 0; i < tree.size; i++) {
      const leaf = await js.leafHash(b64decode(tree.leaves[i]));
      const proof = tree.proofs[i].map(b64decode);
      assert.deepEqual(await js.verifyInclusion(i, tree.size, leaf, proof, root), {ok: true},
          `size ${tree.size} index ${i}`);
      checked++;
    }
  }
  assert.equal(checked, 33 * 34 / 2);
});

test('a changed node, leaf, index, size or root fails with the reason', async () => {
  for (const tree of v.trees.filter((t) => t.size >= 2)) {
    const root = b64decode(tree.root);
    for (let i = 0; i < tree.size; i++) {
      const leaf = await js.leafHash(b64decode(tree.leaves[i]));
      const proof = tree.proofs[i].map(b64decode);
      const tampered = proof.map((p, k) => (k === 0 ? flip(p, 7) : p));
      assert.equal((await js.verifyInclusion(i, tree.size, leaf, tampered, root)).reason,
          'verify_root_mismatch');
      assert.equal((await js.verifyInclusion(i, tree.size, flip(leaf, 0), proof, root)).reason,
          'verify_root_mismatch');
      assert.equal((await js.verifyInclusion(i, tree.size, leaf, proof, flip(root, 31))).ok, false);
      const other = (i + 1) % tree.size;
      assert.equal((await js.verifyInclusion(other, tree.size, leaf, proof, root)).ok, false);
      const longer = [...proof, proof[0]];
      assert.equal((await js.verifyInclusion(i, tree.size, leaf, longer, root)).reason,
          'verify_proof_shape');
      assert.equal((await js.verifyInclusion(i, tree.size, leaf, proof.slice(1), root)).ok, false);
      assert.equal((await js.verifyInclusion(tree.size, tree.size, leaf, proof, root)).reason,
          'verify_proof_shape');
    }
  }
});

test('the checkpoint signature verifies with WebCrypto; changed bytes or kind do not', async () => {
  const body = b64decode(v.checkpoint.body);
  assert.deepEqual(await js.verifySignature('checkpoint', keys, 'test-key', body,
      v.checkpoint.signature), {ok: true});
  assert.deepEqual(await js.verifySignature('checkpoint', keys, 'test-key', body,
      v.checkpoint.short_signature), {ok: true}, 'r or s shorter than 32 bytes');
  assert.equal((await js.verifySignature('checkpoint', keys, 'test-key', flip(body, 3),
      v.checkpoint.signature)).reason, 'verify_bad_signature');
  // Domain separation: a checkpoint signature is no receipt signature.
  assert.equal((await js.verifySignature('receipt', keys, 'test-key', body,
      v.checkpoint.signature)).reason, 'verify_bad_signature');
  assert.equal((await js.verifySignature('checkpoint', keys, 'other-key', body,
      v.checkpoint.signature)).reason, 'verify_unknown_key');
  assert.equal((await js.verifySignature('checkpoint', keys, 'test-key', body,
      toB64(Uint8Array.of(0x30, 0x02, 0x02, 0x00)))).reason, 'verify_bad_signature');
});

test('checkpoints, access events and receipts decode as the C++ side wrote them', () => {
  const c = js.decodeCheckpoint(b64decode(v.checkpoint.body));
  assert.equal(c.issuer, 'spiffe://tellonce.local/broker');
  assert.equal(c.treeSize, BigInt(v.checkpoint.tree_size));
  assert.equal(toB64(c.root), v.checkpoint.root);
  assert.equal(c.signedAt, 1764547300n);
  const e = js.decodeAccessEvent(b64decode(v.proof.event_bytes));
  assert.equal(e.consumer, 'tax');
  assert.equal(e.at, js.rfc3339Seconds(v.entry.event.at));
  assert.deepEqual(e.attributes, ['bank.interest_paid']);
  assert.equal(e.basis.consent_id, v.entry.event.basis.consent_id);
  assert.equal(e.outcome, 'ALLOWED');
  assert.equal(e.code, 'RESULT_OK');
  const r = js.decodeReceiptBody(b64decode(v.receipt.body));
  assert.equal(r.record_id, v.consent.consent_id);
  assert.deepEqual(r.attributes, v.consent.attributes);
  assert.equal(r.mode, 'UNTIL_EXPIRY');
});

test('verifyEntry: verified, and failed with the reason for each kind of tampering', async () => {
  const bundle = {proof: v.proof, checkpoint: v.checkpoint};
  const ok = await js.verifyEntry(v.entry, bundle, keys);
  assert.equal(ok.ok, true, `${ok.reason} ${ok.detail}`);
  assert.equal(ok.treeSize, 7n);

  const shownOther = structuredClone(v.entry);
  shownOther.event.consumer = 'benefits';
  assert.deepEqual(await js.verifyEntry(shownOther, bundle, keys),
      {ok: false, reason: 'verify_event_differs', detail: 'consumer'});
  const otherTime = structuredClone(v.entry);
  otherTime.event.at = '2025-12-01T00:00:06Z';
  assert.equal((await js.verifyEntry(otherTime, bundle, keys)).detail, 'at');

  const badPath = structuredClone(bundle);
  badPath.proof.path[1] = toB64(flip(b64decode(badPath.proof.path[1]), 0));
  assert.equal((await js.verifyEntry(v.entry, badPath, keys)).reason, 'verify_root_mismatch');
  const badSig = structuredClone(bundle);
  badSig.checkpoint.signature = toB64(flip(b64decode(badSig.checkpoint.signature), 12));
  assert.equal((await js.verifyEntry(v.entry, badSig, keys)).reason, 'verify_bad_signature');
  const badSize = structuredClone(bundle);
  badSize.proof.tree_size = '8';
  assert.equal((await js.verifyEntry(v.entry, badSize, keys)).reason, 'verify_size_mismatch');
  const badEvent = structuredClone(bundle);
  badEvent.proof.event_bytes = toB64(flip(b64decode(badEvent.proof.event_bytes), 40));
  assert.equal((await js.verifyEntry(v.entry, badEvent, keys)).ok, false);
  assert.equal((await js.verifyEntry(v.entry, {proof: v.proof}, keys)).ok, false);
});

test('verifyReceipt: the receipt matches the consent shown, or says what differs', async () => {
  assert.equal((await js.verifyReceipt(v.consent, v.receipt, keys)).ok, true);
  const other = {...v.consent, consumer: 'benefits'};
  assert.deepEqual(await js.verifyReceipt(other, v.receipt, keys),
      {ok: false, reason: 'verify_receipt_differs', detail: 'controller'});
  const badSig = {...v.receipt, signature: v.checkpoint.signature};
  assert.equal((await js.verifyReceipt(v.consent, badSig, keys)).reason, 'verify_bad_signature');
});
