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

/** Human-readable fields that may quote data: message, detail, hint, context (where). */
const TEXT_FIELDS = new Set([0x4d /* M */, 0x44 /* D */, 0x48 /* H */, 0x57 /* W */]);

/**
 * An ErrorResponse/NoticeResponse frame with its text fields passed through `rewrite` (other
 * fields, such as the SQLSTATE, unchanged); null when nothing changed.
 */
export function rewriteErrorText(frame: Buffer, start: number, end: number, rewrite: (text: string) => string): Buffer | null {
  const parts: Buffer[] = [];
  let changed = false;
  let p = start + 5;
  while (p < end && frame[p] !== 0) {
    const type = frame[p]!;
    const nul = frame.indexOf(0, p + 1);
    if (nul < 0 || nul >= end) throw new ProtocolError('string is not NUL-terminated');
    let field = frame.subarray(p, nul + 1);
    if (TEXT_FIELDS.has(type)) {
      const text = frame.toString('utf8', p + 1, nul);
      const next = rewrite(text);
      if (next !== text) {
        changed = true;
        field = Buffer.concat([Buffer.of(type), Buffer.from(next, 'utf8'), Buffer.of(0)]);
      }
    }
    parts.push(field);
    p = nul + 1;
  }
  if (!changed) return null;
  const body = Buffer.concat([...parts, Buffer.of(0)]);
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = frame[start]!;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
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
