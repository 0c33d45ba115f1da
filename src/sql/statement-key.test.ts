/**
 * statementKey is the cache key of statement facts and policy decisions: two texts with the same
 * key get the same decision without being parsed. So the key must be *sound* (equal keys imply
 * the same parse tree apart from literal values) and should be *useful* (texts that differ only in
 * literals, comments, whitespace and keyword case share a key).
 *
 * The soundness property compares libpg-query parse trees with locations removed and A_Const
 * values replaced by a placeholder.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import { loadModule, parseSync } from 'libpg-query';
import { hasKey, statementKey } from './statement-key.js';

const key = statementKey;

function sameKey(a: string, b: string): void {
  assert.ok(hasKey(b, key(a)) && hasKey(a, key(b)), `hasKey disagrees: ${JSON.stringify(a)} / ${JSON.stringify(b)}`);
  assert.equal(key(a), key(b), `expected the same key:\n  ${JSON.stringify(a)} -> ${JSON.stringify(key(a))}\n  ${JSON.stringify(b)} -> ${JSON.stringify(key(b))}`);
}
function differentKey(a: string, b: string): void {
  assert.ok(!hasKey(b, key(a)) && !hasKey(a, key(b)), `hasKey disagrees: ${JSON.stringify(a)} / ${JSON.stringify(b)}`);
  assert.notEqual(key(a), key(b), `expected different keys:\n  ${JSON.stringify(a)}\n  ${JSON.stringify(b)}\n  both -> ${JSON.stringify(key(a))}`);
}

/** Parse tree without locations and literal values; "error" when the parser rejects the text. */
function shape(sql: string): unknown {
  let tree: unknown;
  try {
    tree = parseSync(sql);
  } catch {
    return 'error';
  }
  const strip = (n: unknown): unknown => {
    if (Array.isArray(n)) return n.map(strip);
    if (n === null || typeof n !== 'object') return n;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(n as Record<string, unknown>)) {
      if (k === 'location' || k === 'stmt_location' || k === 'stmt_len') continue;
      out[k] = k === 'A_Const' ? '<literal>' : strip(v);
    }
    return out;
  };
  return strip((tree as { stmts?: unknown }).stmts ?? []);
}

before(async () => {
  await loadModule();
});

describe('statementKey: same shape, same key', () => {
  it('different integer, decimal and exponent literals', () => {
    sameKey('select * from t where id = 1', 'select * from t where id = 4242');
    sameKey('select * from t where x > 1.5', 'select * from t where x > 3');
    sameKey('select 1e10, .5, 2.', 'select 7, 8, 9');
    sameKey('select 1.5E-3', 'select 12');
    sameKey('select * from t limit 10 offset 20', 'select * from t limit 1 offset 0');
  });

  it('different string literals of the same kind', () => {
    sameKey("select * from t where v = 'a'", "select * from t where v = 'it''s -- not /* a comment'");
    sameKey("select 'x'", 'select $$x$$');
    sameKey("select 'x'", "select $tag$ it's $$ $tag$");
    sameKey("select E'a\\'b'", "select E'\\\\'");
    sameKey("select e'x'", "select E'y'");
    sameKey("select B'101'", "select b'0'");
    sameKey("select X'ff'", "select x'00'");
  });

  it('typed literals and arrays of literals', () => {
    sameKey("select date '2024-01-01', interval '1 day'", "select date '1999-12-31', interval '5 min'");
    sameKey('select array[1, 2, 3]', 'select array[4, 5, 6]');
    sameKey("insert into t (a, b) values (1, 'x'), (2, 'y')", "insert into t (a, b) values (10, ''), (20, 'zz')");
  });

  it('whitespace, -- comments and keyword case', () => {
    sameKey('SELECT  *\tFROM   T WHERE ID = 1', 'select * from t where id = 1');
    sameKey('select * from t -- tail', 'select * from t');
    sameKey('-- lead\nselect 1', 'select 1');
    sameKey('select\t1', 'select   1');
    sameKey('   select 1   ', 'select 1');
  });

  it('leading block comments, and the content of block comments anywhere', () => {
    sameKey('/* lead */ select 1', 'select 1');
    sameKey('/* outer /* nested */ still */ select 1', 'select 1');
    sameKey("select * /* traceparent='00-4bf92f-00f067-01' */ from t", 'select * /* application=x */ from t');
    sameKey('select /**/ 1', 'select /* a /* b */ c */ 1');
  });

  it('newlines are kept apart from spaces but runs of either collapse', () => {
    sameKey('select 1\n\n\nfrom t', 'select 1\r\nfrom t');
    // A -- comment is a separator of its own (it keeps string continuation in PostgreSQL 15, not
    // in the analyzer's parser), whatever the comment says.
    differentKey('select 1 -- c\nfrom t', 'select 1\nfrom t');
    sameKey('select 1 -- c\nfrom t', 'select 1 -- other text\nfrom t');
  });

  it('unquoted identifiers fold ASCII case only', () => {
    sameKey('select Col from Tab', 'select col from tab');
    differentKey('select É from t', 'select é from t');
  });

  it('parameters are kept', () => {
    sameKey('select $1', 'select  $1');
    differentKey('select $1', 'select $2');
  });
});

describe('statementKey: different shape, different key', () => {
  it('different identifiers', () => {
    differentKey('select * from t', 'select * from u');
    differentKey('select a from t', 'select b from t');
    differentKey('select * from s.t', 'select * from t');
    differentKey('select pg_read_file(1)', 'select pg_read_filf(1)');
  });

  it('different operators', () => {
    differentKey('select * from t where a = 1', 'select * from t where a <> 1');
    differentKey('select * from t where a < 1', 'select * from t where a <= 1');
    differentKey('select 1 + 2', 'select 1 - 2');
    differentKey('select a || b', 'select a | b');
  });

  it('quoted vs unquoted identifiers, and quoted case', () => {
    differentKey('select * from "t"', 'select * from t');
    differentKey('select * from "T"', 'select * from "t"');
    differentKey('select * from "a b"', 'select * from a');
  });

  it('different numbers of statements', () => {
    differentKey('select 1', 'select 1; select 1');
    differentKey('select 1; select 1', 'select 1; select 1; select 1');
    differentKey('delete from t where id = 1', 'delete from t where id = 1; delete from t');
  });

  it('literal kinds that parse differently', () => {
    differentKey("select 'x'", 'select 1');
    differentKey("select 'x'", "select E'x'");
    differentKey("select B'1'", "select X'1'");
    differentKey("select 'x'", "select B'1'");
    differentKey('select true', 'select false');
    differentKey('select 1', 'select null');
  });

  it('string continuation: a newline between two literals is not a space', () => {
    differentKey("select 'a'\n'b'", "select 'a' 'b'");
  });

  it('keywords vs identifiers and literal vs keyword', () => {
    differentKey('explain analyze delete from t', 'explain delete from t');
    differentKey('explain (analyze on) delete from t', 'explain (analyze off) delete from t');
  });
});

describe('statementKey: quoted text never leaks tokens', () => {
  const noLeak = (text: string, plain: string): void => {
    const k = key(text);
    assert.ok(!/drop|--|\/\*|\$\$|;/.test(k.replace(/^select /, '')), `tokens leaked from a literal: ${JSON.stringify(k)}`);
    sameKey(text, plain);
  };

  it('strings holding quotes, comments, semicolons and dollars become one placeholder', () => {
    noLeak("select 'a''b -- c /* d $$ ; drop table t'", "select 'x'");
    noLeak("select E'\\'; drop table t; --'", "select E'x'");
    noLeak('select $$ \' -- /* ; drop table t $$', 'select $$x$$');
    noLeak('select $x$ $$ $y$ ; drop $x$', 'select $$x$$');
    noLeak("select B'10', X'ff'", "select B'1', X'00'");
  });

  it('a standard string ends at its quote even after a backslash', () => {
    // standard_conforming_strings on: 'a\' is a complete string, so the DROP is a real token.
    const k = key("select 'a\\'; drop table t; --'");
    assert.ok(k.endsWith('; drop table t;'), JSON.stringify(k));
    sameKey("select 'a\\'; drop table t; --'", "select 'zz'; drop table t;");
  });

  it('an escaped backslash before the quote in E strings ends the string', () => {
    const k = key("select E'\\\\'; drop table t");
    assert.ok(k.endsWith('; drop table t'), JSON.stringify(k));
    sameKey("select E'\\\\'; drop table t", "select E'q'; drop table t");
  });

  it('quoted identifiers are kept verbatim, with their comment-like and quote content', () => {
    assert.equal(key('select "a--b", "c/*d", "e""f" from T'), 'select "a--b", "c/*d", "e""f" from t');
    // U& texts depend on a later UESCAPE literal, so their key is the raw text.
    assert.equal(key('select U&"d\\0061t\\+000061" from t'), '\0raw:select U&"d\\0061t\\+000061" from t');
  });

  it('dollar signs inside identifiers and parameters are not quotes', () => {
    assert.equal(key('select a$b$c, $1 from t$x'), 'select a$b$c, $1 from t$x');
  });

  it('placeholders start with NUL, so they never collide with text', () => {
    for (const k of [key("select 'x'"), key('select 1'), key("select E'x'"), key("select B'1'"), key("select X'1'")]) {
      assert.ok(k.includes('\0'), JSON.stringify(k));
    }
    differentKey("select 'x'", 'select s');
  });
});

describe('statementKey: unterminated text keeps the raw rest', () => {
  for (const [name, text] of [
    ['string', "select 'abc; drop table t"],
    ['E string', "select E'abc\\'; drop table t"],
    ['dollar quote', 'select $$abc; drop table t'],
    ['tagged dollar quote', 'select $q$abc $$ drop table t'],
    ['quoted identifier', 'select "abc; drop table t'],
    ['block comment', 'select 1 /* drop table t'],
    ['nested block comment', 'select 1 /* /* */ drop table t'],
    ['U& string', "select U&'abc; drop table t"],
  ] as const) {
    it(name, () => {
      const k = key(text);
      assert.ok(k.includes('drop table t'), `raw rest kept: ${JSON.stringify(k)}`);
      // The raw rest is not folded or normalized: any change in it changes the key.
      differentKey(text, text.replace('drop', 'DROP'));
      differentKey(text, text.replace('drop table t', 'drop  table t'));
      differentKey(text, `${text} -- x`);
    });
  }
});

/**
 * Pairs of texts that parse to different trees, found by the properties below. With the same key
 * the second text would reuse the first one's facts and decision (the UESCAPE pair let
 * pg_read_file and SET role through on production). Each must get different keys.
 */
describe('statementKey: soundness counterexamples', () => {
  it("UESCAPE '<c>' changes what U&\"...\" decodes to, but the literal is replaced in the key", () => {
    const a = `select U&"!0070g_read_file" UESCAPE '!'('/etc/passwd')`; // pg_read_file
    const b = `select U&"!0070g_read_file" UESCAPE '#'('/etc/passwd')`; // "!0070g_read_file"
    assert.notDeepEqual(shape(a), shape(b));
    differentKey(a, b);
  });

  it("N'...' (national character string) shares the number placeholder", () => {
    const a = "select N'1'";
    const b = 'select 1';
    assert.notDeepEqual(shape(a), shape(b));
    differentKey(a, b);
  });

  it('a block comment before the newline breaks string continuation, but the key ignores it', () => {
    const a = "select 'a'\n'b'"; // one string 'ab'
    const b = "select 'a' /* c */\n'b'"; // a syntax error in PostgreSQL
    assert.notDeepEqual(shape(a), shape(b));
    differentKey(a, b);
  });

  it('a -- comment before the newline: PostgreSQL 15 continues the string, the analyzer (libpg-query 18) rejects it', () => {
    // PostgreSQL 15 returns 'ab' for the second text; libpg-query 18 reports a syntax error. The key
    // follows PostgreSQL 15, so the facts cached for one text are reused for a text the analyzer
    // would have rejected (and vice versa: a valid PostgreSQL 15 query refused as unparseable).
    const a = "select 'a'\n'b'";
    const b = "select 'a' -- c\n'b'";
    assert.notDeepEqual(shape(a), shape(b));
    differentKey(a, b);
  });

  it('a block comment after the newline also breaks continuation', () => {
    const a = "select 'a'\n'b'";
    const b = "select 'a'\n/* c */'b'";
    assert.notDeepEqual(shape(a), shape(b));
    differentKey(a, b);
  });
});

// ---- property tests -----------------------------------------------------------------------------

/** Upper/lower/mixed case of a keyword. */
const kw = (word: string): fc.Arbitrary<string> => fc.constantFrom(word.toLowerCase(), word.toUpperCase(), word[0]!.toUpperCase() + word.slice(1).toLowerCase());

/** Separator classes: a skeleton picks the class, each rendering a member. */
const SEPARATORS = [
  [' ', '  ', '\t'],
  ['\n', '\r\n', '\n\t'],
  [' -- c\n', ' -- x y\n', '\t-- c\r\n'],
  [' /* c */ ', ' /* a /* b */ c */ ', ' /**/ ', '/* x */', ' /* c */\n', '\n/* c */ ', '\n /**/\n'],
];
/** Separators between two string literals that continue the string (whitespace with a newline). */
const CONTINUATION_OK = ['\n', '\r\n', '\n\t', '\n  ', ' \n '];
/** ...and ones that the key treats alike but the parser does not (comments). */
const CONTINUATION_BROKEN = [' /* c */\n', '\n/* c */', '\n/* c */\n', ' -- c\n'];

const STRING_BODIES = ['', 'a', "it''s", '-- not a comment', '/* nor this */', ';drop table t;', '\\', '"', '$', 'x$$y'];
const E_BODIES = ['', 'a', "\\'", '\\\\', '\\n', "''", '\\x41', '-- x', '\\t\\r'];
const DOLLAR_BODIES = ['', 'a', "'", '-- x', '/* y */', ';drop table t;', 'b$c', ' $ '];

interface LiteralClass {
  readonly name: string;
  readonly render: fc.Arbitrary<string>;
}

interface GrammarOptions {
  /** Include the known counterexamples (N strings, UESCAPE, comments breaking continuation). */
  readonly buggy: boolean;
  /** Only forms whose key does not depend on literal values or layout (no U&, no continuation). */
  readonly stable?: boolean;
}

function literalClasses(opts: GrammarOptions): LiteralClass[] {
  const numbers = [
    fc.integer({ min: 0, max: 1_000_000 }).map(String),
    fc.constantFrom('0', '42', '3.14', '.5', '1e10', '1.5E-3', '2.', '99999999999', '12345678901234567890'),
  ];
  if (opts.buggy) numbers.push(fc.constantFrom("N'1'", "n'abc'", "N''"));
  const strings = [
    fc.constantFrom(...STRING_BODIES).map((s) => `'${s}'`),
    fc.constantFrom(...DOLLAR_BODIES).map((s) => `$$${s}$$`),
    fc.tuple(fc.constantFrom('q', 'tag', '_x1'), fc.constantFrom(...DOLLAR_BODIES, '$$', '$')).map(([t, s]) => `$${t}$${s}$${t}$`),
  ];
  if (!opts.stable) {
    strings.push(
      fc
      .tuple(fc.constantFrom(...STRING_BODIES), fc.constantFrom(...(opts.buggy ? [...CONTINUATION_OK, ...CONTINUATION_BROKEN] : CONTINUATION_OK)), fc.constantFrom(...STRING_BODIES))
      .map(([a, sep, b]) => `'${a}'${sep}'${b}'`),
    );
  }
  return [
    { name: 'number', render: fc.oneof(...numbers) },
    { name: 'string', render: fc.oneof(...strings) },
    { name: 'E string', render: fc.tuple(fc.constantFrom('E', 'e'), fc.constantFrom(...E_BODIES)).map(([p, s]) => `${p}'${s}'`) },
    { name: 'bit string', render: fc.tuple(fc.constantFrom('B', 'b'), fc.constantFrom('', '0', '101')).map(([p, s]) => `${p}'${s}'`) },
    { name: 'hex string', render: fc.tuple(fc.constantFrom('X', 'x'), fc.constantFrom('', 'ff', '0A')).map(([p, s]) => `${p}'${s}'`) },
    { name: 'unicode string', render: opts.stable ? fc.constant("'u'") : fc.constantFrom("U&'d\\0061ta'", "U&'x'", "u&'\\+000041'") },
  ];
}

function identifiers(opts: GrammarOptions): { tables: string[]; columns: string[] } {
  const tables = ['t', 'T', 'u', '"t"', '"T"', 'public.t', 'S.t', '"my table"'];
  const columns = ['a', 'A', 'b', '"a"', '"A"', 't.a', '"drop"'];
  // U&"..." identifiers may make the key the raw text (their meaning depends on a UESCAPE literal).
  if (!opts.stable) {
    tables.push('U&"\\0074"');
    columns.push('U&"\\0061"');
  }
  if (opts.buggy) {
    tables.push(`U&"!0074" UESCAPE '!'`, `U&"!0074" UESCAPE '#'`);
    columns.push(`U&"!0061" UESCAPE '!'`, `U&"!0061" UESCAPE '#'`);
  }
  return { tables, columns };
}

const OPERATORS = ['=', '<>', '!=', '<', '<=', '>', '>=', '+', '-', '*', '||', 'LIKE', 'IS DISTINCT FROM'];

/**
 * A statement skeleton: its token sequence with placeholders for separators and literals, and for
 * each slot its class. Two renderings of one skeleton pick separators (of the same class), keyword
 * case and literal values (of the same class) independently.
 */
type Token = { kind: 'kw'; word: string } | { kind: 'text'; text: string } | { kind: 'lit'; cls: number } | { kind: 'sep'; cls: number };

function skeleton(opts: GrammarOptions): fc.Arbitrary<Token[]> {
  const { tables, columns } = identifiers(opts);
  const nClasses = literalClasses(opts).length;
  const sep = fc.integer({ min: 0, max: SEPARATORS.length - 1 }).map((cls): Token => ({ kind: 'sep', cls }));
  const table = fc.constantFrom(...tables).map((text): Token => ({ kind: 'text', text }));
  const column = fc.constantFrom(...columns).map((text): Token => ({ kind: 'text', text }));
  const op = fc.constantFrom(...OPERATORS).map((text): Token => ({ kind: 'text', text }));
  const lit = fc.integer({ min: 0, max: nClasses - 1 }).map((cls): Token => ({ kind: 'lit', cls }));
  const K = (word: string): Token => ({ kind: 'kw', word });
  const T = (text: string): Token => ({ kind: 'text', text });
  const join = (parts: Token[][], seps: Token[]): Token[] => parts.flatMap((p, i) => (i === 0 ? p : [seps[i - 1]!, ...p]));
  const seq = (arbs: Array<fc.Arbitrary<Token[]>>): fc.Arbitrary<Token[]> =>
    fc.tuple(fc.tuple(...arbs), fc.array(sep, { minLength: arbs.length, maxLength: arbs.length })).map(([parts, seps]) => join(parts, seps));
  const one = (t: fc.Arbitrary<Token>): fc.Arbitrary<Token[]> => t.map((x) => [x]);
  const fixed = (...ts: Token[]): fc.Arbitrary<Token[]> => fc.constant(ts);
  const operand = fc.oneof(one(column), one(lit));
  const cond = seq([one(column), one(op), operand]);
  const select = seq([fixed(K('SELECT')), operand, fixed(T(',')), operand, fixed(K('FROM')), one(table), fixed(K('WHERE')), cond]);
  const update = seq([fixed(K('UPDATE')), one(table), fixed(K('SET')), one(column), fixed(T('=')), operand, fixed(K('WHERE')), cond]);
  const del = seq([fixed(K('DELETE')), fixed(K('FROM')), one(table), fixed(K('WHERE')), cond]);
  const insert = seq([fixed(K('INSERT')), fixed(K('INTO')), one(table), fixed(T('(')), one(column), fixed(T(')')), fixed(K('VALUES')), fixed(T('(')), one(lit), fixed(T(')'))]);
  const statement = fc.oneof(select, update, del, insert);
  return fc.array(statement, { minLength: 1, maxLength: 2 }).chain((stmts) =>
    fc.array(sep, { minLength: stmts.length, maxLength: stmts.length }).map((seps) => stmts.flatMap((s, i) => (i === 0 ? s : [T(';'), seps[i - 1]!, ...s]))),
  );
}

/** Render a skeleton: independent choices of keyword case, separators and literal values. */
function render(tokens: Token[], opts: GrammarOptions): fc.Arbitrary<string> {
  const classes = literalClasses(opts);
  return fc.tuple(
    ...tokens.map((t): fc.Arbitrary<string> => {
      switch (t.kind) {
        case 'kw':
          return kw(t.word);
        case 'text':
          return fc.constant(t.text);
        case 'lit':
          return classes[t.cls]!.render;
        case 'sep':
          return fc.constantFrom(...SEPARATORS[t.cls]!);
      }
    }),
  ).map((parts) => parts.join(''));
}

function pairOf(opts: GrammarOptions): fc.Arbitrary<[string, string]> {
  return skeleton(opts).chain((s) => fc.tuple(render(s, opts), render(s, opts)));
}

/** Equal keys must imply equal parse shapes (or both rejected). */
function soundness([a, b]: [string, string]): boolean {
  if (key(a) !== key(b)) return true;
  const sa = shape(a);
  const sb = shape(b);
  assert.deepEqual(sa, sb, `same key ${JSON.stringify(key(a))} but different trees:\n  ${JSON.stringify(a)}\n  ${JSON.stringify(b)}`);
  return true;
}

describe('statementKey: properties', () => {
  it('renderings of one shape share a key (literal values, comments, whitespace, keyword case)', () => {
    const opts = { buggy: false, stable: true };
    fc.assert(
      fc.property(pairOf(opts), ([a, b]) => {
        assert.equal(key(a), key(b), `${JSON.stringify(a)}\n${JSON.stringify(b)}`);
      }),
      { numRuns: 300 },
    );
  });

  it('soundness on the grammar without the known counterexamples: equal keys imply equal parse trees', () => {
    let equalKeys = 0;
    fc.assert(
      fc.property(pairOf({ buggy: false }), (pair) => {
        if (key(pair[0]) === key(pair[1])) equalKeys++;
        return soundness(pair);
      }),
      { numRuns: 1000 },
    );
    assert.ok(equalKeys > 200, `the generator must produce many equal-key pairs (got ${equalKeys})`);
  });

  it('soundness on random independent statements', () => {
    const opts = { buggy: false };
    const stmt = skeleton(opts).chain((s) => render(s, opts));
    fc.assert(fc.property(fc.tuple(stmt, stmt), soundness), { numRuns: 300 });
  });

  it('soundness with literals of every kind (N strings, UESCAPE, continuation after comments): equal keys imply equal parse trees', () => {
    // Fails on the counterexamples above until statementKey handles them.
    fc.assert(fc.property(pairOf({ buggy: true }), soundness), { numRuns: 2000, seed: Number(process.env.FC_SEED ?? 20240601) });
  });
});

describe('hasKey: the key compared without building it', () => {
  /** hasKey(b, key(a)) says exactly whether the keys are equal, and a text always has its own key. */
  const agrees = ([a, b]: [string, string]): void => {
    assert.equal(hasKey(a, key(a)), true, `own key: ${JSON.stringify(a)}`);
    assert.equal(hasKey(b, key(a)), key(a) === key(b), `${JSON.stringify(a)} -> ${JSON.stringify(key(a))}\n${JSON.stringify(b)} -> ${JSON.stringify(key(b))}`);
  };
  /** A text cut anywhere (unterminated strings, comments, dollar quotes). */
  const cut = (s: string, at: number): string => s.slice(0, Math.floor(at * (s.length + 1)));

  it('agrees with statementKey on renderings of one shape, cut texts and independent statements (property)', () => {
    const opts = { buggy: true };
    const stmt = skeleton(opts).chain((s) => render(s, opts));
    const frac = fc.double({ min: 0, max: 1, noNaN: true });
    fc.assert(fc.property(pairOf(opts), agrees), { numRuns: 1000 });
    fc.assert(fc.property(pairOf(opts), frac, frac, ([a, b], x, y) => agrees([cut(a, x), cut(b, y)])), { numRuns: 1000 });
    fc.assert(fc.property(pairOf(opts), frac, ([a], x) => agrees([a, cut(a, x)])), { numRuns: 500 });
    fc.assert(fc.property(fc.tuple(stmt, stmt), agrees), { numRuns: 300 });
    fc.assert(fc.property(fc.string(), fc.string(), (a, b) => agrees([a, b])), { numRuns: 500 });
  });

  it('tells apart texts whose keys share a prefix or differ only in case folding, raw keys and separators', () => {
    for (const [a, b] of [
      ['select 1', 'select 1 from t'],
      ['select 1 from t', 'select 1'],
      ['SELECT Ab FROM T', 'select ab from t'],
      ['select "A" from t', 'select a from t'],
      ['select ä from t', 'select Ä from t'],
      [`select U&'d\\0061' from t`, `select U&'d\\0061' from t`],
      [`select U&'x' from t`, `select U&'y' from t`],
      ['select 1\n+ 2', 'select 1 + 2'],
      ['select 1 /* c */ + 2', 'select 1 + 2'],
      ["select 'a", "select 'b"],
      ['', ' '],
      ['\u0000raw:x', '\u0000raw:x'],
    ] as Array<[string, string]>) {
      agrees([a, b]);
      agrees([b, a]);
    }
  });
});
