/**
 * Several rounds of side-by-side runs instead of one: on a shared, noisy machine a burst of
 * someone else's load during one target's run moves that run alone. Each round runs every target
 * once, in an order rotated from round to round (no target always first or last); a ratio is
 * taken within each round, between runs seconds apart, and the report gives the median over the
 * rounds with the range.
 */

/** The median of the numbers (NaN when there are none). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** `items` rotated left by `round` places: round r starts with item r (mod the length). */
export function rotated<T>(items: readonly T[], round: number): T[] {
  if (items.length === 0) return [];
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** How many values it is taken over. */
  readonly n: number;
}

/** Median, min and max of the values that are numbers; null when none is. */
export function spread(values: ReadonlyArray<number | null>): Spread | null {
  const xs = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (xs.length === 0) return null;
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

/** Round by round: subject / base where both rounds have a (non-zero base) figure, else null. */
export function roundRatios(subject: ReadonlyArray<number | null>, base: ReadonlyArray<number | null>): Array<number | null> {
  return subject.map((s, r) => {
    const b = base[r];
    return s === null || b === null || b === undefined || b === 0 ? null : s / b;
  });
}
