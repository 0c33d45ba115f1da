/**
 * Body decoders the proxy inspects: startup parameters, ErrorResponse fields, the SQLSTATE
 * shortcut and CommandComplete row counts. Random bytes only ever give ProtocolError.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from './errors.js';
import { commandRows, errorCode, parseErrorFields, parseStartupParams, rewriteErrorText } from './fields.js';
import * as messages from './messages.js';

const isProtocolError = (err: unknown): boolean => {
  assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${String(err)}`);
  return true;
};

/** A CommandComplete body ("tag\0") placed between unrelated bytes, with its range. */
function commandComplete(tag: string, before = Buffer.from('99 '), after = Buffer.from(' 77')): [Buffer, number, number] {
  const body = Buffer.from(`${tag}\0`);
  return [Buffer.concat([before, body, after]), before.length, before.length + body.length];
}

describe('parseStartupParams', () => {
  it('reads the name/value pairs after the protocol code', () => {
    const packet = messages.startupMessage({ user: 'alice', database: 'dev', application_name: 'psql', options: '-c x=1' });
    const body = packet.subarray(4);
    const params = parseStartupParams(body, 4);
    assert.deepEqual(Object.fromEntries(params), { user: 'alice', database: 'dev', application_name: 'psql', options: '-c x=1' });
  });

  it('reads UTF-8 values and empty values', () => {
    const body = Buffer.concat([Buffer.alloc(4), Buffer.from('user\0zoë\0database\0\0\0')]);
    assert.deepEqual(Object.fromEntries(parseStartupParams(body, 4)), { user: 'zoë', database: '' });
  });

  it('an empty list is just the terminator', () => {
    assert.equal(parseStartupParams(Buffer.from([0, 0, 0, 0, 0]), 4).size, 0);
  });

  for (const [what, text] of [
    ['no terminator at all', ''],
    ['no final NUL', 'user\0alice\0'],
    ['a name without a value', 'user\0'],
    ['an unterminated value', 'user\0alice'],
    ['an unterminated name', 'user'],
  ] as const) {
    it(`rejects ${what}`, () => {
      const body = Buffer.concat([Buffer.alloc(4), Buffer.from(text)]);
      assert.throws(() => parseStartupParams(body, 4), isProtocolError);
    });
  }

  it('does not read a terminator that lies outside the body', () => {
    const backing = Buffer.from('\0\0\0\0user\0alice\0\0');
    const body = backing.subarray(0, backing.length - 1); // the final NUL is outside
    assert.throws(() => parseStartupParams(body, 4), isProtocolError);
  });

  it('fuzz: random bodies give a map or ProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(8), (bytes, from) => {
        const body = Buffer.from(bytes);
        try {
          const params = parseStartupParams(body, Math.min(from, body.length));
          assert.ok(params instanceof Map);
        } catch (err) {
          isProtocolError(err);
        }
      }),
      { seed: 1, numRuns: 1000 },
    );
  });

  it('property: round trip through startupMessage', () => {
    const key = fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !s.includes('\0'));
    const value = fc.string({ maxLength: 20 }).filter((s) => !s.includes('\0'));
    fc.assert(
      fc.property(fc.dictionary(key, value, { maxKeys: 6 }), (params) => {
        const plain = Object.fromEntries(Object.entries(params));
        const body = messages.startupMessage(plain).subarray(4);
        assert.deepEqual(Object.fromEntries(parseStartupParams(body, 4)), plain);
      }),
      { seed: 2, numRuns: 200 },
    );
  });
});

describe('parseErrorFields / errorCode', () => {
  const e = messages.errorResponse({ severity: 'ERROR', code: '42P01', message: 'relation "t" does not exist', detail: 'd', hint: 'h' });
  const start = 5;
  const end = e.length;

  it('decodes every field of an ErrorResponse body', () => {
    const f = parseErrorFields(e, start, end);
    assert.deepEqual(Object.fromEntries(f), { S: 'ERROR', V: 'ERROR', C: '42P01', M: 'relation "t" does not exist', D: 'd', H: 'h' });
  });

  it('errorCode finds the SQLSTATE without decoding the rest', () => {
    assert.equal(errorCode(e, start, end), '42P01');
  });

  it('errorCode is undefined without a C field', () => {
    const body = Buffer.from('SERROR\0Mboom\0\0');
    assert.equal(errorCode(body, 0, body.length), undefined);
    assert.equal(errorCode(Buffer.alloc(0), 0, 0), undefined);
  });

  it('errorCode does not read past the end of its range', () => {
    const body = Buffer.from('SERROR\0C42501\0\0');
    // Range stops inside the C field: the NUL that ends it is outside.
    assert.equal(errorCode(body, 0, 10), undefined);
    assert.equal(errorCode(body, 0, 7), undefined);
  });

  it('parseErrorFields rejects a body that is not terminated', () => {
    assert.throws(() => parseErrorFields(Buffer.from('SERROR\0'), 0, 7), isProtocolError);
    assert.throws(() => parseErrorFields(Buffer.from('SERROR'), 0, 6), isProtocolError);
    assert.throws(() => parseErrorFields(Buffer.from('SERROR\0\0'), 0, 6), isProtocolError);
  });

  it('an empty field list is just the terminator', () => {
    assert.equal(parseErrorFields(Buffer.from([0]), 0, 1).size, 0);
  });

  it('fuzz: random bodies give a map or ProtocolError; errorCode never throws and agrees', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 60 }), fc.nat(10), fc.nat(10), (bytes, a, b) => {
        const buf = Buffer.from(bytes);
        const s = Math.min(a, buf.length);
        const en = Math.max(s, buf.length - b);
        const code = errorCode(buf, s, en);
        assert.ok(code === undefined || typeof code === 'string');
        let fields: Map<string, string> | undefined;
        try {
          fields = parseErrorFields(buf, s, en);
        } catch (err) {
          isProtocolError(err);
        }
        // On a well-formed ASCII body the two agree (the first C field; later ones overwrite in the map).
        if (fields && bytes.every((x) => x < 0x80)) {
          const firstC = firstField(buf, s, en, 0x43);
          assert.equal(code, firstC);
        }
      }),
      { seed: 3, numRuns: 1000 },
    );
  });

  it('property: round trip through errorResponse', () => {
    const text = fc.string({ maxLength: 30 }).filter((s) => !s.includes('\0'));
    const sqlstate = fc.stringMatching(/^[0-9A-Z]{5}$/);
    fc.assert(
      fc.property(sqlstate, text, text, (code, message, detail) => {
        const f = messages.errorResponse({ severity: 'FATAL', code, message, detail });
        const fields = parseErrorFields(f, 5, f.length);
        assert.equal(fields.get('C'), code);
        assert.equal(fields.get('M'), message);
        if (detail) assert.equal(fields.get('D'), detail);
        assert.equal(errorCode(f, 5, f.length), code);
      }),
      { seed: 4, numRuns: 200 },
    );
  });
});

/** Reference decoder for the fuzz test: the value of the first field of `type`. */
function firstField(buf: Buffer, start: number, end: number, type: number): string | undefined {
  let p = start;
  while (p < end && buf[p] !== 0) {
    const nul = buf.indexOf(0, p + 1);
    if (nul < 0 || nul >= end) return undefined;
    if (buf[p] === type) return buf.toString('latin1', p + 1, nul);
    p = nul + 1;
  }
  return undefined;
}

describe('commandRows', () => {
  for (const [tag, rows] of [
    ['SELECT 5', 5],
    ['INSERT 0 7', 7],
    ['CREATE TABLE', -1],
    ['UPDATE 0', 0],
    ['COPY 123', 123],
    ['DELETE 42', 42],
    ['MERGE 3', 3],
    ['FETCH 100', 100],
    ['MOVE 9', 9],
    ['SELECT 4294967296', 4294967296],
    ['BEGIN', -1],
    ['5', -1],
    ['', -1],
    ['SELECT ', -1],
    ['SET 5x', -1],
  ] as const) {
    it(`"${tag}" -> ${rows}`, () => {
      const [buf, s, e] = commandComplete(tag);
      assert.equal(commandRows(buf, s, e), rows);
    });
  }

  it('works without the trailing NUL in range', () => {
    const buf = Buffer.from('SELECT 12');
    assert.equal(commandRows(buf, 0, buf.length), 12);
  });

  it('property: "<WORD> [0 ]<n>" gives n', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Z]{1,8}( 0)?$/), fc.nat(), (word, n) => {
        const [buf, s, e] = commandComplete(`${word} ${n}`);
        assert.equal(commandRows(buf, s, e), n);
      }),
      { seed: 5, numRuns: 300 },
    );
  });

  it('fuzz: never throws and never reads outside its range', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 30 }), (bytes) => {
        const [buf, s, e] = commandComplete(Buffer.from(bytes).toString('latin1'), Buffer.from('1 '), Buffer.from(' 2'));
        const n = commandRows(buf, s, e);
        assert.ok(Number.isInteger(n) && n >= -1);
      }),
      { seed: 6, numRuns: 500 },
    );
  });
});

describe('rewriteErrorText', () => {
  const frame = messages.errorResponse({ severity: 'ERROR', code: '22P02', message: 'invalid input syntax for type integer: "alice@example.com"', detail: 'value "alice@example.com"', hint: 'none' });

  it('rewrites message, detail, hint and context, keeps every other field and frames the result', () => {
    const out = rewriteErrorText(frame, 0, frame.length, (t) => t.replaceAll('alice@example.com', 'a****@example.com'))!;
    assert.equal(out.readInt32BE(1), out.length - 1);
    const f = parseErrorFields(out, 5, out.length);
    assert.equal(f.get('M'), 'invalid input syntax for type integer: "a****@example.com"');
    assert.equal(f.get('D'), 'value "a****@example.com"');
    assert.equal(f.get('C'), '22P02');
    assert.equal(f.get('S'), 'ERROR');
    assert.equal(f.get('H'), 'none');
  });

  it('returns null when nothing changes, and rewrites any UTF-8 text into a well-formed frame', () => {
    assert.equal(rewriteErrorText(frame, 0, frame.length, (t) => t), null);
    fc.assert(
      fc.property(fc.string(), fc.string(), (message, replacement) => {
        const original = message.replaceAll('\0', '');
        const next = replacement.replaceAll('\0', '') + '!';
        const f0 = messages.errorResponse({ severity: 'ERROR', code: 'XX000', message: original });
        const out = rewriteErrorText(f0, 0, f0.length, () => next);
        // The same text is no change (fast-check once found message "!" and replacement "").
        if (next === original) return assert.equal(out, null);
        assert.ok(out !== null);
        assert.equal(parseErrorFields(out, 5, out.length).get('M'), next);
      }),
    );
  });
});

