/** Sensitivity classes and column-name classification. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../errors.js';
import { CLASS_BIT, classMask, isMaskClass, MASK_CLASSES, STRICTNESS, stricter, strictestOf } from './classes.js';
import { createNameClassifier, normalizeColumnName } from './names.js';

describe('masking classes', () => {
  it('orders strictness secret > payment_card > national_id > iban > ... > free_text', () => {
    assert.deepEqual(
      [...MASK_CLASSES].sort((a, b) => STRICTNESS[b] - STRICTNESS[a]),
      ['secret', 'payment_card', 'national_id', 'iban', 'date_of_birth', 'email', 'phone', 'person_name', 'address', 'ip_address', 'free_text'],
    );
  });

  it('strictest wins', () => {
    assert.equal(stricter('email', 'secret'), 'secret');
    assert.equal(stricter('phone', 'email'), 'email');
    assert.equal(stricter(null, 'ip_address'), 'ip_address');
    assert.equal(stricter('free_text', null), 'free_text');
    assert.equal(strictestOf(['address', 'person_name', null, 'iban', 'email']), 'iban');
    assert.equal(strictestOf([]), null);
  });

  it('class bitmasks are distinct bits', () => {
    assert.equal(new Set(Object.values(CLASS_BIT)).size, MASK_CLASSES.length);
    assert.equal(classMask(['email', 'phone']), CLASS_BIT.email | CLASS_BIT.phone);
    assert.ok(isMaskClass('iban'));
    assert.ok(!isMaskClass('ibans'));
    assert.ok(!isMaskClass(3));
  });
});

describe('normalizeColumnName', () => {
  const cases: Array<[string, string]> = [
    ['email', 'email'],
    ['EMail', 'e_mail'],
    ['customerEmail', 'customer_email'],
    ['CustomerEMailAddress', 'customer_e_mail_address'],
    ['IPAddress', 'ip_address'],
    ['clientIP', 'client_ip'],
    ['phone-number', 'phone_number'],
    ['Zip Code', 'zip_code'],
    ['__Last__Name__', 'last_name'],
    ['ipv4Address', 'ipv4_address'],
    ['SSN', 'ssn'],
  ];
  for (const [raw, norm] of cases) it(`${raw} -> ${norm}`, () => assert.equal(normalizeColumnName(raw), norm));
});

describe('NameClassifier defaults', () => {
  const c = createNameClassifier();
  const expected: Record<string, string | null> = {
    // The listed names of each class.
    email: 'email',
    e_mail: 'email',
    email_address: 'email',
    phone: 'phone',
    mobile: 'phone',
    msisdn: 'phone',
    phone_number: 'phone',
    first_name: 'person_name',
    last_name: 'person_name',
    full_name: 'person_name',
    surname: 'person_name',
    given_name: 'person_name',
    ssn: 'national_id',
    national_id: 'national_id',
    tax_id: 'national_id',
    passport_number: 'national_id',
    card_number: 'payment_card',
    cc_number: 'payment_card',
    pan: 'payment_card',
    credit_card: 'payment_card',
    iban: 'iban',
    ip: 'ip_address',
    ip_address: 'ip_address',
    client_ip: 'ip_address',
    remote_addr: 'ip_address',
    dob: 'date_of_birth',
    date_of_birth: 'date_of_birth',
    birth_date: 'date_of_birth',
    birthdate: 'date_of_birth',
    address: 'address',
    street: 'address',
    street_address: 'address',
    postal_code: 'address',
    zip: 'address',
    zip_code: 'address',
    password: 'secret',
    password_hash: 'secret',
    secret: 'secret',
    api_key: 'secret',
    token: 'secret',
    access_token: 'secret',
    refresh_token: 'secret',
    private_key: 'secret',
    client_secret: 'secret',
    // Case, camelCase, run-together words, qualifiers and counters.
    EMAIL: 'email',
    EMail: 'email',
    customerEmail: 'email',
    billing_email: 'email',
    emailAddress: 'email',
    PhoneNumber: 'phone',
    home_phone: 'phone',
    phone2: 'phone',
    firstName: 'person_name',
    lastname: 'person_name',
    FullName: 'person_name',
    ZipCode: 'address',
    shipping_address: 'address',
    address_line1: 'address',
    address_line_2: 'address',
    clientIP: 'ip_address',
    IPAddress: 'ip_address',
    ipv4_address: 'ip_address',
    last_login_ip: 'ip_address',
    stripeApiKey: 'secret',
    DB_PASSWORD: 'secret',
    creditCardNumber: 'payment_card',
    DateOfBirth: 'date_of_birth',
    // Longest phrase wins: email_address is an email, not an address.
    work_email_address: 'email',
    // Not sensitive by name.
    id: null,
    name: null,
    created_at: null,
    email_verified: null,
    phone_verified_at: null,
    token_type: null,
    mac_address: null,
    zipper: null,
    japan: null,
    tip: null,
    '': null,
  };
  for (const [name, cls] of Object.entries(expected)) {
    it(`${JSON.stringify(name)} -> ${cls}`, () => assert.equal(c.classify(name), cls));
  }

  it('answers from its cache consistently', () => {
    for (let i = 0; i < 3; i++) assert.equal(c.classify('customerEmail'), 'email');
  });
});

describe('NameClassifier rules', () => {
  it('rules run before the defaults, first match wins', () => {
    const c = createNameClassifier({
      rules: [
        { pattern: 'notes', class: 'free_text' },
        { pattern: '*_contact', class: 'phone' },
        { pattern: 'email_*', class: 'email' },
        { pattern: 'legacy_email', class: 'none' },
        { pattern: 'address', class: 'secret' },
        { pattern: '*_contact', class: 'email' },
      ],
    });
    assert.equal(c.classify('notes'), 'free_text');
    assert.equal(c.classify('Notes'), 'free_text');
    assert.equal(c.classify('emergency_contact'), 'phone');
    assert.equal(c.classify('emergencyContact'), 'phone'); // glob also sees the normalized name
    assert.equal(c.classify('email_verified'), 'email');
    assert.equal(c.classify('legacy_email'), null); // exempted by class none
    assert.equal(c.classify('address'), 'secret');
    assert.equal(c.classify('phone'), 'phone'); // defaults still apply
  });

  it('? matches one character; regex rules are /source/flags on the raw name', () => {
    const c = createNameClassifier({
      rules: [
        { pattern: 'col?', class: 'free_text' },
        { pattern: '/^x_(ssn|sin)$/i', class: 'national_id' },
      ],
    });
    assert.equal(c.classify('col1'), 'free_text');
    assert.equal(c.classify('col12'), null);
    assert.equal(c.classify('X_SIN'), 'national_id');
    assert.equal(c.classify('x_ssn_2'), 'national_id'); // no rule: the defaults see ..._ssn + a counter
  });

  it('glob metacharacters other than * and ? are literal', () => {
    const c = createNameClassifier({ rules: [{ pattern: 'a.b(c)', class: 'secret' }], defaults: false });
    assert.equal(c.classify('a.b(c)'), 'secret');
    assert.equal(c.classify('axb(c)'), null);
  });

  it('defaults: false turns the built-in phrases off', () => {
    const c = createNameClassifier({ defaults: false, rules: [{ pattern: '*_mail', class: 'email' }] });
    assert.equal(c.classify('email'), null);
    assert.equal(c.classify('password'), null);
    assert.equal(c.classify('user_mail'), 'email');
  });

  it('invalid rules are ConfigErrors at construction', () => {
    assert.throws(() => createNameClassifier({ rules: [{ pattern: '', class: 'email' }] }), ConfigError);
    assert.throws(() => createNameClassifier({ rules: [{ pattern: 'x', class: 'emails' as 'email' }] }), ConfigError);
    assert.throws(() => createNameClassifier({ rules: [{ pattern: '/(/', class: 'email' }] }), ConfigError);
  });
});
