/**
 * FrameScanner: the relay framer must reproduce the input stream byte for byte (less what the
 * handler drops or replaces) however the bytes are chunked, hand every held frame over whole and
 * once, count every passed frame, honour PAUSE/resume ordering and fail only with ProtocolError.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from './errors.js';
import { DROP, FORWARD, FrameScanner, PAUSE, type FrameVerdict } from './frame-scanner.js';

// ---- tiny fixture builder -------------------------------------------------------------------

const tagOf = (t: number | string): number => (typeof t === 'string' ? t.charCodeAt(0) : t);

/** One frame: tag(1) | length(4, includes itself) | body. */
function frame(tag: number | string, body: Buffer | string = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + b.length);
  out[0] = tagOf(tag);
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

/** A header with an arbitrary (possibly invalid) length field. */
function header(tag: number | string, length: number): Buffer {
  const out = Buffer.alloc(5);
  out[0] = tagOf(tag);
  out.writeInt32BE(length | 0, 1);
  return out;
}

/** A deterministic body of n bytes (cheap to build even for ~70 KB). */
function patternBody(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + n) & 0xff;
  return b;
}

/** Cut `input` into chunks of the given sizes (cycled); zero sizes give empty chunks. */
function chunkBySizes(input: Buffer, sizes: number[]): Buffer[] {
  if (sizes.length === 0) return [input];
  const out: Buffer[] = [];
  let pos = 0;
  for (let i = 0; pos < input.length; i++) {
    // Guarantee progress even if every size is 0.
    const size = i > 4 * sizes.length + 1000 ? input.length : sizes[i % sizes.length]!;
    out.push(input.subarray(pos, Math.min(input.length, pos + size)));
    pos += size;
  }
  return out;
}

function splitAt(input: Buffer, offsets: number[]): Buffer[] {
  const cuts = [...offsets].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of cuts) {
    out.push(input.subarray(prev, c));
    prev = c;
  }
  out.push(input.subarray(prev));
  return out;
}

// ---- harness --------------------------------------------------------------------------------

type Plan = 'fwd' | 'drop' | 'replace' | 'pause-fwd' | 'pause-drop' | 'pause-replace';

const replacementFor = (i: number): Buffer => frame('R', `replacement ${i}`);

interface Run {
  /** Every emitted buffer, by reference (the scanner promises never to reuse them). */
  emits: Buffer[];
  /** Copies of every held frame as seen by onFrame. */
  held: Buffer[];
  passed: number[];
  scanner: FrameScanner;
  /** Pushes that happened while paused and produced any callback (must stay 0). */
  activityWhilePaused: number;
}

interface RunOptions {
  held: Iterable<number>;
  /** Verdict for the i-th held frame (cycled); default all FORWARD. */
  plans?: Plan[];
  /** After the i-th push (cycled): resume now (true) or keep pushing while paused (false). */
  resumeNow?: boolean[];
  maxFrame?: number;
  maxHeld?: number;
}

function drive(chunks: Buffer[], o: RunOptions): Run {
  const emits: Buffer[] = [];
  const held: Buffer[] = [];
  const passed: number[] = [];
  const plans = o.plans ?? ['fwd'];
  let heldIndex = 0;
  let pendingOutput: Buffer | null | undefined;
  let events = 0;
  const scanner = new FrameScanner(
    {
      onFrame(tag, f, start, end): FrameVerdict {
        events++;
        assert.equal(f[start], tag, 'onFrame tag matches the first byte of the frame');
        assert.equal(f.readInt32BE(start + 1), end - start - 1, 'onFrame range is exactly one frame');
        held.push(Buffer.from(f.subarray(start, end)));
        const i = heldIndex++;
        const plan = plans[i % plans.length]!;
        switch (plan) {
          case 'fwd':
            return FORWARD;
          case 'drop':
            return DROP;
          case 'replace':
            return replacementFor(i);
          case 'pause-fwd':
            // Like the relay: resume with the view it was given.
            pendingOutput = f.subarray(start, end);
            return PAUSE;
          case 'pause-drop':
            pendingOutput = null;
            return PAUSE;
          case 'pause-replace':
            pendingOutput = replacementFor(i);
            return PAUSE;
        }
      },
      onPassed(tag) {
        events++;
        passed.push(tag);
      },
      emit(chunk) {
        events++;
        emits.push(chunk);
      },
    },
    { maxFrame: o.maxFrame ?? 1 << 20, maxHeld: o.maxHeld ?? 1 << 20 },
  );
  for (const t of o.held) scanner.held[t] = 1;

  const resumeAll = (): void => {
    while (scanner.paused) {
      assert.notEqual(pendingOutput, undefined, 'paused without a pending frame');
      const out = pendingOutput!;
      pendingOutput = undefined;
      scanner.resume(out);
    }
  };
  const resumeNow = o.resumeNow ?? [true];
  let activityWhilePaused = 0;
  chunks.forEach((c, i) => {
    const wasPaused = scanner.paused;
    const before = events;
    scanner.push(c);
    if (wasPaused && events !== before) activityWhilePaused++;
    if (resumeNow[i % resumeNow.length]) resumeAll();
  });
  resumeAll();
  return { emits, held, passed, scanner, activityWhilePaused };
}

interface Expected {
  output: Buffer;
  held: Buffer[];
  passed: number[];
}

/** The reference model: what the scanner must produce for `frames`. */
function expected(frames: Buffer[], heldTags: Iterable<number>, plans: Plan[] = ['fwd']): Expected {
  const isHeld = new Set(heldTags);
  const out: Buffer[] = [];
  const held: Buffer[] = [];
  const passed: number[] = [];
  let i = 0;
  for (const f of frames) {
    if (!isHeld.has(f[0]!)) {
      passed.push(f[0]!);
      out.push(f);
      continue;
    }
    held.push(f);
    const plan = plans[i % plans.length]!;
    if (plan === 'fwd' || plan === 'pause-fwd') out.push(f);
    else if (plan === 'replace' || plan === 'pause-replace') out.push(replacementFor(i));
    i++;
  }
  return { output: Buffer.concat(out), held, passed };
}

function check(run: Run, exp: Expected): void {
  const output = Buffer.concat(run.emits);
  if (!output.equals(exp.output)) {
    assert.fail(`output differs: got ${output.length} bytes, expected ${exp.output.length}; first difference at ${firstDiff(output, exp.output)}`);
  }
  assert.equal(run.held.length, exp.held.length, 'number of held frames delivered');
  run.held.forEach((h, i) => assert.ok(h.equals(exp.held[i]!), `held frame ${i} delivered whole and in order`));
  assert.deepEqual(run.passed, exp.passed, 'onPassed once per passed frame, in order');
  assert.equal(run.activityWhilePaused, 0, 'chunks pushed while paused wait for resume');
  assert.equal(run.scanner.atBoundary, true);
  assert.equal(run.scanner.paused, false);
}

function firstDiff(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

// ---- arbitraries ----------------------------------------------------------------------------

const COMMON_TAGS = [0x44, 0x51, 0x50, 0x53, 0x43, 0x45] as const; // 'D' 'Q' 'P' 'S' 'C' 'E'

const tagArb = fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...COMMON_TAGS) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) });

const bodyArb = fc.oneof(
  { weight: 8, arbitrary: fc.uint8Array({ maxLength: 24 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.constant(Buffer.alloc(0)) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 70_000 }).map(patternBody) },
);

const framesArb = fc.array(fc.tuple(tagArb, bodyArb).map(([t, b]) => frame(t, b)), { maxLength: 14 });

const heldArb = fc
  .tuple(fc.subarray([...COMMON_TAGS]), fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 3 }))
  .map(([a, b]) => [...a, ...b]);

/** Chunk sizes: some tiny (headers split byte by byte), some large. */
const sizesArb = fc.array(
  fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 9 }) }, { weight: 2, arbitrary: fc.integer({ min: 1, max: 80_000 }) }),
  { maxLength: 16 },
);

const planArb = fc.array(fc.constantFrom<Plan>('fwd', 'drop', 'replace', 'pause-fwd', 'pause-drop', 'pause-replace'), { minLength: 1, maxLength: 8 });

const FC = { seed: 0x6a7e, numRuns: 150 };

// ---- tests ----------------------------------------------------------------------------------

describe('FrameScanner', () => {
  const Q = 0x51;
  const S = 0x53;
  const P = 0x50;
  const small = [
    frame('D', 'abc'),
    frame('Q', 'select 1\0'),
    frame('S'),
    frame('C'),
    frame('P', 'stmt\0select $1\0\0\0'),
    frame('D', patternBody(9)),
    frame('S'),
  ];
  const smallInput = Buffer.concat(small);
  const smallHeld = [Q, S, P];

  it('relays one whole chunk unchanged', () => {
    const run = drive([smallInput], { held: smallHeld });
    check(run, expected(small, smallHeld));
  });

  it('splits at every offset (two chunks)', () => {
    for (let i = 0; i <= smallInput.length; i++) {
      check(drive(splitAt(smallInput, [i]), { held: smallHeld }), expected(small, smallHeld));
    }
  });

  it('splits at every pair of offsets (three chunks), with every kind of verdict', () => {
    const plans: Plan[] = ['drop', 'pause-fwd', 'replace', 'fwd', 'pause-replace', 'pause-drop'];
    for (let i = 0; i <= smallInput.length; i++) {
      for (let j = i; j <= smallInput.length; j++) {
        const chunks = splitAt(smallInput, [i, j]);
        check(drive(chunks, { held: smallHeld }), expected(small, smallHeld));
        check(drive(chunks, { held: smallHeld, plans, resumeNow: [false, true] }), expected(small, smallHeld, plans));
      }
    }
  });

  it('feeds one byte at a time', () => {
    const chunks = chunkBySizes(smallInput, [1]);
    check(drive(chunks, { held: smallHeld }), expected(small, smallHeld));
    const plans: Plan[] = ['pause-fwd', 'replace', 'drop'];
    check(drive(chunks, { held: smallHeld, plans, resumeNow: [false, false, true] }), expected(small, smallHeld, plans));
  });

  it('property: FORWARD everywhere reproduces the input exactly, for any frames and chunking', () => {
    fc.assert(
      fc.property(framesArb, heldArb, sizesArb, (frames, held, sizes) => {
        const input = Buffer.concat(frames);
        check(drive(chunkBySizes(input, sizes), { held }), expected(frames, held));
      }),
      FC,
    );
  });

  it('property: random split points', () => {
    fc.assert(
      fc.property(framesArb, heldArb, fc.array(fc.nat(), { maxLength: 10 }), (frames, held, cuts) => {
        const input = Buffer.concat(frames);
        const offsets = cuts.map((c) => c % (input.length + 1));
        check(drive(splitAt(input, offsets), { held }), expected(frames, held));
      }),
      FC,
    );
  });

  it('property: DROP, replacements and PAUSE/resume give the rewritten stream in order', () => {
    fc.assert(
      fc.property(framesArb, heldArb, sizesArb, planArb, fc.array(fc.boolean(), { minLength: 1, maxLength: 6 }), (frames, held, sizes, plans, resumeNow) => {
        const input = Buffer.concat(frames);
        check(drive(chunkBySizes(input, sizes), { held, plans, resumeNow }), expected(frames, held, plans));
      }),
      FC,
    );
  });

  it('emits exactly once (the chunk itself) for passed frames and held frames answered FORWARD', () => {
    const frames: Buffer[] = [];
    for (let i = 0; i < 50; i++) frames.push(frame('D', `row ${i}`));
    frames.push(frame('Q', 'select 1\0'), frame('C', 'SELECT 50\0'), frame('S'), frame('P', 'a\0b\0\0\0'));
    for (let i = 0; i < 20; i++) frames.push(frame('D', patternBody(i)));
    const chunk = Buffer.concat(frames);
    const run = drive([chunk], { held: [Q, S, P] });
    assert.equal(run.emits.length, 1);
    assert.equal(run.emits[0], chunk, 'the chunk itself, not a copy');
    assert.equal(run.held.length, 3);
    assert.equal(run.passed.length, 71);
  });

  it('hands a held frame that lies inside one chunk as a view of that chunk (no copy)', () => {
    const chunk = Buffer.concat([frame('D', 'x'), frame('Q', 'select 1\0'), frame('D', 'y')]);
    let seen: Buffer | undefined;
    let range: [number, number] | undefined;
    const sc = new FrameScanner(
      {
        onFrame: (_t, f, s, e) => {
          seen = f;
          range = [s, e];
          return FORWARD;
        },
        onPassed: () => {},
        emit: () => {},
      },
      { maxFrame: 1 << 20, maxHeld: 1 << 20 },
    );
    sc.held[Q] = 1;
    sc.push(chunk);
    assert.equal(seen, chunk);
    assert.deepEqual(range, [6, 6 + 14]);
  });

  it('PAUSE: nothing after the paused frame is scanned or emitted until resume', () => {
    const emits: Buffer[] = [];
    const calls: string[] = [];
    let verdict: FrameVerdict = PAUSE;
    const sc = new FrameScanner(
      {
        onFrame: (tag) => {
          calls.push(`frame ${String.fromCharCode(tag)}`);
          const v = verdict;
          verdict = FORWARD;
          return v;
        },
        onPassed: (tag) => calls.push(`passed ${String.fromCharCode(tag)}`),
        emit: (c) => emits.push(c),
      },
      { maxFrame: 1 << 20, maxHeld: 1 << 20 },
    );
    sc.held[Q] = 1;
    const a = frame('D', 'before');
    const q1 = frame('Q', 'first\0');
    const b = frame('D', 'after');
    const q2 = frame('Q', 'second\0');
    sc.push(Buffer.concat([a, q1, b]));
    assert.equal(sc.paused, true);
    assert.deepEqual(calls, ['passed D', 'frame Q']);
    assert.deepEqual(Buffer.concat(emits), a);
    sc.push(q2);
    sc.push(frame('C', 'x'));
    assert.deepEqual(calls, ['passed D', 'frame Q'], 'chunks pushed while paused are not scanned');
    assert.deepEqual(Buffer.concat(emits), a);
    const replacement = frame('Q', 'rewritten\0');
    sc.resume(replacement);
    assert.equal(sc.paused, false);
    assert.deepEqual(calls, ['passed D', 'frame Q', 'passed D', 'frame Q', 'passed C']);
    assert.deepEqual(Buffer.concat(emits), Buffer.concat([a, replacement, b, q2, frame('C', 'x')]));
    // resume when not paused is a no-op.
    const n = emits.length;
    sc.resume(frame('Z', 'I'));
    assert.equal(emits.length, n);
  });

  it('PAUSE again while resuming: the stash keeps its place', () => {
    const plans: Plan[] = ['pause-fwd', 'pause-replace', 'pause-drop'];
    const frames = [frame('Q', '1\0'), frame('D', 'a'), frame('Q', '2\0'), frame('Q', '3\0'), frame('D', 'b'), frame('Q', '4\0')];
    const input = Buffer.concat(frames);
    // All in one chunk, then one chunk per frame, never resuming between pushes.
    check(drive([input], { held: [Q], plans, resumeNow: [false] }), expected(frames, [Q], plans));
    check(drive(frames, { held: [Q], plans, resumeNow: [false] }), expected(frames, [Q], plans));
    check(drive(chunkBySizes(input, [3]), { held: [Q], plans, resumeNow: [false, true] }), expected(frames, [Q], plans));
  });

  describe('malformed input', () => {
    const collecting = (o: { maxFrame?: number; maxHeld?: number; held?: number[] } = {}) => {
      const log: string[] = [];
      const sc = new FrameScanner(
        {
          onFrame: (t) => {
            log.push(`frame ${t}`);
            return FORWARD;
          },
          onPassed: (t) => log.push(`passed ${t}`),
          emit: (c) => log.push(`emit ${c.length}`),
        },
        { maxFrame: o.maxFrame ?? 1 << 20, maxHeld: o.maxHeld ?? 1 << 20 },
      );
      for (const t of o.held ?? []) sc.held[t] = 1;
      return { sc, log };
    };

    const throwsProtocolError = (fn: () => void): void => {
      assert.throws(fn, (err: unknown) => {
        assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${String(err)}`);
        assert.equal(err.sqlstate, '08P01');
        return true;
      });
    };

    for (const length of [3, 0, -1, -0x80000000]) {
      for (const isHeld of [false, true]) {
        it(`length ${length} (${isHeld ? 'held' : 'passed'}) is a ProtocolError, whole or split`, () => {
          const bad = header('Q', length);
          const { sc } = collecting({ held: isHeld ? [Q] : [] });
          throwsProtocolError(() => sc.push(Buffer.concat([frame('D', 'ok'), bad, Buffer.alloc(8)])));
          for (let cut = 1; cut < 5; cut++) {
            const { sc: sc2 } = collecting({ held: isHeld ? [Q] : [] });
            sc2.push(bad.subarray(0, cut));
            throwsProtocolError(() => sc2.push(bad.subarray(cut)));
          }
        });
      }
    }

    it('a length of exactly 4 (no body) is valid', () => {
      const { sc, log } = collecting({ held: [S] });
      sc.push(Buffer.concat([frame('S'), frame('D')]));
      assert.deepEqual(log, [`frame ${S}`, `passed ${0x44}`, 'emit 10']);
    });

    it('a frame over maxFrame is a ProtocolError; exactly maxFrame is fine', () => {
      const { sc } = collecting({ maxFrame: 100 });
      sc.push(frame('D', patternBody(96))); // length 100
      throwsProtocolError(() => sc.push(header('D', 101)));
      const { sc: sc2 } = collecting({ maxFrame: 100 });
      throwsProtocolError(() => sc2.push(header('D', 0x7fffffff)));
    });

    it('a held frame over maxHeld is a ProtocolError while a passed frame that size is fine', () => {
      const { sc, log } = collecting({ maxFrame: 1000, maxHeld: 50, held: [Q] });
      sc.push(frame('D', patternBody(200)));
      sc.push(frame('Q', patternBody(46))); // length 50: fine
      assert.deepEqual(log, [`passed ${0x44}`, 'emit 205', `frame ${Q}`, 'emit 51']);
      throwsProtocolError(() => sc.push(frame('Q', patternBody(47))));
      // Split header path.
      const { sc: sc2 } = collecting({ maxFrame: 1000, maxHeld: 50, held: [Q] });
      const f = frame('Q', patternBody(47));
      sc2.push(f.subarray(0, 2));
      throwsProtocolError(() => sc2.push(f.subarray(2)));
    });

    it('after a throw, further pushes and resumes do nothing', () => {
      const { sc, log } = collecting({ held: [Q] });
      throwsProtocolError(() => sc.push(header('D', 2)));
      const n = log.length;
      sc.push(frame('D', 'x'));
      sc.push(frame('Q', 'y\0'));
      sc.push(header('D', 2)); // would throw again on a live scanner
      sc.resume(frame('Q', 'z\0'));
      assert.equal(log.length, n);
    });

    it('an error in a stashed chunk surfaces from resume, and the scanner is dead after', () => {
      let first = true;
      const log: string[] = [];
      const sc = new FrameScanner(
        {
          onFrame: () => {
            const v = first ? PAUSE : FORWARD;
            first = false;
            return v;
          },
          onPassed: (t) => log.push(`passed ${t}`),
          emit: (c) => log.push(`emit ${c.length}`),
        },
        { maxFrame: 1 << 20, maxHeld: 1 << 20 },
      );
      sc.held[Q] = 1;
      sc.push(frame('Q', 'a\0'));
      sc.push(header('D', 1));
      assert.throws(() => sc.resume(null), ProtocolError);
      const n = log.length;
      sc.push(frame('D', 'x'));
      assert.equal(log.length, n);
    });

    it('fuzz: random bytes only ever raise ProtocolError, and the output stays a prefix of the input', () => {
      fc.assert(
        fc.property(
          fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 12 }),
          fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 8 }),
          fc.integer({ min: 4, max: 1 << 20 }),
          (chunks, held, maxHeld) => {
            const emits: Buffer[] = [];
            const sc = new FrameScanner({ onFrame: () => FORWARD, onPassed: () => {}, emit: (c) => emits.push(c) }, { maxFrame: 1 << 24, maxHeld });
            for (const t of held) sc.held[t] = 1;
            const input: Buffer[] = [];
            for (const c of chunks) {
              const b = Buffer.from(c);
              input.push(b);
              try {
                sc.push(b);
              } catch (err) {
                assert.ok(err instanceof ProtocolError, `unexpected ${String(err)}`);
                return;
              }
              const out = Buffer.concat(emits);
              const all = Buffer.concat(input);
              assert.ok(all.subarray(0, out.length).equals(out), 'output is a prefix of the input');
              if (sc.atBoundary) assert.equal(out.length, all.length, 'at a boundary everything was emitted');
            }
          },
        ),
        { seed: 7, numRuns: 400 },
      );
    });
  });
});
