/** Content detectors: valid and invalid examples of every shape, free-text search, properties. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MASK_CLASSES } from './classes.js';
import {
  detectValue,
  findSensitive,
  IBAN_LENGTHS,
  isEmail,
  isIban,
  isIpAddress,
  isJwt,
  isPaymentCard,
  isPhone,
  isSecret,
  isSsn,
  luhnValid,
} from './detectors.js';

const b64url = (s: string): string => Buffer.from(s).toString('base64url');
const JWT = `${b64url('{"alg":"HS256","typ":"JWT"}')}.${b64url('{"sub":"1234567890","name":"John Doe","iat":1516239022}')}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c`;
const GH_TOKEN = `ghp_${'aB3'.repeat(12)}`;
const GHTK = `ghtk_0123456789ab_${'A'.repeat(20)}${'b-_'.repeat(7)}12`;
const PEM = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgwMbRvI0MBZhpF\n-----END RSA PRIVATE KEY-----';

describe('payment cards (Luhn)', () => {
  const valid = ['4111111111111111', '4111 1111 1111 1111', '4111-1111-1111-1111', '5555555555554444', '378282246310005', '6011111111111117', '3530111333300000', '4012888888881881'];
  const invalid = [
    '4111111111111112', // Luhn fails
    '1234567812345678', // Luhn fails
    '0000000000000000', // passes Luhn, but starts with 0 (placeholder)
    '411111111111', // 12 digits
    '41111111111111111111', // 20 digits
    '4111  1111 1111 1111', // two separators
    '4111_1111_1111_1111',
    '-4111111111111111',
  ];
  for (const v of valid) it(`${v} is a card`, () => assert.equal(detectValue(v), 'payment_card'));
  for (const v of invalid) it(`${v} is not a card`, () => assert.ok(!isPaymentCard(v) && detectValue(v) !== 'payment_card'));

  it('every single-digit change breaks a valid number (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 12, maxLength: 18 }), fc.nat(), fc.integer({ min: 1, max: 9 }), (body, pos, delta) => {
        body[0] = (body[0]! % 9) + 1; // issuer digit 1-9
        const digits = body.join('');
        const check = [...Array(10).keys()].find((d) => luhnValid(digits + d))!;
        const card = digits + check;
        assert.ok(isPaymentCard(card), card);
        const i = pos % card.length;
        const changed = card.slice(0, i) + ((Number(card[i]) + delta) % 10) + card.slice(i + 1);
        assert.ok(!luhnValid(changed), changed);
      }),
    );
  });
});

describe('US SSN (SSA rules)', () => {
  const valid = ['123-45-6789', '078-05-1120', '123 45 6789', '123456789', '899-99-9999', '665-01-0001'];
  const invalid = [
    '000-12-3456', // area 000
    '666-12-3456', // area 666
    '900-12-3456', // area 900-999
    '999-99-9999',
    '123-00-4567', // group 00
    '123-45-0000', // serial 0000
    '000000000',
    '123-456789', // mixed separators
    '123 45-6789',
    '12-345-6789',
    '1234567890',
  ];
  for (const v of valid) it(`${v} is an SSN`, () => assert.equal(detectValue(v), 'national_id'));
  for (const v of invalid) it(`${v} is not an SSN`, () => assert.ok(!isSsn(v) && detectValue(v) !== 'national_id'));
});

describe('IBAN (length table, mod-97)', () => {
  const valid = [
    'GB82WEST12345698765432',
    'GB82 WEST 1234 5698 7654 32',
    'DE89370400440532013000',
    'DE89 3704 0044 0532 0130 00',
    'FR1420041010050500013M02606',
    'NL91ABNA0417164300',
    'BE68539007547034',
    'CH9300762011623852957',
    'NO9386011117947',
    'gb82west12345698765432', // case-insensitive as a whole value
  ];
  const invalid = [
    'GB82WEST12345698765433', // checksum
    'GB28WEST12345698765432', // check digits swapped
    'DE8937040044053201300', // one character short for DE
    'DE893704004405320130000', // one too long
    'XX82WEST12345698765432', // unknown country
    'GB82-WEST-1234-5698-7654-32',
  ];
  for (const v of valid) it(`${v} is an IBAN`, () => assert.equal(detectValue(v), 'iban'));
  for (const v of invalid) it(`${v} is not an IBAN`, () => assert.ok(!isIban(v) && detectValue(v) !== 'iban'));

  it('generated IBANs validate and single-character substitutions do not (property)', () => {
    const countries = Object.keys(IBAN_LENGTHS);
    fc.assert(
      fc.property(fc.constantFrom(...countries), fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 30, maxLength: 30 }), fc.nat(), (cc, digits, pos) => {
        const bban = digits.slice(0, IBAN_LENGTHS[cc]! - 4).join('');
        // Check digits: 98 - (BBAN + country + "00") mod 97.
        const numeric = (bban + cc + '00').replace(/[A-Z]/g, (ch) => String(ch.charCodeAt(0) - 55));
        const check = 98 - Number(BigInt(numeric) % 97n);
        const iban = cc + String(check).padStart(2, '0') + bban;
        assert.ok(isIban(iban), iban);
        const i = 4 + (pos % bban.length);
        const changed = iban.slice(0, i) + ((Number(iban[i]) + 1) % 10) + iban.slice(i + 1);
        assert.ok(!isIban(changed), changed);
      }),
    );
  });
});

describe('credentials', () => {
  const valid: Record<string, string> = {
    jwt: JWT,
    'unsigned jwt': `${b64url('{"alg":"none"}')}.${b64url('{}')}.`,
    'aws access key id': 'AKIAIOSFODNN7EXAMPLE',
    'aws temporary key id': 'ASIAY34FZKBOKMUTVV7A',
    'github classic': GH_TOKEN,
    'github oauth': `gho_${'x9'.repeat(18)}`,
    'github server': `ghs_${'Z1'.repeat(18)}`,
    'github fine-grained': `github_pat_11ABCDEFG0${'a_B2'.repeat(18)}`,
    slack: 'xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx',
    'stripe secret': `sk_live_${'4eC39HqLyjWDarjtT1zdp7dc'}`,
    'stripe restricted': `rk_live_${'51H8aBcDeFgHiJkLmNoP'}`,
    gatehouse: GHTK,
    pem: PEM,
    'pem pkcs8': '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----',
  };
  for (const [what, v] of Object.entries(valid)) it(`${what} is a secret`, () => assert.equal(detectValue(v), 'secret'));

  const invalid: Record<string, string> = {
    'random dots': 'foo.bar.baz',
    'version number': '1.2.3',
    'hostname': 'www.example.com',
    'jwt-shaped, header not JSON': `${b64url('not json at all')}.${b64url('{}')}.sig`,
    'jwt-shaped, header without alg': `${b64url('{"typ":"JWT"}')}.${b64url('{}')}.sig`,
    'jwt-shaped, header an array': `${b64url('["alg"]')}.${b64url('{}')}.sig`,
    'four segments': `${JWT}.x`,
    'aws too short': 'AKIAIOSFODNN7EXAMPL',
    'aws lower case': 'AKIAiosfodnn7example',
    'github too short': 'ghp_abc123',
    'stripe test key': 'sk_test_4eC39HqLyjWDarjtT1zdp7dc',
    'gatehouse wrong id': `ghtk_0123456789ag_${'A'.repeat(43)}`,
    'public key': '-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----',
  };
  for (const [what, v] of Object.entries(invalid)) it(`${what} is not a secret`, () => assert.ok(!isSecret(v) && detectValue(v) !== 'secret'));

  it('isJwt needs the JSON header', () => {
    assert.ok(isJwt(JWT));
    assert.ok(!isJwt('eyJhbGciOiJIUzI1NiJ9'));
    assert.ok(!isJwt('a.b.c'));
  });
});

describe('email', () => {
  for (const v of ['alice@example.com', 'a.b+tag@sub.example.co.uk', "o'brien@example.ie", 'josé@exämple.de', 'x@xn--p1ai.xn--p1ai', 'ALICE@EXAMPLE.COM']) {
    it(`${v} is an email`, () => assert.equal(detectValue(v), 'email'));
  }
  for (const v of ['alice@', '@example.com', 'alice@example', 'a b@example.com', 'alice@@example.com', 'alice@example..com', '.alice@example.com', 'alice@-example.com', `${'a'.repeat(65)}@example.com`]) {
    it(`${v} is not an email`, () => assert.ok(!isEmail(v) && detectValue(v) === null));
  }
});

describe('IP addresses', () => {
  for (const v of ['192.168.0.1', '10.0.0.0/8', '8.8.8.8', '2001:db8::1', 'fe80::1', '::ffff:192.0.2.1', '2001:db8::/32']) {
    it(`${v} is an IP address`, () => assert.equal(detectValue(v), 'ip_address'));
  }
  for (const v of ['256.1.1.1', '1.2.3', '12:30:45', '1.2.3.4/33x', 'cafe:babe', 'ab:cd:ef:01:23:45']) {
    it(`${v} is not an IP address`, () => assert.ok(!isIpAddress(v) && detectValue(v) !== 'ip_address'));
  }
});

describe('phone numbers', () => {
  const valid = [
    '+14155552671', // E.164
    '+1 415 555 2671',
    '+44 20 7946 0958',
    '(415) 555-2671',
    '415-555-2671',
    '415.555.2671',
    '020 7946 0958', // 10+ digits with spaces
    '555-2671', // 7 digits with a dash
    '4155552671', // 10 bare digits count (documented: ids this long are rare, numbers are not)
  ];
  const invalid = [
    '123456', // too few digits
    '12345678', // bare, fewer than 10 digits: an id, not a phone
    '555 2671', // spaces only and fewer than 10 digits
    '2024-01-15', // a date
    '15.01.2024', // a date
    '12345.678', // a decimal
    '1.234.567', // thousands grouping
    '1 234 567 890', // thousands grouping
    '192.168.100.200', // an IP address
    '1234567890123456', // 16 digits
    '+1234', // too short
    '415--555--2671x',
  ];
  for (const v of valid) it(`${v} is a phone number`, () => assert.equal(detectValue(v), 'phone'));
  for (const v of invalid) it(`${v} is not a phone number`, () => assert.ok(!isPhone(v) && detectValue(v) !== 'phone'));
});

describe('detectValue', () => {
  it('ignores surrounding whitespace and short or plain values', () => {
    assert.equal(detectValue('  alice@example.com\n'), 'email');
    for (const v of ['', 'abc', 'hello world', 'Jonathan Q. Appleby', '42', 'true', '2024-01-15 10:30:00']) assert.equal(detectValue(v), null, v);
  });

  it('picks the stricter class for an ambiguous shape: 9 digits are an SSN, not a phone', () => {
    assert.equal(detectValue('123456789'), 'national_id');
    assert.equal(detectValue('123-45-6789'), 'national_id');
  });

  it('a very long value is only checked for a PEM block', () => {
    assert.equal(detectValue(`${PEM}${' x'.repeat(10000)}`), 'secret');
    assert.equal(detectValue(`alice@example.com${'x'.repeat(20000)}`), null);
  });
});

describe('findSensitive', () => {
  const text =
    'Contact alice@example.com or +1 415-555-2671. Card 4111 1111 1111 1111, SSN 123-45-6789, ' +
    `IBAN DE89 3704 0044 0532 0130 00, from 10.0.0.1 and fe80::1, key AKIAIOSFODNN7EXAMPLE, jwt ${JWT} end.`;
  const found = findSensitive(text).map((m) => [text.slice(m.start, m.end), m.cls]);

  it('finds every run with its class, in order', () => {
    assert.deepEqual(found, [
      ['alice@example.com', 'email'],
      ['+1 415-555-2671', 'phone'],
      ['4111 1111 1111 1111', 'payment_card'],
      ['123-45-6789', 'national_id'],
      ['DE89 3704 0044 0532 0130 00', 'iban'],
      ['10.0.0.1', 'ip_address'],
      ['fe80::1', 'ip_address'],
      ['AKIAIOSFODNN7EXAMPLE', 'secret'],
      [JWT, 'secret'],
    ]);
  });

  it('finds nothing in prose with ordinary numbers, dates, versions and UUIDs', () => {
    const prose =
      'Order 1182 shipped on 2024-01-15 at 10:30:45, total 1,234.56 EUR (12345.678 units), ' +
      'version 1.2.3, build 20240115, uuid 550e8400-e29b-41d4-a716-446655440000, see std::vector. ' +
      'Invalid card 4111 1111 1111 1112 and SSN 666-12-3456, IBAN GB82WEST12345698765433, foo.bar.baz.';
    assert.deepEqual(findSensitive(prose), []);
  });

  it('keeps the stricter class where runs overlap', () => {
    // The SSN is also phone-shaped; the card number contains SSN-like and phone-like runs.
    const t = 'ssn 123-45-6789; card 4111-1111-1111-1111';
    assert.deepEqual(
      findSensitive(t).map((m) => m.cls),
      ['national_id', 'payment_card'],
    );
  });

  it('finds a PEM block, to the end of the text when it is truncated', () => {
    const t = `key: ${PEM} (rotated)`;
    assert.deepEqual(findSensitive(t), [{ start: 5, end: 5 + PEM.length, cls: 'secret' }]);
    const cut = 'key: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU';
    assert.deepEqual(findSensitive(cut), [{ start: 5, end: cut.length, cls: 'secret' }]);
  });

  it('emails at sentence ends and next to punctuation', () => {
    const t = 'Write to <bob.smith@example.org>, or carol@example.com.';
    assert.deepEqual(
      findSensitive(t).map((m) => t.slice(m.start, m.end)),
      ['bob.smith@example.org', 'carol@example.com'],
    );
  });

  it('restricts the search to the given classes', () => {
    assert.deepEqual(
      findSensitive(text, ['email', 'secret']).map((m) => m.cls),
      ['email', 'secret', 'secret'],
    );
    assert.deepEqual(findSensitive(text, []), []);
  });

  it('runs are sorted, non-overlapping and inside the text (property)', () => {
    const pieces = fc.constantFrom(
      ' ',
      'alice@example.com',
      '4111 1111 1111 1111',
      '123-45-6789',
      '+1 415 555 2671',
      'GB82WEST12345698765432',
      '10.1.2.3',
      '::1',
      'AKIAIOSFODNN7EXAMPLE',
      JWT,
      '-',
      '.',
      '@',
      '1',
      'word',
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(pieces, fc.string({ unit: 'binary', maxLength: 12 })), { maxLength: 20 }), (parts) => {
        const t = parts.join('');
        const ms = findSensitive(t);
        let last = 0;
        for (const m of ms) {
          assert.ok(m.start >= last && m.end > m.start && m.end <= t.length, JSON.stringify({ t, ms }));
          assert.ok((MASK_CLASSES as readonly string[]).includes(m.cls));
          last = m.end;
        }
        detectValue(t); // never throws
      }),
      { numRuns: 500 },
    );
  });

  it('stays fast on long adversarial runs (no catastrophic backtracking)', () => {
    const started = process.hrtime.bigint();
    for (const t of ['a:'.repeat(20000), '1-'.repeat(20000), 'a@'.repeat(20000), `ey${'A'.repeat(20000)}.`.repeat(2), '1 '.repeat(20000)]) findSensitive(t);
    assert.ok(Number(process.hrtime.bigint() - started) / 1e6 < 2000);
  });
});
