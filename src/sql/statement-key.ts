/**
 * The cache key of a statement's shape, computed by a single-pass lexer that follows
 * PostgreSQL's own lexical rules (src/backend/parser/scan.l, standard_conforming_strings on):
 * comments become a space, runs of whitespace become one space (or a newline, which matters for
 * string continuation), unquoted identifiers and keywords fold ASCII to lower case, and every
 * literal becomes a typed placeholder. Two texts with the same key therefore lex to the same
 * token sequence apart from literal values, so they parse to the same tree shape and get the same
 * facts — at ~1 µs instead of a full parse (~40-200 µs) or libpg-query's normalize (~60 µs).
 *
 * Placeholders start with NUL, which cannot occur in a PostgreSQL query string, so they never
 * collide with text. Anything the lexer cannot close (an unterminated string or comment) keeps the
 * raw remainder, so such texts only ever match themselves.
 * https://www.postgresql.org/docs/current/sql-syntax-lexical.html
 */

const NUMBER = '\0n';
const STRING = '\0s';
/** Prefixed strings E'', B'', X'', N'' get this plus the prefix letter (never equal to NUMBER). */
const PREFIXED = '\0S';
/** Prefix of keys that are the raw text (texts whose literals carry meaning). */
const RAW = '\0raw:';
/** What a separator owed (`sep`: 1 space, 2 newline, 3 block comment, 4 line comment) becomes. */
const SEPARATORS = ['', ' ', '\n', ' \0c ', ' \0l '];
/** PREFIXED and the prefix letter, by the letter's lower-case code. */
const PREFIXED_OF: Record<number, string> = Object.fromEntries([0x65, 0x62, 0x78, 0x6e].map((c) => [c, PREFIXED + String.fromCharCode(c)]));

function isIdentStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c >= 0x80;
}
function isIdentCont(c: number): boolean {
  return isIdentStart(c) || (c >= 0x30 && c <= 0x39) || c === 0x24;
}
function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0c || c === 0x0b;
}

/** End of a quoted run starting after the opening quote at `i`; doubled quotes escape. -1 if unterminated. */
function endOfQuoted(s: string, i: number, quote: number, backslash: boolean): number {
  const n = s.length;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (backslash && c === 0x5c) {
      i += 2;
      continue;
    }
    if (c === quote) {
      if (s.charCodeAt(i + 1) === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return -1;
}

/** Length of a number at `i` per scan.l (integer, decimal, real; "1.." and "1e" stop early). */
function numberEnd(s: string, i: number): number {
  const n = s.length;
  let j = i;
  while (j < n && isDigit(s.charCodeAt(j))) j++;
  if (j < n && s.charCodeAt(j) === 0x2e /* . */) {
    if (s.charCodeAt(j + 1) === 0x2e) return j; // decimalfail: "1.." is 1 then ".."
    j++;
    while (j < n && isDigit(s.charCodeAt(j))) j++;
  }
  const e = s.charCodeAt(j);
  if (e === 0x65 || e === 0x45) {
    let k = j + 1;
    const sign = s.charCodeAt(k);
    if (sign === 0x2b || sign === 0x2d) k++;
    if (isDigit(s.charCodeAt(k))) {
      while (k < n && isDigit(s.charCodeAt(k))) k++;
      return k;
    }
  }
  return j;
}

/**
 * Where the lexer's output goes: `range` is sql[from, to) as it is, `fold` the same with ASCII
 * upper-case letters folded, `piece` a fixed string. Each returns false to stop the lexer (a
 * matcher that found a difference).
 */
interface KeySink {
  range(sql: string, from: number, to: number): boolean;
  fold(sql: string, from: number, to: number): boolean;
  piece(s: string): boolean;
}

/** Builds the key as a string. */
class KeyBuilder implements KeySink {
  out = '';
  range(sql: string, from: number, to: number): boolean {
    if (to > from) this.out += sql.slice(from, to);
    return true;
  }
  fold(sql: string, from: number, to: number): boolean {
    const word = sql.slice(from, to);
    // toLowerCase folds only A-Z in ASCII text; elsewhere fold A-Z alone, as PostgreSQL does.
    if (isAscii(word)) this.out += word.toLowerCase();
    else for (let i = from; i < to; i++) this.out += String.fromCharCode(foldAscii(sql.charCodeAt(i)));
    return true;
  }
  piece(s: string): boolean {
    this.out += s;
    return true;
  }
}

/** An ASCII upper-case letter's lower case; any other code unit as it is. */
const foldAscii = (c: number): number => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c);

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}

/** Compares what the lexer emits with a key, character by character, building nothing. */
class KeyMatcher implements KeySink {
  key = '';
  pos = 0;
  range(sql: string, from: number, to: number): boolean {
    const key = this.key;
    let p = this.pos;
    if (p + (to - from) > key.length) return false;
    for (let i = from; i < to; i++, p++) if (key.charCodeAt(p) !== sql.charCodeAt(i)) return false;
    this.pos = p;
    return true;
  }
  fold(sql: string, from: number, to: number): boolean {
    const key = this.key;
    let p = this.pos;
    if (p + (to - from) > key.length) return false;
    for (let i = from; i < to; i++, p++) if (key.charCodeAt(p) !== foldAscii(sql.charCodeAt(i))) return false;
    this.pos = p;
    return true;
  }
  piece(s: string): boolean {
    if (!this.key.startsWith(s, this.pos)) return false;
    this.pos += s.length;
    return true;
  }
}

const builder = new KeyBuilder();
const matcher = new KeyMatcher();

/**
 * The shape key of a statement text. Written for speed (measured ~0.5 µs for a pgbench
 * statement): unchanged runs of the text are emitted as one range; only whitespace runs,
 * comments, literals and upper-case letters break a run.
 */
export function statementKey(sql: string): string {
  builder.out = '';
  lex(sql, builder);
  const key = builder.out;
  builder.out = '';
  return key;
}

/**
 * Whether `statementKey(sql) === key`, decided in the same single pass without building the key
 * (no string, no hash): a session running one shape with new literals each time (pgbench -S in
 * simple mode) is recognized at the cost of the lexing alone. Stops at the first difference.
 */
export function hasKey(sql: string, key: string): boolean {
  if (key.startsWith(RAW)) return statementKey(sql) === key;
  matcher.key = key;
  matcher.pos = 0;
  const same = lex(sql, matcher) && matcher.pos === key.length;
  matcher.key = '';
  return same;
}

/** Lex `sql` into `k`; false when the sink stopped it. */
function lex(sql: string, k: KeySink): boolean {
  const n = sql.length;
  let run = 0; // start of the pending unchanged run
  let i = 0;
  // Leading whitespace/comments are dropped; `sep` marks that a separator is owed.
  let sep = 0; // 0 none, 1 space, 2 newline, 3 block comment, 4 line comment
  let started = false;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (isSpace(c) || (c === 0x2d && sql.charCodeAt(i + 1) === 0x2d) || (c === 0x2f && sql.charCodeAt(i + 1) === 0x2a)) {
      // A single plain space between tokens stays inside the run.
      if (c === 0x20 && started && sep === 0) {
        const d = sql.charCodeAt(i + 1);
        if (!(isSpace(d) || (d === 0x2d && sql.charCodeAt(i + 2) === 0x2d) || (d === 0x2f && sql.charCodeAt(i + 2) === 0x2a)) && i + 1 < n) {
          i++;
          continue;
        }
      }
      if (!k.range(sql, run, i)) return false;
      // Consume whitespace and comments.
      while (i < n) {
        const w = sql.charCodeAt(i);
        if (isSpace(w)) {
          if ((w === 0x0a || w === 0x0d) && sep < 3) sep = 2;
          else if (sep === 0) sep = 1;
          i++;
        } else if (w === 0x2d && sql.charCodeAt(i + 1) === 0x2d) {
          while (i < n && sql.charCodeAt(i) !== 0x0a && sql.charCodeAt(i) !== 0x0d) i++;
          // A -- comment keeps string continuation in PostgreSQL 15 but not in the analyzer's
          // parser: give it a separator of its own so the two readings never share a key.
          sep = 4;
        } else if (w === 0x2f && sql.charCodeAt(i + 1) === 0x2a) {
          let depth = 1;
          let j = i + 2;
          while (j < n && depth > 0) {
            if (sql.charCodeAt(j) === 0x2f && sql.charCodeAt(j + 1) === 0x2a) {
              depth++;
              j += 2;
            } else if (sql.charCodeAt(j) === 0x2a && sql.charCodeAt(j + 1) === 0x2f) {
              depth--;
              j += 2;
            } else j++;
          }
          if (depth > 0) {
            // Unterminated: keep the raw rest.
            if (sep !== 0 && started && !k.piece(SEPARATORS[sep]!)) return false;
            return k.range(sql, i, n);
          }
          i = j;
          // A block comment is not whitespace for string continuation ('a' /* */ + newline + 'b'
          // is two literals, unlike 'a' + newline + 'b'): give it a separator of its own.
          sep = 3;
        } else break;
      }
      if (i < n) {
        if (sep !== 0 && started && !k.piece(SEPARATORS[sep]!)) return false;
        sep = 0;
      }
      run = i;
      continue;
    }
    started = true;
    // String constants: '..' and E'..' (backslash escapes), B'..', X'..', N'..'.
    if (c === 0x27 /* ' */) {
      const end = endOfQuoted(sql, i + 1, 0x27, false);
      if (end < 0) return k.range(sql, run, n);
      if (!k.range(sql, run, i) || !k.piece(STRING)) return false;
      i = run = end;
      continue;
    }
    if (isIdentStart(c)) {
      const lower = c | 0x20;
      const next = sql.charCodeAt(i + 1);
      if (next === 0x27 && c < 0x80 && (lower === 0x65 || lower === 0x62 || lower === 0x78 || lower === 0x6e)) {
        const end = endOfQuoted(sql, i + 2, 0x27, lower === 0x65);
        if (end < 0) return k.range(sql, run, n);
        if (!k.range(sql, run, i) || !k.piece(PREFIXED_OF[lower]!)) return false;
        i = run = end;
        continue;
      }
      if (lower === 0x75 && next === 0x26 /* & */ && (sql.charCodeAt(i + 2) === 0x27 || sql.charCodeAt(i + 2) === 0x22)) {
        // U&'...' / U&"...": the meaning depends on a later UESCAPE string literal, so such a text
        // shares its key with nothing (rare in practice): the key is the raw text alone.
        // (hasKey compares such keys with statementKey, so a matcher never gets here for one.)
        if (k !== builder) return false;
        builder.out = RAW + sql;
        return true;
      }
      let j = i;
      let upper = false;
      while (j < n) {
        const d = sql.charCodeAt(j);
        if (!isIdentCont(d)) break;
        if (d >= 0x41 && d <= 0x5a) upper = true;
        j++;
      }
      if (upper) {
        if (!k.range(sql, run, i) || !k.fold(sql, i, j)) return false;
        run = j;
      }
      i = j;
      continue;
    }
    if (c === 0x22 /* " */) {
      const end = endOfQuoted(sql, i + 1, 0x22, false);
      if (end < 0) return k.range(sql, run, n);
      i = end;
      continue;
    }
    if (c === 0x24 /* $ */) {
      const d = sql.charCodeAt(i + 1);
      if (isDigit(d)) {
        i++;
        while (i < n && isDigit(sql.charCodeAt(i))) i++;
        continue;
      }
      let j = i + 1;
      if (j < n && isIdentStart(sql.charCodeAt(j))) {
        j++;
        while (j < n && isIdentCont(sql.charCodeAt(j)) && sql.charCodeAt(j) !== 0x24) j++;
      }
      if (sql.charCodeAt(j) === 0x24) {
        const tag = sql.slice(i, j + 1);
        const close = sql.indexOf(tag, j + 1);
        if (close < 0) return k.range(sql, run, n);
        if (!k.range(sql, run, i) || !k.piece(STRING)) return false;
        i = run = close + tag.length;
        continue;
      }
      i++;
      continue;
    }
    if (isDigit(c) || (c === 0x2e && isDigit(sql.charCodeAt(i + 1)))) {
      const end = numberEnd(sql, i);
      if (!k.range(sql, run, i) || !k.piece(NUMBER)) return false;
      i = run = end;
      continue;
    }
    i++;
  }
  return k.range(sql, run, n);
}
