/**
 * SASLprep (RFC 4013, the StringPrep profile of RFC 3454) as PostgreSQL applies it to SCRAM
 * passwords (src/common/saslprep.c): ASCII passes unchanged; otherwise non-ASCII spaces map to
 * U+0020, "commonly mapped to nothing" characters are removed, the result is NFKC-normalized,
 * and if it then holds a prohibited character or breaks the bidirectional rule, the raw password
 * is used instead (PostgreSQL does the same, so both sides agree).
 * Unassigned code points are judged by the running Unicode version, not Unicode 3.2.
 */

type Range = readonly [number, number];

/** C.1.2 non-ASCII space characters (PostgreSQL maps U+200B here too). */
const SPACES: Range[] = [[0x00a0, 0x00a0], [0x1680, 0x1680], [0x2000, 0x200b], [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000]];

/** B.1 commonly mapped to nothing. */
const NOTHING: Range[] = [[0x00ad, 0x00ad], [0x034f, 0x034f], [0x1806, 0x1806], [0x180b, 0x180d], [0x200b, 0x200d], [0x2060, 0x2060], [0xfe00, 0xfe0f], [0xfeff, 0xfeff]];

/** C.1.2, C.2.1, C.2.2, C.3, C.5, C.6, C.7, C.8, C.9 (C.4 non-characters are checked arithmetically). */
const PROHIBITED: Range[] = [
  ...SPACES,
  [0x0000, 0x001f], [0x007f, 0x009f], // C.2.1, C.2.2 controls
  [0x06dd, 0x06dd], [0x070f, 0x070f], [0x180e, 0x180e], [0x200c, 0x200f], [0x2028, 0x202e], [0x2060, 0x2063], [0x206a, 0x206f],
  [0xfeff, 0xfeff], [0xfff9, 0xfffd], [0x1d173, 0x1d17a],
  [0xe000, 0xf8ff], [0xf0000, 0xffffd], [0x100000, 0x10fffd], // C.3 private use
  [0xd800, 0xdfff], // C.5 surrogates
  [0x2ff0, 0x2ffb], // C.7
  [0x0340, 0x0341], // C.8
  [0xe0001, 0xe0001], [0xe0020, 0xe007f], // C.9 tags
];

/** Right-to-left scripts (bidi classes R and AL), approximated by block. */
const RAND_AL = /[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc\u{10800}-\u{10fff}\u{1e800}-\u{1efff}]/u;
const LETTER = /[\p{L}\p{Mc}]/u;
const UNASSIGNED = /\p{Cn}/u;

function inRanges(cp: number, ranges: readonly Range[]): boolean {
  for (const [lo, hi] of ranges) if (cp >= lo && cp <= hi) return true;
  return false;
}

export function saslprep(password: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  let mapped = '';
  for (const ch of password) {
    const cp = ch.codePointAt(0)!;
    if (inRanges(cp, SPACES)) mapped += ' ';
    else if (!inRanges(cp, NOTHING)) mapped += ch;
  }
  const normalized = mapped.normalize('NFKC');
  const chars = [...normalized];
  if (chars.length === 0) return password;
  for (const ch of chars) {
    const cp = ch.codePointAt(0)!;
    if (inRanges(cp, PROHIBITED) || (cp & 0xfffe) === 0xfffe || (cp >= 0xfdd0 && cp <= 0xfdef) || UNASSIGNED.test(ch)) return password;
  }
  if (chars.some((c) => RAND_AL.test(c))) {
    if (chars.some((c) => LETTER.test(c) && !RAND_AL.test(c))) return password;
    if (!RAND_AL.test(chars[0]!) || !RAND_AL.test(chars[chars.length - 1]!)) return password;
  }
  return normalized;
}
