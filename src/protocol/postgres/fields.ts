/** Decoding of message bodies the proxy inspects. */
import { BufferReader } from './buffer-reader.js';
import { ProtocolError } from './errors.js';

const reader = new BufferReader();

/** Fields of an ErrorResponse/NoticeResponse body, keyed by field type character. */
export function parseErrorFields(frame: Buffer, start: number, end: number): Map<string, string> {
  const r = reader.setBuffer(frame, start, end);
  const out = new Map<string, string>();
  for (;;) {
    const type = r.byte();
    if (type === 0) break;
    out.set(String.fromCharCode(type), r.cstring());
  }
  return out;
}

/** The SQLSTATE ('C' field) of an ErrorResponse body, without decoding the other fields. */
export function errorCode(frame: Buffer, start: number, end: number): string | undefined {
  let p = start;
  while (p < end) {
    const type = frame[p]!;
    if (type === 0) return undefined;
    const nul = frame.indexOf(0, p + 1);
    if (nul < 0 || nul >= end) return undefined;
    if (type === 0x43) return frame.toString('latin1', p + 1, nul); // 'C'
    p = nul + 1;
  }
  return undefined;
}

/**
 * Rows reported by a CommandComplete tag ("SELECT 5", "INSERT 0 5", "UPDATE 3", "COPY 10"):
 * the last space-separated number, or -1 when the tag has none (e.g. "CREATE TABLE").
 */
export function commandRows(frame: Buffer, start: number, end: number): number {
  // body is a C string: find its end, then walk back over digits.
  let e = end;
  if (e > start && frame[e - 1] === 0) e--;
  let n = 0;
  let mul = 1;
  let p = e - 1;
  while (p >= start) {
    const c = frame[p]!;
    if (c < 0x30 || c > 0x39) break;
    n += (c - 0x30) * mul;
    mul *= 10;
    p--;
  }
  if (p === e - 1 || p < start || frame[p] !== 0x20) return -1;
  return n;
}

/** Startup packet body after the protocol code: NUL-terminated name/value pairs, then a NUL. */
export function parseStartupParams(body: Buffer, from: number): Map<string, string> {
  const r = reader.setBuffer(body, from, body.length);
  const params = new Map<string, string>();
  for (;;) {
    if (r.remaining === 0) throw new ProtocolError('startup packet is not terminated');
    const key = r.cstring();
    if (key === '') break;
    params.set(key, r.cstring());
  }
  return params;
}
