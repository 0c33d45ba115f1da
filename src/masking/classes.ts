/**
 * Sensitivity classes: what kind of personal or secret data a column or a value holds, and the
 * strictness order that decides which class wins when a value derives from several sources
 * (a `concat(email, ' ', phone)` output column is as sensitive as its strictest input).
 */

/**
 * Every class, strictest first. The order is the strictness order (see STRICTNESS):
 * - secret: credentials grant access to systems, so one leak compromises everything behind them;
 * - payment_card: PCI DSS scope, directly monetizable;
 * - national_id: enables identity theft and cannot be rotated;
 * - iban: a bank account, usable for fraud (direct debits);
 * - date_of_birth: a stable quasi-identifier and a common knowledge-based authentication answer;
 * - email, phone: direct contact identifiers (phishing, account recovery);
 * - person_name, address: identify a person, but are widely known or published;
 * - ip_address: identifies a person only with other data;
 * - free_text: unknown content; the weakest claim, scrubbed by content detectors instead.
 */
export const MASK_CLASSES = [
  'secret',
  'payment_card',
  'national_id',
  'iban',
  'date_of_birth',
  'email',
  'phone',
  'person_name',
  'address',
  'ip_address',
  'free_text',
] as const;

/** A sensitivity class. */
export type MaskClass = (typeof MASK_CLASSES)[number];

/** Strictness rank of each class: higher is stricter (secret = 10 ... free_text = 0). */
export const STRICTNESS: Readonly<Record<MaskClass, number>> = Object.freeze(
  Object.fromEntries(MASK_CLASSES.map((c, i) => [c, MASK_CLASSES.length - 1 - i])) as Record<MaskClass, number>,
);

/** Bit of each class in a class set bitmask (bit i = MASK_CLASSES[i]), for allocation-free sets. */
export const CLASS_BIT: Readonly<Record<MaskClass, number>> = Object.freeze(
  Object.fromEntries(MASK_CLASSES.map((c, i) => [c, 1 << i])) as Record<MaskClass, number>,
);

/** Bitmask with every class set. */
export const ALL_CLASSES_MASK = (1 << MASK_CLASSES.length) - 1;

const CLASS_SET: ReadonlySet<string> = new Set(MASK_CLASSES);

/** Whether `s` names a sensitivity class. */
export function isMaskClass(s: unknown): s is MaskClass {
  return typeof s === 'string' && CLASS_SET.has(s);
}

/** The stricter of two classes ("strictest wins"); null means "not sensitive". */
export function stricter(a: MaskClass | null, b: MaskClass | null): MaskClass | null {
  if (a === null) return b;
  if (b === null) return a;
  return STRICTNESS[a] >= STRICTNESS[b] ? a : b;
}

/** The strictest of several classes, or null if there are none. */
export function strictestOf(classes: Iterable<MaskClass | null>): MaskClass | null {
  let best: MaskClass | null = null;
  for (const c of classes) best = stricter(best, c);
  return best;
}

/** A bitmask of the given classes (for detector filters). */
export function classMask(classes: Iterable<MaskClass>): number {
  let m = 0;
  for (const c of classes) m |= CLASS_BIT[c];
  return m;
}
