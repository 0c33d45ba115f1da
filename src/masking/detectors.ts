/**
 * Content detectors: does a value (or a run inside free text) look like an email, a payment
 * card, a US SSN, an IBAN, a credential, an IP address or a phone number? Every regular
 * expression is compiled once at load; each detector runs a cheap character test before any
 * regex, and checksums (Luhn, mod-97) or structural checks (SSA rules, JSON header of a JWT,
 * node:net isIP) confirm a shape before it counts. The exact rules are in docs/masking.md.
 *
 * Detectors never look for person names, postal addresses or dates of birth: no content rule
 * tells those apart from other words and dates; they come from column names and configuration.
 */
import { isIP } from 'node:net';
import { ALL_CLASSES_MASK, CLASS_BIT, classMask, STRICTNESS, type MaskClass } from './classes.js';

/** A sensitive run inside a text: UTF-16 offsets [start, end) into the string searched. */
export interface SensitiveMatch {
  /** Offset of the first UTF-16 unit of the run. */
  readonly start: number;
  /** Offset just past the run. */
  readonly end: number;
  /** What the run is. */
  readonly cls: MaskClass;
}

// ---------------------------------------------------------------------------------------------
// Character helpers (charCode tests: cheaper than a regex per character).

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isUpper = (c: number): boolean => c >= 0x41 && c <= 0x5a;
const isAsciiAlnum = (c: number): boolean => isDigit(c) || isUpper(c) || (c >= 0x61 && c <= 0x7a);
/** ASCII letter: clearing bit 5 maps a-z onto A-Z. */
const isAsciiLetter = (c: number): boolean => c < 0x80 && isUpper(c & 0xdf);
/** Value of an ASCII hex digit, or -1. */
const hexValueOf = (c: number): number => (isDigit(c) ? c - 0x30 : (c | 0x20) >= 0x61 && (c | 0x20) <= 0x66 ? (c | 0x20) - 0x57 : -1);
const isWs = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);

/** The string without surrounding whitespace; allocates only when there is some. */
function trimmed(text: string): string {
  const n = text.length;
  return n > 0 && (isWs(text.charCodeAt(0)) || isWs(text.charCodeAt(n - 1))) ? text.trim() : text;
}

// ---------------------------------------------------------------------------------------------
// Payment cards: 13-19 digits, single spaces or dashes between digits, first digit 1-9, Luhn.

/** Luhn checksum over the digits of t[start, end), skipping spaces and dashes; false on other characters. */
export function luhnValid(t: string, start = 0, end = t.length): boolean {
  let sum = 0;
  let double = false;
  for (let i = end - 1; i >= start; i--) {
    const c = t.charCodeAt(i);
    if (c === 0x20 || c === 0x2d) continue;
    if (!isDigit(c)) return false;
    let d = c - 0x30;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** Whether t[start, end) is a payment card number (shape and Luhn; see docs/masking.md). */
export function isPaymentCard(t: string, start = 0, end = t.length): boolean {
  let digits = 0;
  let prevDigit = false;
  for (let i = start; i < end; i++) {
    const c = t.charCodeAt(i);
    if (isDigit(c)) {
      digits++;
      prevDigit = true;
    } else if ((c === 0x20 || c === 0x2d) && prevDigit) {
      prevDigit = false; // one separator between two digits
    } else {
      return false;
    }
  }
  // The first digit is an issuer (major industry) digit: 0 is not used by card networks, and the
  // all-zero placeholder passes Luhn.
  return prevDigit && digits >= 13 && digits <= 19 && t.charCodeAt(start) !== 0x30 && luhnValid(t, start, end);
}

// ---------------------------------------------------------------------------------------------
// US Social Security numbers (SSA rules): AAA-GG-SSSS, AAA GG SSSS or 9 bare digits.

const SSN_WHOLE = /^(\d{3})([- ]?)(\d{2})\2(\d{4})$/;
const SSN_FREE = /(?<![\w.-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\w]|[.-]\d)/g;

/** The SSA rules: area not 000, 666 or 900-999; group not 00; serial not 0000. */
export function ssnPartsValid(area: string, group: string, serial: string): boolean {
  return area !== '000' && area !== '666' && area.charCodeAt(0) !== 0x39 && group !== '00' && serial !== '0000';
}

/** Whether the text is a US SSN (AAA-GG-SSSS, AAA GG SSSS or 9 digits) that obeys the SSA rules. */
export function isSsn(text: string): boolean {
  if (text.length < 9 || text.length > 11) return false;
  const m = SSN_WHOLE.exec(text);
  return m !== null && ssnPartsValid(m[1]!, m[3]!, m[4]!);
}

// ---------------------------------------------------------------------------------------------
// IBAN: country code, check digits, BBAN of the country's length, mod-97 == 1.

/** IBAN length per country (SWIFT IBAN registry) for the countries whose IBANs are recognized. */
export const IBAN_LENGTHS: Readonly<Record<string, number>> = Object.freeze({
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, BY: 28, CH: 21,
  CR: 22, CY: 28, CZ: 24, DE: 22, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FO: 18, FR: 27,
  GB: 22, GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26,
  IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20, LU: 20, LV: 21, LY: 25, MC: 27,
  MD: 24, ME: 22, MK: 19, MR: 27, MT: 31, MU: 30, NL: 18, NO: 15, PK: 24, PL: 28, PS: 29, PT: 25,
  QA: 29, RO: 24, RS: 22, SA: 24, SC: 31, SD: 18, SE: 24, SI: 19, SK: 24, SM: 27, ST: 25, SV: 28,
  TL: 23, TN: 24, TR: 26, UA: 29, VA: 22, VG: 24, XK: 20,
});

/**
 * If an IBAN starts at t[start] (upper-case letters and digits, single spaces allowed between
 * characters), the offset just past it; otherwise -1. Checks country length and mod-97.
 */
function ibanAt(t: string, start: number, end: number): number {
  if (end - start < 15) return -1;
  const c0 = t.charCodeAt(start);
  const c1 = t.charCodeAt(start + 1);
  if (!isUpper(c0) || !isUpper(c1) || !isDigit(t.charCodeAt(start + 2)) || !isDigit(t.charCodeAt(start + 3))) return -1;
  const len = IBAN_LENGTHS[String.fromCharCode(c0, c1)];
  if (len === undefined) return -1;
  // mod-97 of BBAN + country + check digits, letters as 10..35, computed incrementally.
  let rem = 0;
  let count = 4;
  let i = start + 4;
  let prevSpace = false;
  for (; i < end && count < len; i++) {
    const c = t.charCodeAt(i);
    if (c === 0x20 && !prevSpace) {
      prevSpace = true;
      continue;
    }
    if (isDigit(c)) rem = (rem * 10 + (c - 0x30)) % 97;
    else if (isUpper(c)) rem = (rem * 100 + (c - 55)) % 97;
    else return -1;
    prevSpace = false;
    count++;
  }
  if (count !== len || prevSpace) return -1;
  rem = (rem * 100 + (c0 - 55)) % 97;
  rem = (rem * 100 + (c1 - 55)) % 97;
  rem = (rem * 100 + (t.charCodeAt(start + 2) - 0x30) * 10 + (t.charCodeAt(start + 3) - 0x30)) % 97;
  return rem === 1 ? i : -1;
}

/** Whether the text is an IBAN: known country, its length, mod-97 == 1 (spaces allowed, any case). */
export function isIban(text: string): boolean {
  const t = text.length <= 42 ? text.toUpperCase() : '';
  return t.length >= 15 && ibanAt(t, 0, t.length) === t.length;
}

// ---------------------------------------------------------------------------------------------
// Email: RFC 5322 dot-atom local part (Unicode letters allowed), a domain of LDH labels with a
// letter TLD (or an IDN A-label), local part <= 64 and whole address <= 254 characters.

const EMAIL =
  /^[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+(?:\.[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+)*@(?:[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?\.)+(?:\p{L}{2,63}|xn--[a-z0-9-]{1,59})$/iu;
const EMAIL_LOCAL_TAIL = /[\p{L}\p{N}!#$%&'*+/=?^_`{|}~.-]+$/u;
const EMAIL_DOMAIN_HEAD = /[\p{L}\p{N}.-]+/uy;

/** Whether the text is an email address (rules above). */
export function isEmail(text: string): boolean {
  const at = text.indexOf('@');
  return at > 0 && at <= 64 && text.length <= 254 && EMAIL.test(text);
}

// ---------------------------------------------------------------------------------------------
// Credentials: JWTs, common API-key shapes, PEM private keys.

const KEY_SHAPES = [
  '(?:AKIA|ASIA)[A-Z0-9]{16}', // AWS access key id
  'gh[pousr]_[A-Za-z0-9]{36,251}', // GitHub classic tokens
  'github_pat_[A-Za-z0-9_]{22,255}', // GitHub fine-grained tokens
  'xox[abpr]-[A-Za-z0-9-]{10,250}', // Slack
  '[sr]k_live_[A-Za-z0-9]{16,247}', // Stripe live secret / restricted keys
  'ghtk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}', // Gatehouse tokens (src/store/tokens.ts)
].join('|');
const KEY_WHOLE = new RegExp(`^(?:${KEY_SHAPES})$`);
const KEY_FREE = new RegExp(`(?<![A-Za-z0-9_-])(?:${KEY_SHAPES})(?![A-Za-z0-9_-])`, 'g');
/** Cheap gate for KEY_FREE: a plain alternation scans faster than the lookbehind-guarded shapes. */
const KEY_PREFIX = /AKIA|ASIA|gh[pousr]_|github_pat_|xox[abpr]-|[sr]k_live_|ghtk_/;
const PEM_BEGIN = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----/g;
const JWT_WHOLE = /^[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const JWT_FREE = /(?<![\w-])ey[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*(?![\w-])/g;

/** Whether the header segment (base64url) decodes to a JSON object with a string "alg". */
function jwtHeaderValid(segment: string): boolean {
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    return false;
  }
  return typeof header === 'object' && header !== null && !Array.isArray(header) && typeof (header as { alg?: unknown }).alg === 'string';
}

/** Whether the text is a JWS compact JWT: three base64url segments, the first a JSON header with "alg". */
export function isJwt(text: string): boolean {
  return text.length >= 10 && JWT_WHOLE.test(text) && jwtHeaderValid(text.slice(0, text.indexOf('.')));
}

/** Whether the text is a credential: an API-key shape, a JWT or a PEM private key block. */
export function isSecret(text: string): boolean {
  if (text.startsWith('-----BEGIN ')) {
    PEM_BEGIN.lastIndex = 0;
    const m = PEM_BEGIN.exec(text);
    return m !== null && m.index === 0;
  }
  const c = text.charCodeAt(0);
  // Every key shape starts with A, g, x, s, r; a JWT header with '{' (base64url "e").
  if (c === 0x41 || c === 0x67 || c === 0x78 || c === 0x73 || c === 0x72) {
    if (KEY_WHOLE.test(text)) return true;
  }
  return text.indexOf('.') > 0 && isJwt(text);
}

// ---------------------------------------------------------------------------------------------
// IP addresses.

/** Whether the text is an IPv4 or IPv6 address, optionally with a /prefix (inet/cidr text). */
export function isIpAddress(text: string): boolean {
  const slash = text.indexOf('/');
  if (slash < 0) return isIP(text) !== 0;
  const bits = text.slice(slash + 1);
  return /^\d{1,3}$/.test(bits) && isIP(text.slice(0, slash)) !== 0;
}

// ---------------------------------------------------------------------------------------------
// Phone numbers (see docs/masking.md, "phone"): digits with optional leading +, separators
// space - . ( ); 7-15 digits; and one of: a leading +, a (area) group, 10+ digits, or - / .
// separators. Rejected: IP addresses, dates, the SSN shape, decimals and thousands groupings.

const PHONE_CHARS = /^\+? ?(?:\(\d{1,5}\)[ .-]?)?\d(?:[ ().-]{0,3}\d)*$/;
const DATE_PREFIX = /^\d{4}[-./]\d{1,2}[-./]\d{1,2}(?!\d)|^\d{1,2}[-./]\d{1,2}[-./]\d{4}$/;
const SSN_SHAPE = /^\d{3}-\d{2}-\d{4}$/;
const THOUSANDS = /^\d{1,3}([ .,])\d{3}(?:\1\d{3})*$/;
const PHONE_FREE = /(?<![\w+.\-/@])(?:\+ ?)?(?:\(\d{1,5}\)[ .-]?)?\d(?:[ ().-]{0,3}\d){5,16}(?![\w@]|[.\-/:]\d)/g;

/** Whether the text is a phone number by the rule above. */
export function isPhone(text: string): boolean {
  const n = text.length;
  if (n < 7 || n > 32) return false;
  let digits = 0;
  let dashOrDot = 0;
  let dots = 0;
  let spaces = 0;
  let paren = false;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (isDigit(c)) digits++;
    else if (c === 0x2d) dashOrDot++;
    else if (c === 0x2e) {
      dashOrDot++;
      dots++;
    } else if (c === 0x20) spaces++;
    else if (c === 0x28) paren = true;
    else if (c !== 0x29 && !(c === 0x2b && i === 0)) return false;
  }
  if (digits < 7 || digits > 15 || !PHONE_CHARS.test(text)) return false;
  const plus = text.charCodeAt(0) === 0x2b;
  if (!plus) {
    if (isIP(text) !== 0 || DATE_PREFIX.test(text) || SSN_SHAPE.test(text) || THOUSANDS.test(text)) return false;
    if (dots === 1 && dashOrDot === 1 && spaces === 0 && !paren) return false; // a decimal number
  }
  return plus || paren || digits >= 10 || dashOrDot > 0;
}

// ---------------------------------------------------------------------------------------------
// Whole values.

/** Longest value inspected as a whole; longer texts are only checked for PEM key blocks. */
const WHOLE_VALUE_LIMIT = 16384;

/**
 * The class of a whole value, or null. Checks run strictest first, so a value that fits two
 * shapes gets the stricter class (a 9-digit SSN is not reported as a phone number).
 */
export function detectValue(text: string): MaskClass | null {
  const t = trimmed(text);
  const n = t.length;
  if (n < 4) return null;
  if (n > WHOLE_VALUE_LIMIT) return t.startsWith('-----BEGIN ') && isSecret(t) ? 'secret' : null;
  const c = t.charCodeAt(0);
  if (isSecret(t)) return 'secret';
  const digitStart = isDigit(c);
  if (digitStart) {
    if (n >= 13 && isPaymentCard(t)) return 'payment_card';
    if (n <= 11 && isSsn(t)) return 'national_id';
  }
  if (n >= 15 && isAsciiLetter(c) && isDigit(t.charCodeAt(2)) && isDigit(t.charCodeAt(3)) && isIban(t)) return 'iban';
  if (t.indexOf('@') > 0) return isEmail(t) ? 'email' : null;
  if ((digitStart || c === 0x2b || c === 0x28) && isPhone(t)) return 'phone';
  // IP texts start with a hex digit or ':' and are at most 49 characters (IPv6 with an IPv4 tail and /128).
  if ((digitStart || c === 0x3a || hexValueOf(c) >= 0) && n <= 49 && (t.indexOf(':') >= 0 || t.indexOf('.') >= 0) && isIpAddress(t)) return 'ip_address';
  return null;
}

// ---------------------------------------------------------------------------------------------
// Runs inside free text.

/** Whether the class filter includes `cls`. */
function enabled(mask: number, cls: MaskClass): boolean {
  return (mask & CLASS_BIT[cls]) !== 0;
}

/**
 * The most digits in one cluster (digits joined by separators: space - . ( ) + /): gates the
 * digit-based detectors, so prose with a short number skips their regexes (cards need 13
 * digits, SSNs 9, phones 7, IPv4 addresses 4).
 */
function maxDigitCluster(t: string): number {
  let best = 0;
  let run = 0;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (isDigit(c)) {
      if (++run > best) best = run;
    } else if (c !== 0x20 && c !== 0x2d && c !== 0x2e && c !== 0x28 && c !== 0x29 && c !== 0x2b && c !== 0x2f) {
      run = 0;
    }
  }
  return best;
}

/** Runs a global regex over t and keeps the matches that pass `check` (a checksum or structural test). */
function collect(re: RegExp, t: string, cls: MaskClass, out: SensitiveMatch[], check?: (s: string, m: RegExpExecArray) => boolean): void {
  re.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(t)) !== null) {
    if (check === undefined || check(m[0], m)) out.push({ start: m.index, end: m.index + m[0].length, cls });
  }
}

/** Emails around each '@': the local part is expanded left, the domain right, then the whole is checked. */
function collectEmails(t: string, out: SensitiveMatch[]): void {
  let at = t.indexOf('@');
  while (at > 0) {
    const left = EMAIL_LOCAL_TAIL.exec(t.slice(Math.max(0, at - 64), at));
    EMAIL_DOMAIN_HEAD.lastIndex = at + 1;
    const right = EMAIL_DOMAIN_HEAD.exec(t);
    let next = at + 1;
    if (left !== null && right !== null) {
      let start = at - left[0].length;
      while (t.charCodeAt(start) === 0x2e) start++; // a local part cannot start with a dot
      let end = at + 1 + right[0].length;
      while (end > at + 1 && (t.charCodeAt(end - 1) === 0x2e || t.charCodeAt(end - 1) === 0x2d)) end--; // "mail a@b.com."
      if (start < at && isEmail(t.slice(start, end))) {
        out.push({ start, end, cls: 'email' });
        next = end;
      }
    }
    at = t.indexOf('@', next);
  }
}

/** PEM private key blocks. */
function collectPem(t: string, out: SensitiveMatch[]): void {
  PEM_BEGIN.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = PEM_BEGIN.exec(t)) !== null) {
    // A block runs to the end of its END line; a truncated block (no END) to the end of the text.
    const endMarker = t.indexOf('-----END ', m.index + m[0].length);
    let end = t.length;
    if (endMarker >= 0) {
      const close = t.indexOf('-----', endMarker + 9);
      end = close >= 0 ? close + 5 : t.length;
    }
    out.push({ start: m.index, end, cls: 'secret' });
    PEM_BEGIN.lastIndex = end;
  }
}

/** IBANs: ibanAt at every upper-case letter that starts a word (its length table bounds the run). */
function collectIbans(t: string, out: SensitiveMatch[]): void {
  const n = t.length;
  for (let i = 0; i + 15 <= n; i++) {
    // Candidate starts: two upper-case letters and two digits, not inside a word.
    if (!isUpper(t.charCodeAt(i)) || (i > 0 && isAsciiAlnum(t.charCodeAt(i - 1)))) continue;
    const end = ibanAt(t, i, n);
    if (end > 0 && (end === n || !isAsciiAlnum(t.charCodeAt(end)))) {
      out.push({ start: i, end, cls: 'iban' });
      i = end;
    }
  }
}

const CARD_FREE = /(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w]|[.-]\d)/g;
const IPV4_FREE = /(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)/g;
// Bounded quantifiers: an IPv6 text is at most 45 characters, and unbounded overlapping classes
// would backtrack quadratically on long hex-and-colon runs.
const IPV6_FREE = /(?<![\w:.])[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:]{0,40}:[0-9A-Fa-f:.]{0,40}(?![\w:])/g;

/** IPv6 candidates (two or more colons) confirmed by isIP. */
function collectIpv6(t: string, out: SensitiveMatch[]): void {
  IPV6_FREE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = IPV6_FREE.exec(t)) !== null) {
    let s = m[0];
    while (s.endsWith('.')) s = s.slice(0, -1); // sentence end
    if (s.length >= 3 && isIP(s) === 6) out.push({ start: m.index, end: m.index + s.length, cls: 'ip_address' });
  }
}

/**
 * Non-overlapping sensitive runs inside free text, in text order. Where two runs overlap the
 * stricter class wins (then the longer run). `classes` restricts the search (default: all).
 */
export function findSensitive(text: string, classes?: Iterable<MaskClass> | number): SensitiveMatch[] {
  const mask = classes === undefined ? ALL_CLASSES_MASK : typeof classes === 'number' ? classes : classMask(classes);
  const out: SensitiveMatch[] = [];
  const t = text;
  if (t.length < 4) return out;
  if (enabled(mask, 'secret')) {
    if (t.indexOf('-----BEGIN ') >= 0) collectPem(t, out);
    if (t.length >= 20 && KEY_PREFIX.test(t)) collect(KEY_FREE, t, 'secret', out);
    if (t.indexOf('ey') >= 0 && t.indexOf('.') >= 0) collect(JWT_FREE, t, 'secret', out, (s) => jwtHeaderValid(s.slice(0, s.indexOf('.'))));
  }
  if (enabled(mask, 'email') && t.indexOf('@') > 0) collectEmails(t, out);
  const digits = maxDigitCluster(t);
  if (digits >= 13 && enabled(mask, 'payment_card')) collect(CARD_FREE, t, 'payment_card', out, (s) => isPaymentCard(s));
  if (digits >= 9 && enabled(mask, 'national_id')) collect(SSN_FREE, t, 'national_id', out, (_s, m) => ssnPartsValid(m[1]!, m[3]!, m[4]!));
  if (digits >= 2 && t.length >= 15 && enabled(mask, 'iban')) collectIbans(t, out);
  if (digits >= 7 && enabled(mask, 'phone')) collect(PHONE_FREE, t, 'phone', out, (s) => isPhone(s));
  if (digits >= 4 && enabled(mask, 'ip_address') && t.indexOf('.') >= 0) collect(IPV4_FREE, t, 'ip_address', out, (s) => isIP(s) === 4);
  if (enabled(mask, 'ip_address') && t.indexOf(':') >= 0) collectIpv6(t, out);
  return out.length <= 1 ? out : resolveOverlaps(out);
}

/** Sorts by start and drops overlapped runs: the stricter class wins, then the longer run. */
function resolveOverlaps(matches: SensitiveMatch[]): SensitiveMatch[] {
  matches.sort((a, b) => a.start - b.start || b.end - a.end);
  const kept: SensitiveMatch[] = [];
  for (const m of matches) {
    const last = kept[kept.length - 1];
    if (last === undefined || m.start >= last.end) {
      kept.push(m);
      continue;
    }
    const sm = STRICTNESS[m.cls];
    const sl = STRICTNESS[last.cls];
    if (sm > sl || (sm === sl && m.end - m.start > last.end - last.start)) kept[kept.length - 1] = m;
  }
  return kept;
}
