import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalJson, eventColumns, EVENT_TYPES, type AuditEvent } from './event.js';
import { chainHash, checkCheckpoint, GENESIS, signCheckpoint, keyId } from './chain.js';
import { generateKeyPairSync } from 'node:crypto';

describe('canonicalJson', () => {
  it('sorts keys at every level and drops undefined members', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: undefined, x: 'é' }], c: null } }), '{"a":{"c":null,"d":[1,{"x":"é","z":1}]},"b":1}');
  });

  it('refuses values JSON cannot represent faithfully', () => {
    assert.throws(() => canonicalJson({ a: Number.NaN }), /non-finite/);
    assert.throws(() => canonicalJson({ a: 1n }), /bigint/);
  });

  it('is a fixed point of parse and re-encode, and equal for equal values whatever the key order', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const once = canonicalJson(v);
        assert.equal(canonicalJson(JSON.parse(once)), once);
        if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
          const reversed = Object.fromEntries(Object.entries(v).reverse());
          assert.equal(canonicalJson(reversed), once);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('eventColumns', () => {
  it('indexes the searchable fields, tables as a delimited list', () => {
    const e: AuditEvent = {
      seq: 3,
      ts: 10,
      node: 'n1',
      type: 'statement',
      session: 's',
      identity: { kind: 'agent', name: 'bot', groups: [], on_behalf_of: 'alice' },
      connection: { name: 'prod', environment: 'production' },
      statement: { text: 'select ?', fingerprint: 'f', kind: 'SELECT', tables: ['a', 'public.b'], protocol: 'simple' },
      decision: { action: 'allow', matches: [] },
    };
    assert.deepEqual(eventColumns(e), {
      node: 'n1',
      seq: 3,
      ts: 10,
      type: 'statement',
      session: 's',
      identity: 'bot',
      on_behalf_of: 'alice',
      connection: 'prod',
      environment: 'production',
      kind: 'SELECT',
      tables: ',a,public.b,',
      decision: 'allow',
    });
  });

  it('lists every type once', () => {
    assert.equal(new Set(EVENT_TYPES).size, EVENT_TYPES.length);
  });
});

describe('chain and checkpoints', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const key = { privateKey, publicKey, keyId: keyId(publicKey) };

  it('chains each body onto the previous hash', () => {
    const h1 = chainHash(GENESIS, '{"a":1}');
    const h2 = chainHash(h1, '{"a":2}');
    assert.notDeepEqual(h2, chainHash(GENESIS, '{"a":2}'));
    assert.match(h1, /^[0-9a-f]{64}$/);
  });

  it('signs checkpoints that fail to verify once any field changes', () => {
    const cp = signCheckpoint(key, 'n1', 7, 'ab'.repeat(32), 1000);
    assert.ok(checkCheckpoint(cp, publicKey));
    assert.ok(!checkCheckpoint({ ...cp, seq: 8 }, publicKey));
    assert.ok(!checkCheckpoint({ ...cp, hash: 'cd'.repeat(32) }, publicKey));
    assert.ok(!checkCheckpoint({ ...cp, node: 'n2' }, publicKey));
    const other = generateKeyPairSync('ed25519').publicKey;
    assert.ok(!checkCheckpoint(cp, other));
  });
});
