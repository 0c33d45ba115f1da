/**
 * Free-text scrubbing: mask only the runs the content detectors find inside a value (an email in
 * a support ticket, a card number in a note) and keep the rest. Each run is replaced code point
 * by code point, so the value keeps its length in characters and stays valid for varchar(n) and
 * char(n). json/jsonb values are scrubbed token-aware so they stay valid JSON.
 */
import { ConfigError } from '../errors.js';
import { classMask, isMaskClass, type MaskClass } from './classes.js';
import { findSensitive, type SensitiveMatch } from './detectors.js';
import { compileMasker, type Masker } from './functions.js';
import { type ColumnType, kindOf, PgType } from './pg-types.js';
import { truncateBytes } from './wire-values.js';

/** Options of a text scrubber. */
export interface TextScrubberOptions {
  /** The replacement character, one code point (default '*'). */
  readonly maskChar?: string;
}

const TEXT_COLUMN: ColumnType = { typeId: PgType.text, typmod: -1, binary: false };

/**
 * Compiles a scrubber that masks runs of the given classes inside values of `column` (default:
 * text in text format). Columns that are neither text-like nor json/jsonb cannot hold free text:
 * for them the scrubber fails closed and returns the `redact` masker (the type's default value).
 */
export function compileTextScrubber(classes: Iterable<MaskClass>, column: ColumnType = TEXT_COLUMN, opts: TextScrubberOptions = {}): Masker {
  const list = [...classes];
  for (const c of list) if (!isMaskClass(c)) throw new ConfigError(`masking: unknown class ${JSON.stringify(c)}`);
  const mask = classMask(list);
  const maskChar = opts.maskChar ?? '*';
  if ([...maskChar].length !== 1 || /[\p{Cc}\p{Cs}"\\]/u.test(maskChar)) {
    throw new ConfigError(`masking: maskChar must be one printable character other than " and \\, got ${JSON.stringify(maskChar)}`);
  }
  const kind = kindOf(column);
  if (kind.k !== 'text' && kind.k !== 'json' && kind.k !== 'jsonb') return compileMasker({ fn: 'redact', maskChar }, column);
  const head = kind.k === 'jsonb' && column.binary ? 1 : 0; // jsonb binary: version byte 1, then the text
  const json = kind.k !== 'text';
  const maxBytes = kind.k === 'text' ? kind.shape.maxBytes : -1;
  return (v) => {
    if (v === null) return null;
    const text = v.toString('utf8', head);
    const matches = findSensitive(text, mask);
    if (matches.length === 0) return v;
    const scrubbed = json ? scrubJson(text, matches, maskChar) : scrubPlain(text, matches, maskChar);
    const size = Buffer.byteLength(scrubbed, 'utf8');
    const out = Buffer.allocUnsafe(head + size);
    if (head === 1) out[0] = 1;
    out.write(scrubbed, head, 'utf8');
    return maxBytes >= 0 ? truncateBytes(out, maxBytes) : out;
  };
}

/** Mask characters for s[start, end), one per code point. */
function maskRun(s: string, start: number, end: number, maskChar: string): string {
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xdc00 || c > 0xdfff || i === start) n++; // a low surrogate continues a pair
  }
  return maskChar.repeat(n);
}

/** Replaces every match with mask characters. */
function scrubPlain(s: string, matches: readonly SensitiveMatch[], maskChar: string): string {
  let out = '';
  let last = 0;
  for (const m of matches) {
    out += s.slice(last, m.start) + maskRun(s, m.start, m.end, maskChar);
    last = m.end;
  }
  return out + s.slice(last);
}

/**
 * JSON-aware replacement: inside string literals a matched character or escape sequence becomes
 * one mask character (an escape is never split, so the literal stays valid); a number token that
 * a match touches becomes 0 followed by spaces (same length, still a number); quotes and
 * structure are kept.
 */
function scrubJson(s: string, matches: readonly SensitiveMatch[], maskChar: string): string {
  const n = s.length;
  let out = '';
  let last = 0; // start of the pending unchanged run
  let mi = 0;
  const overlaps = (from: number, to: number): boolean => {
    while (mi < matches.length && matches[mi]!.end <= from) mi++;
    return mi < matches.length && matches[mi]!.start < to;
  };
  let inString = false;
  let i = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (inString) {
      if (c === 0x22) {
        inString = false;
        i++;
        continue;
      }
      let len = 1;
      if (c === 0x5c) len = s.charCodeAt(i + 1) === 0x75 ? 6 : 2; // \uXXXX or \x
      else if (c >= 0xd800 && c <= 0xdbff) len = 2; // surrogate pair: one code point
      if (overlaps(i, i + len)) {
        out += s.slice(last, i) + maskChar;
        last = i + len;
      }
      i += len;
      continue;
    }
    if (c === 0x22) {
      inString = true;
      i++;
      continue;
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      while (j < n && isNumberChar(s.charCodeAt(j))) j++;
      if (overlaps(i, j)) {
        out += s.slice(last, i) + '0' + ' '.repeat(j - i - 1);
        last = j;
      }
      i = j;
      continue;
    }
    i++;
  }
  return out + s.slice(last);
}

/** Characters of a JSON number token after its first: digits . e E + -. */
function isNumberChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;
}
