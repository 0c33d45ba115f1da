/**
 * HandshakeReader: untagged startup packets and tagged handshake messages, whole or in pieces,
 * with the server's length bounds; random bytes only ever give ProtocolError or "incomplete".
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from './errors.js';
import { HandshakeReader, MAX_HANDSHAKE_MESSAGE, MAX_STARTUP_PACKET } from './handshake-reader.js';
import * as messages from './messages.js';

/** Untagged packet: length(4, includes itself) | body. */
function untagged(body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(4 + b.length);
  out.writeInt32BE(4 + b.length, 0);
  b.copy(out, 4);
  return out;
}

/** Tagged message: tag(1) | length(4) | body. */
function tagged(tag: string, body: Buffer | string = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + b.length);
  out[0] = tag.charCodeAt(0);
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n | 0);
  return b;
}

const isProtocolError = (err: unknown): boolean => {
  assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${String(err)}`);
  return true;
};

describe('HandshakeReader', () => {
  describe('untagged packets', () => {
    const startup = messages.startupMessage({ user: 'alice', database: 'dev' });

    it('returns the body after the length of a whole startup packet', () => {
      const r = new HandshakeReader();
      r.push(startup);
      const body = r.nextUntagged();
      assert.ok(body);
      assert.deepEqual(body, startup.subarray(4));
      assert.equal(body.readInt32BE(0), 196608);
      assert.equal(r.buffered, 0);
      assert.equal(r.nextUntagged(), null);
    });

    it('returns null until the packet is complete, at every split offset', () => {
      for (let cut = 0; cut <= startup.length; cut++) {
        const r = new HandshakeReader();
        r.push(startup.subarray(0, cut));
        if (cut < startup.length) assert.equal(r.nextUntagged(), null, `cut ${cut}`);
        r.push(startup.subarray(cut));
        if (cut === startup.length) assert.equal(r.buffered, startup.length);
        assert.deepEqual(r.nextUntagged(), startup.subarray(4));
      }
    });

    it('byte by byte', () => {
      const r = new HandshakeReader();
      let got: Buffer | null = null;
      for (let i = 0; i < startup.length; i++) {
        r.push(startup.subarray(i, i + 1));
        got = r.nextUntagged();
        if (i < startup.length - 1) assert.equal(got, null);
      }
      assert.deepEqual(got, startup.subarray(4));
    });

    it('reads several packets pushed together (SSLRequest then startup)', () => {
      const r = new HandshakeReader();
      r.push(Buffer.concat([messages.SSL_REQUEST, startup]));
      assert.equal(r.nextUntagged()!.readInt32BE(0), 80877103);
      assert.deepEqual(r.nextUntagged(), startup.subarray(4));
      assert.equal(r.nextUntagged(), null);
    });

    it('accepts the bounds 8 and MAX_STARTUP_PACKET', () => {
      const r = new HandshakeReader();
      r.push(untagged(int32(1234)));
      assert.equal(r.nextUntagged()!.length, 4);
      const big = untagged(Buffer.alloc(MAX_STARTUP_PACKET - 4, 1));
      r.push(big);
      assert.equal(r.nextUntagged()!.length, MAX_STARTUP_PACKET - 4);
    });

    for (const length of [7, 4, 0, -1, -0x80000000, MAX_STARTUP_PACKET + 1, 0x7fffffff]) {
      it(`rejects a length of ${length} as soon as the length is known`, () => {
        const r = new HandshakeReader();
        r.push(int32(length));
        assert.throws(() => r.nextUntagged(), isProtocolError);
      });
    }

    it('needs 4 bytes to decide', () => {
      const r = new HandshakeReader();
      r.push(Buffer.from([0xff, 0xff, 0xff]));
      assert.equal(r.nextUntagged(), null);
    });
  });

  describe('tagged messages', () => {
    it('returns tag and body, whole or split at every offset', () => {
      const msg = messages.saslInitialResponse('SCRAM-SHA-256', 'n,,n=,r=abc');
      const next = tagged('Q', 'select 1\0');
      const both = Buffer.concat([msg, next]);
      for (let cut = 0; cut <= both.length; cut++) {
        const r = new HandshakeReader();
        r.push(both.subarray(0, cut));
        const out: Array<{ tag: number; body: Buffer }> = [];
        for (let m = r.next(); m; m = r.next()) out.push(m);
        r.push(both.subarray(cut));
        for (let m = r.next(); m; m = r.next()) out.push(m);
        assert.equal(out.length, 2, `cut ${cut}`);
        assert.equal(out[0]!.tag, 0x70);
        assert.deepEqual(out[0]!.body, msg.subarray(5));
        assert.equal(out[1]!.tag, 0x51);
        assert.deepEqual(out[1]!.body, Buffer.from('select 1\0'));
      }
    });

    it('a body-less message (length 4) has an empty body', () => {
      const r = new HandshakeReader();
      r.push(tagged('S'));
      const m = r.next();
      assert.equal(m!.tag, 0x53);
      assert.equal(m!.body.length, 0);
    });

    it('needs 5 bytes to decide', () => {
      const r = new HandshakeReader();
      r.push(Buffer.from([0x70, 0x7f, 0xff, 0xff]));
      assert.equal(r.next(), null);
    });

    for (const length of [3, 0, -1, -0x80000000, MAX_HANDSHAKE_MESSAGE + 1, 0x7fffffff]) {
      it(`rejects a length of ${length}`, () => {
        const r = new HandshakeReader();
        r.push(Buffer.concat([Buffer.from('p'), int32(length)]));
        assert.throws(() => r.next(), isProtocolError);
      });
    }

    it('honours a custom maximum', () => {
      const r = new HandshakeReader();
      r.push(tagged('R', Buffer.alloc(96)));
      assert.throws(() => r.next(99), isProtocolError);
      const r2 = new HandshakeReader();
      r2.push(tagged('R', Buffer.alloc(96)));
      assert.equal(r2.next(100)!.body.length, 96);
      const r3 = new HandshakeReader();
      r3.push(tagged('R', Buffer.alloc(MAX_HANDSHAKE_MESSAGE)));
      assert.equal(r3.next(1 << 20)!.body.length, MAX_HANDSHAKE_MESSAGE);
    });
  });

  describe('takeRest', () => {
    it('returns what follows the handshake and empties the reader', () => {
      const r = new HandshakeReader();
      const extra = Buffer.concat([tagged('Q', 'select 1\0'), Buffer.from([0x50, 0, 0])]);
      r.push(Buffer.concat([tagged('p', 'proof'), extra.subarray(0, 4)]));
      r.push(extra.subarray(4));
      assert.deepEqual(r.next()!.body, Buffer.from('proof'));
      assert.deepEqual(r.takeRest(), extra);
      assert.equal(r.buffered, 0);
      assert.equal(r.takeRest().length, 0);
      assert.equal(r.next(), null);
    });

    it('is empty on a fresh reader', () => {
      assert.equal(new HandshakeReader().takeRest().length, 0);
    });
  });

  describe('fuzz', () => {
    it('random bytes in random chunks give messages, null or ProtocolError, and always terminate', () => {
      fc.assert(
        fc.property(
          fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 10 }),
          fc.array(fc.constantFrom('untagged', 'tagged', 'small'), { minLength: 1, maxLength: 5 }),
          (chunks, modes) => {
            const r = new HandshakeReader();
            let total = 0;
            let consumed = 0;
            let calls = 0;
            for (const c of chunks) {
              r.push(Buffer.from(c));
              total += c.length;
              for (;;) {
                assert.ok(++calls < 10_000, 'the reader does not loop');
                const mode = modes[calls % modes.length]!;
                let got: Buffer | { body: Buffer } | null;
                try {
                  got = mode === 'untagged' ? r.nextUntagged() : r.next(mode === 'small' ? 16 : undefined);
                } catch (err) {
                  isProtocolError(err);
                  return;
                }
                if (got === null) break;
                // Each message consumes its header plus its body.
                consumed += Buffer.isBuffer(got) ? got.length + 4 : got.body.length + 5;
                assert.equal(r.buffered, total - consumed);
              }
            }
            assert.equal(r.takeRest().length, total - consumed);
          },
        ),
        { seed: 42, numRuns: 500 },
      );
    });

    it('valid message streams survive arbitrary chunking', () => {
      const msgArb = fc.tuple(fc.constantFrom('p', 'Q', 'S', 'R'), fc.uint8Array({ maxLength: 50 })).map(([t, b]) => tagged(t, Buffer.from(b)));
      fc.assert(
        fc.property(fc.array(msgArb, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), (msgs, cuts) => {
          const input = Buffer.concat(msgs);
          const offsets = cuts.map((c) => c % (input.length + 1)).sort((a, b) => a - b);
          const r = new HandshakeReader();
          const out: Buffer[] = [];
          let prev = 0;
          for (const off of [...offsets, input.length]) {
            r.push(input.subarray(prev, off));
            prev = off;
            for (let m = r.next(); m; m = r.next()) out.push(tagged(String.fromCharCode(m.tag), m.body));
          }
          assert.deepEqual(Buffer.concat(out), input);
          assert.equal(r.buffered, 0);
        }),
        { seed: 43, numRuns: 200 },
      );
    });
  });
});
