/**
 * Gatehouse masking: sensitivity classes, column-name classification, content detectors, and
 * masking functions compiled per result column. Pure logic with no sockets: the proxy decides
 * which columns to mask (policy `mask` action, catalog and lineage) and rewrites DataRow messages
 * with the maskers built here. Reference: docs/masking.md.
 */
export { ALL_CLASSES_MASK, CLASS_BIT, classMask, isMaskClass, MASK_CLASSES, type MaskClass, STRICTNESS, stricter, strictestOf } from './classes.js';
export {
  detectValue,
  findSensitive,
  IBAN_LENGTHS,
  isEmail,
  isIban,
  isIpAddress,
  isJwt,
  isPaymentCard,
  isPhone,
  isSecret,
  isSsn,
  luhnValid,
  type SensitiveMatch,
  ssnPartsValid,
} from './detectors.js';
export { compileMasker, MASK_FUNCTIONS, type MaskFunction, type Masker, type MaskSpec, REDACT_LENGTH } from './functions.js';
export { KeyedHash } from './keyed-hash.js';
export { createNameClassifier, DEFAULT_NAME_PHRASES, NameClassifier, type NameClassifierOptions, type NameRule, normalizeColumnName } from './names.js';
export { type ColumnType, defaultValue, FIRST_NORMAL_OID, PgType } from './pg-types.js';
export { compileTextScrubber, type TextScrubberOptions } from './text-scrubber.js';
