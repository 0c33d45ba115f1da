/**
 * Byte-level helpers for values on the wire: UTF-8 code point walking (masking counts characters,
 * never bytes), and the parsers and formatters the `hash` function needs to turn integers, dates,
 * UUIDs and IP addresses into one canonical form whatever their wire format (so a value hashes
 * the same in text and binary results) and to write typed pseudonyms. Everything works on
 * Buffers at offsets; nothing here allocates unless its comment says so.
 */

// ---------------------------------------------------------------------------------------------
// UTF-8: a code point starts at every byte that is not a continuation byte (10xxxxxx).

import { copyBytes } from '../bytes.js';

export { copyBytes, fillBytes } from '../bytes.js';

/** Code points in b[start, end). */
export function cpCount(b: Uint8Array, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) if ((b[i]! & 0xc0) !== 0x80) n++;
  return n;
}

/** Byte offset just past the first k code points of b[start, end) (end if there are fewer). */
export function cpForward(b: Uint8Array, start: number, end: number, k: number): number {
  let i = start;
  while (k > 0 && i < end) {
    i++;
    while (i < end && (b[i]! & 0xc0) === 0x80) i++;
    k--;
  }
  return i;
}

/** Byte offset where the last k code points of b[start, end) begin (start if there are fewer). */
export function cpBackward(b: Uint8Array, start: number, end: number, k: number): number {
  let i = end;
  while (k > 0 && i > start) {
    i--;
    while (i > start && (b[i]! & 0xc0) === 0x80) i--;
    k--;
  }
  return i;
}

/** b cut to at most max bytes at a code point boundary (a view; no copy). */
export function truncateBytes(b: Buffer, max: number): Buffer {
  if (b.length <= max) return b;
  let i = max;
  while (i > 0 && (b[i]! & 0xc0) === 0x80) i--;
  return b.subarray(0, i);
}

/** End offset of b without trailing spaces (char(n) padding). */
export function trimSpacesEnd(b: Uint8Array, end: number): number {
  while (end > 0 && b[end - 1] === 0x20) end--;
  return end;
}

/**
 * Offset of the '@' if b[start, end) is shaped like an email address (a non-empty local part,
 * a domain with an inner dot, no whitespace or control bytes), else -1. A byte test, cheaper than
 * the detector's full grammar, because masking only needs to know where the domain starts.
 */
export function emailAt(b: Uint8Array, start: number, end: number): number {
  let at = -1;
  let dot = -1;
  for (let i = start; i < end; i++) {
    const c = b[i]!;
    if (c <= 0x20 || c === 0x7f) return -1;
    if (c === 0x40) {
      at = i;
      dot = -1;
    } else if (c === 0x2e) dot = i;
  }
  return at > start && dot > at + 1 && dot < end - 1 ? at : -1;
}

// ---------------------------------------------------------------------------------------------
// Pseudonym text.

const BASE32 = Buffer.from('abcdefghijklmnopqrstuvwxyz234567', 'latin1');
const HEX = Buffer.from('0123456789abcdef', 'latin1');

/** Writes `chars` lower-case RFC 4648 base32 characters of src's leading bits at out[off]. */
export function writeBase32(src: Uint8Array, out: Uint8Array, off: number, chars: number): void {
  let acc = 0;
  let bits = 0;
  let si = 0;
  for (let i = 0; i < chars; i++) {
    if (bits < 5) {
      acc = ((acc << 8) | src[si++]!) & 0xffff;
      bits += 8;
    }
    out[off + i] = BASE32[(acc >>> (bits - 5)) & 31]!;
    bits -= 5;
  }
}

/** Writes src[start, end) as lower-case hex at out[off]. */
export function writeHex(src: Uint8Array, start: number, end: number, out: Uint8Array, off: number): void {
  for (let i = start; i < end; i++) {
    out[off++] = HEX[src[i]! >>> 4]!;
    out[off++] = HEX[src[i]! & 15]!;
  }
}

/** Value of a hex digit byte, or -1. */
export function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/** Decimal digits of a non-negative safe integer. */
export function decimalLength(x: number): number {
  let n = 1;
  while (x >= 10) {
    x = Math.floor(x / 10);
    n++;
  }
  return n;
}

/** Writes a non-negative safe integer's `len` decimal digits at out[off]. */
export function writeDecimal(x: number, out: Uint8Array, off: number, len: number): void {
  for (let i = off + len - 1; i >= off; i--) {
    const q = Math.floor(x / 10);
    out[i] = 0x30 + (x - q * 10);
    x = q;
  }
}

// ---------------------------------------------------------------------------------------------
// Integers: canonical form is the value as a big-endian int64.

const TWO32 = 0x1_0000_0000;

/** Parses an integer's text (optional sign, decimal digits) into out[0..8) as int64; false if it is not one. */
export function parseIntText(b: Uint8Array, start: number, end: number, out: Buffer): boolean {
  let i = start;
  let neg = false;
  if (b[i] === 0x2d || b[i] === 0x2b) neg = b[i++] === 0x2d;
  if (i >= end || end - i > 19) return false;
  // Magnitude as hi * 2^32 + lo, kept exact in doubles (each part stays below 2^36).
  let hi = 0;
  let lo = 0;
  for (; i < end; i++) {
    const d = b[i]! - 0x30;
    if (d < 0 || d > 9) return false;
    lo = lo * 10 + d;
    const carry = Math.floor(lo / TWO32);
    lo -= carry * TWO32;
    hi = hi * 10 + carry;
  }
  if (hi >= TWO32) return false;
  if (neg && (hi !== 0 || lo !== 0)) {
    // Two's complement: ~x + 1.
    hi = TWO32 - 1 - hi;
    lo = TWO32 - lo;
    if (lo === TWO32) {
      lo = 0;
      hi = (hi + 1) % TWO32;
    }
  }
  out.writeUInt32BE(hi, 0);
  out.writeUInt32BE(lo, 4);
  return true;
}

/** Writes a binary int2/int4/int8 value (b[0..bytes)) into out[0..8) as int64. */
export function binaryIntToInt64(b: Buffer, bytes: 2 | 4 | 8, out: Buffer): boolean {
  if (b.length !== bytes) return false;
  if (bytes === 8) {
    copyBytes(b, 0, 8, out, 0);
    return true;
  }
  const x = bytes === 2 ? b.readInt16BE(0) : b.readInt32BE(0);
  out.writeInt32BE(x < 0 ? -1 : 0, 0);
  out.writeInt32BE(x, 4);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Dates: PostgreSQL stores days since 2000-01-01. Civil-date conversions after H. Hinnant,
// "chrono-compatible low-level date algorithms" (proleptic Gregorian, like PostgreSQL).

/** Days from 1970-01-01 to 2000-01-01. */
const PG_EPOCH_UNIX_DAYS = 10957;

/** Days since 2000-01-01 of a proleptic Gregorian date. */
export function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468 - PG_EPOCH_UNIX_DAYS;
}

/** Writes the ISO text (YYYY-MM-DD) of a date given as days since 2000-01-01, for years 1000-9999. */
export function writeIsoDate(days: number, out: Uint8Array, off: number): void {
  const z = days + PG_EPOCH_UNIX_DAYS + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  writeDecimal(y, out, off, 4);
  out[off + 4] = 0x2d;
  writeDecimal(m, out, off + 5, 2);
  out[off + 7] = 0x2d;
  writeDecimal(d, out, off + 8, 2);
}

const INFINITY = Buffer.from('infinity', 'latin1');

/**
 * Days since 2000-01-01 of a date's ISO text (YYYY-MM-DD, optionally " BC"; "infinity" and
 * "-infinity" as date_send encodes them), or null for anything else (other DateStyles).
 */
export function parseIsoDate(b: Uint8Array, start: number, end: number): number | null {
  if (end - start === 8 && INFINITY.equals(b.subarray(start, end))) return 0x7fffffff;
  if (end - start === 9 && b[start] === 0x2d && INFINITY.equals(b.subarray(start + 1, end))) return -0x80000000;
  let bc = false;
  if (end - start > 3 && b[end - 3] === 0x20 && b[end - 2] === 0x42 && b[end - 1] === 0x43) {
    bc = true; // "0044-03-15 BC": year 1 BC is astronomical year 0
    end -= 3;
  }
  let i = start;
  let y = 0;
  while (i < end && b[i]! >= 0x30 && b[i]! <= 0x39 && i - start < 7) y = y * 10 + (b[i++]! - 0x30);
  if (i - start < 4 || end - i !== 6 || b[i] !== 0x2d || b[i + 3] !== 0x2d) return null;
  const m = twoDigits(b, i + 1);
  const d = twoDigits(b, i + 4);
  if (m < 1 || m > 12 || d < 1 || d > 31) return null;
  return daysFromCivil(bc ? 1 - y : y, m, d);
}

function twoDigits(b: Uint8Array, i: number): number {
  const a = b[i]! - 0x30;
  const c = b[i + 1]! - 0x30;
  return a >= 0 && a <= 9 && c >= 0 && c <= 9 ? a * 10 + c : -1;
}

// ---------------------------------------------------------------------------------------------
// UUIDs: canonical form is the 16 bytes.

/** Parses UUID text (32 hex digits; dashes and braces ignored) into out[0..16); false if it is not one. */
export function parseUuidText(b: Uint8Array, start: number, end: number, out: Uint8Array): boolean {
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = b[i]!;
    if (c === 0x2d || c === 0x7b || c === 0x7d) continue;
    const v = hexValue(c);
    if (v < 0 || n === 32) return false;
    if ((n & 1) === 0) out[n >> 1] = v << 4;
    else out[n >> 1]! |= v;
    n++;
  }
  return n === 32;
}

/** Writes 16 bytes as canonical UUID text (8-4-4-4-12, lower case): 36 bytes at out[off]. */
export function writeUuidText(u: Uint8Array, out: Uint8Array, off: number): void {
  let o = off;
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) out[o++] = 0x2d;
    out[o++] = HEX[u[i]! >>> 4]!;
    out[o++] = HEX[u[i]! & 15]!;
  }
}

// ---------------------------------------------------------------------------------------------
// IP addresses: canonical form is [family (4|6), prefix bits, address bytes].

/** Parses inet/cidr text (IPv4 or IPv6, optional /bits) into out; returns the canonical length (6 or 18) or -1. Allocates a string. */
export function parseInetText(b: Buffer, start: number, end: number, out: Uint8Array): number {
  const s = b.toString('latin1', start, end);
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const v6 = addr.includes(':');
  let bits = v6 ? 128 : 32;
  if (slash >= 0) {
    const t = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(t)) return -1;
    bits = Number(t);
    if (bits > (v6 ? 128 : 32)) return -1;
  }
  out[0] = v6 ? 6 : 4;
  out[1] = bits;
  if (!v6) return parseIpv4(addr, out, 2) ? 6 : -1;
  return parseIpv6(addr, out, 2) ? 18 : -1;
}

function parseIpv4(s: string, out: Uint8Array, off: number): boolean {
  const parts = s.split('.');
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return false;
    out[off + i] = Number(p);
  }
  return true;
}

function parseIpv6(s: string, out: Uint8Array, off: number): boolean {
  const words: number[] = [];
  let tail = s;
  // An embedded IPv4 address fills the last 32 bits (::ffff:1.2.3.4).
  const lastColon = s.lastIndexOf(':');
  const v4 = s.indexOf('.', lastColon) > 0 ? new Uint8Array(4) : null;
  if (v4 !== null) {
    if (!parseIpv4(s.slice(lastColon + 1), v4, 0)) return false;
    tail = s.slice(0, lastColon + 1);
    if (!tail.endsWith('::')) tail = tail.slice(0, -1);
  }
  const want = v4 === null ? 8 : 6;
  const dbl = tail.indexOf('::');
  const group = (g: string): number => (/^[0-9a-fA-F]{1,4}$/.test(g) ? parseInt(g, 16) : -1);
  const split = (t: string): number[] => (t === '' ? [] : t.split(':').map(group));
  if (dbl >= 0) {
    if (tail.indexOf('::', dbl + 1) >= 0) return false;
    const head = split(tail.slice(0, dbl));
    const rest = split(tail.slice(dbl + 2));
    if (head.length + rest.length > want - 1) return false;
    words.push(...head, ...new Array<number>(want - head.length - rest.length).fill(0), ...rest);
  } else {
    words.push(...split(tail));
  }
  if (words.length !== want || words.some((w) => w < 0)) return false;
  for (let i = 0; i < want; i++) {
    out[off + i * 2] = words[i]! >>> 8;
    out[off + i * 2 + 1] = words[i]! & 0xff;
  }
  if (v4 !== null) out.set(v4, off + 12);
  return true;
}

/** Converts a binary inet/cidr value (family 2|3, bits, is_cidr, length, address) to the canonical form; -1 if malformed. */
export function binaryInetToCanonical(b: Buffer, out: Uint8Array): number {
  if (b.length < 4) return -1;
  const family = b[0] === 2 ? 4 : b[0] === 3 ? 6 : 0;
  const len = b[3]!;
  if (family === 0 || len !== (family === 4 ? 4 : 16) || b.length !== 4 + len) return -1;
  out[0] = family;
  out[1] = b[1]!;
  for (let i = 0; i < len; i++) out[2 + i] = b[4 + i]!;
  return 2 + len;
}
