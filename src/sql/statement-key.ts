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
 * The shape key of a statement text. Written for speed (measured ~0.5 µs for a pgbench
 * statement): unchanged runs of the text are copied in one slice; only whitespace runs,
 * comments, literals and upper-case letters break a run.
 */
export function statementKey(sql: string): string {
  const n = sql.length;
  let out = '';
  let run = 0; // start of the pending unchanged run
  let i = 0;
  // Leading whitespace/comments are dropped; `sep` marks that a separator is owed.
  let sep = 0; // 0 none, 1 space, 2 newline, 3 block comment, 4 line comment
  let started = false;
  const emitSep = (): void => {
    if (sep !== 0 && started) out += sep === 2 ? '\n' : sep === 3 ? ' \0c ' : sep === 4 ? ' \0l ' : ' ';
    sep = 0;
  };
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
      out += sql.slice(run, i);
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
            emitSep();
            return out + sql.slice(i); // unterminated: keep the raw rest
          }
          i = j;
          // A block comment is not whitespace for string continuation ('a' /* */ + newline + 'b'
          // is two literals, unlike 'a' + newline + 'b'): give it a separator of its own.
          sep = 3;
        } else break;
      }
      if (i < n) emitSep();
      run = i;
      continue;
    }
    started = true;
    // String constants: '..' and E'..' (backslash escapes), B'..', X'..', N'..'.
    if (c === 0x27 /* ' */) {
      const end = endOfQuoted(sql, i + 1, 0x27, false);
      if (end < 0) return out + sql.slice(run);
      out += sql.slice(run, i) + STRING;
      i = run = end;
      continue;
    }
    if (isIdentStart(c)) {
      const lower = c | 0x20;
      const next = sql.charCodeAt(i + 1);
      if (next === 0x27 && c < 0x80 && (lower === 0x65 || lower === 0x62 || lower === 0x78 || lower === 0x6e)) {
        const end = endOfQuoted(sql, i + 2, 0x27, lower === 0x65);
        if (end < 0) return out + sql.slice(run);
        out += sql.slice(run, i) + PREFIXED + String.fromCharCode(lower);
        i = run = end;
        continue;
      }
      if (lower === 0x75 && next === 0x26 /* & */ && (sql.charCodeAt(i + 2) === 0x27 || sql.charCodeAt(i + 2) === 0x22)) {
        // U&'...' / U&"...": the meaning depends on a later UESCAPE string literal, so such a text
        // shares its key with nothing (rare in practice).
        return RAW + sql;
      }
      let j = i;
      let upper = false;
      let ascii = true;
      while (j < n) {
        const d = sql.charCodeAt(j);
        if (!isIdentCont(d)) break;
        if (d >= 0x41 && d <= 0x5a) upper = true;
        else if (d >= 0x80) ascii = false;
        j++;
      }
      if (upper) {
        // Fold ASCII letters only, as PostgreSQL does for identifiers in multibyte encodings.
        const word = sql.slice(i, j);
        out += sql.slice(run, i) + (ascii ? word.toLowerCase() : word.replace(/[A-Z]/g, (m) => m.toLowerCase()));
        run = j;
      }
      i = j;
      continue;
    }
    if (c === 0x22 /* " */) {
      const end = endOfQuoted(sql, i + 1, 0x22, false);
      if (end < 0) return out + sql.slice(run);
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
        if (close < 0) return out + sql.slice(run);
        out += sql.slice(run, i) + STRING;
        i = run = close + tag.length;
        continue;
      }
      i++;
      continue;
    }
    if (isDigit(c) || (c === 0x2e && isDigit(sql.charCodeAt(i + 1)))) {
      const end = numberEnd(sql, i);
      out += sql.slice(run, i) + NUMBER;
      i = run = end;
      continue;
    }
    i++;
  }
  return out + sql.slice(run, n);
}
