/**
 * What the masking functions need to know about PostgreSQL types: built-in type OIDs
 * (src/include/catalog/pg_type.dat), how a column's type and typmod shape its values, and the
 * type-correct default value of each supported type in both wire formats (text = the type's
 * output function, binary = its send function).
 */

/** OIDs of the built-in types masking handles (pg_type.dat; stable across versions). */
export const PgType = {
  bool: 16,
  bytea: 17,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  json: 114,
  xml: 142,
  cidr: 650,
  float4: 700,
  float8: 701,
  macaddr8: 774,
  money: 790,
  macaddr: 829,
  inet: 869,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
} as const;

/** OIDs below this are built-in (FirstNormalObjectId): extension types such as citext are above it. */
export const FIRST_NORMAL_OID = 16384;

/** Element type of each supported built-in array type (the empty array names it in binary). */
const ARRAY_ELEMENT: ReadonlyMap<number, number> = new Map([
  [1000, PgType.bool],
  [1001, PgType.bytea],
  [1003, PgType.name],
  [1005, PgType.int2],
  [1007, PgType.int4],
  [1009, PgType.text],
  [1014, PgType.bpchar],
  [1015, PgType.varchar],
  [1016, PgType.int8],
  [1021, PgType.float4],
  [1022, PgType.float8],
  [1028, PgType.oid],
  [1040, PgType.macaddr],
  [1041, PgType.inet],
  [651, PgType.cidr],
  [143, PgType.xml],
  [199, PgType.json],
  [791, PgType.money],
  [1115, PgType.timestamp],
  [1182, PgType.date],
  [1183, PgType.time],
  [1185, PgType.timestamptz],
  [1187, PgType.interval],
  [1231, PgType.numeric],
  [1270, PgType.timetz],
  [2951, PgType.uuid],
  [3807, PgType.jsonb],
]);

/** A result column as the wire describes it (RowDescription). */
export interface ColumnType {
  /** Type OID (domains arrive as their base type). */
  readonly typeId: number;
  /** Type modifier (-1 = none; varchar(n) and char(n) = n + 4). */
  readonly typmod: number;
  /** Format code 1 (binary) rather than 0 (text). */
  readonly binary: boolean;
  /**
   * Declares a non-built-in type whose binary form is its UTF-8 text (citext, for example), so
   * binary values can be masked as text. Text-format values of non-built-in types are always text.
   */
  readonly textual?: boolean;
}

/** Length rules for a text-like column. */
export interface TextShape {
  /** Maximum characters (code points), -1 = unlimited: varchar(n) and char(n). */
  readonly maxChars: number;
  /** char(n): output is space-padded to n characters; -1 = no padding. */
  readonly padTo: number;
  /** char(n): trailing spaces are padding, not content (ignored by masking and hashing). */
  readonly trimPad: boolean;
  /** Maximum bytes, -1 = unlimited: `name` holds at most NAMEDATALEN - 1 = 63 bytes. */
  readonly maxBytes: number;
}

/** How masking treats a column. */
export type TypeKind =
  | { readonly k: 'text'; readonly shape: TextShape }
  | { readonly k: 'json' }
  | { readonly k: 'jsonb' }
  | { readonly k: 'bytea' }
  | { readonly k: 'int'; readonly bytes: 2 | 4 | 8 }
  | { readonly k: 'uuid' }
  | { readonly k: 'date' }
  | { readonly k: 'inet'; readonly cidr: boolean }
  /** Supported for `default` (and everything that falls back to it) only. */
  | { readonly k: 'fixed' }
  /** No known type-correct value: every function yields NULL. */
  | { readonly k: 'unsupported' };

const UNLIMITED: TextShape = { maxChars: -1, padTo: -1, trimPad: false, maxBytes: -1 };

/** The masking kind of a column. */
export function kindOf(col: ColumnType): TypeKind {
  const n = col.typmod >= 4 ? col.typmod - 4 : -1;
  switch (col.typeId) {
    case PgType.text:
      return { k: 'text', shape: UNLIMITED };
    case PgType.varchar:
      return { k: 'text', shape: { maxChars: n, padTo: -1, trimPad: false, maxBytes: -1 } };
    case PgType.bpchar:
      return { k: 'text', shape: { maxChars: n, padTo: n, trimPad: true, maxBytes: -1 } };
    case PgType.name:
      return { k: 'text', shape: { maxChars: -1, padTo: -1, trimPad: false, maxBytes: 63 } };
    case PgType.json:
      return { k: 'json' };
    case PgType.jsonb:
      return { k: 'jsonb' };
    case PgType.bytea:
      return { k: 'bytea' };
    case PgType.int2:
      return { k: 'int', bytes: 2 };
    case PgType.int4:
      return { k: 'int', bytes: 4 };
    case PgType.int8:
      return { k: 'int', bytes: 8 };
    case PgType.uuid:
      return { k: 'uuid' };
    case PgType.date:
      return { k: 'date' };
    case PgType.inet:
      return { k: 'inet', cidr: false };
    case PgType.cidr:
      return { k: 'inet', cidr: true };
  }
  if (defaultText(col.typeId, col.typmod) !== null) return { k: 'fixed' };
  if (col.typeId >= FIRST_NORMAL_OID && (!col.binary || col.textual === true)) return { k: 'text', shape: UNLIMITED };
  return { k: 'unsupported' };
}

/** Days from 1900-01-01 to 2000-01-01 (PostgreSQL's date epoch): 100 * 365 + 24 leap days. */
export const DATE_1900 = -36524;
const USEC_PER_DAY = 86_400_000_000;

/** numeric(p,s): the scale from a typmod (PostgreSQL 15 allows -1000..1000, 11 bits signed). */
function numericScale(typmod: number): number {
  if (typmod < 4) return 0;
  return (((typmod - 4) & 0x7ff) ^ 1024) - 1024;
}

/** The text form of the type-correct default, or null if the type has none here. */
export function defaultText(typeId: number, typmod: number): string | null {
  switch (typeId) {
    case PgType.bool:
      return 'f';
    case PgType.bytea:
      return '\\x';
    case PgType.text:
    case PgType.varchar:
    case PgType.name:
    case PgType.xml:
      return '';
    case PgType.bpchar:
      return typmod >= 4 ? ' '.repeat(typmod - 4) : '';
    case PgType.int2:
    case PgType.int4:
    case PgType.int8:
    case PgType.oid:
    case PgType.float4:
    case PgType.float8:
      return '0';
    case PgType.money:
      return '0.00';
    case PgType.numeric: {
      const scale = numericScale(typmod);
      return scale > 0 ? `0.${'0'.repeat(scale)}` : '0';
    }
    case PgType.json:
    case PgType.jsonb:
      return '{}';
    case PgType.date:
      return '1900-01-01';
    case PgType.time:
    case PgType.interval:
      return '00:00:00';
    case PgType.timetz:
      return '00:00:00+00';
    case PgType.timestamp:
      return '1900-01-01 00:00:00';
    case PgType.timestamptz:
      // An explicit offset: valid whatever the session TimeZone is.
      return '1900-01-01 00:00:00+00';
    case PgType.uuid:
      return '00000000-0000-0000-0000-000000000000';
    case PgType.inet:
      return '0.0.0.0';
    case PgType.cidr:
      return '0.0.0.0/0';
    case PgType.macaddr:
      return '00:00:00:00:00:00';
    case PgType.macaddr8:
      return '00:00:00:00:00:00:00:00';
  }
  return ARRAY_ELEMENT.has(typeId) ? '{}' : null;
}

/** The binary (send-function) form of the type-correct default, or null if the type has none here. */
export function defaultBinary(typeId: number, typmod: number): Buffer | null {
  switch (typeId) {
    case PgType.bool:
      return Buffer.from([0]);
    case PgType.int2:
      return Buffer.alloc(2);
    case PgType.int4:
    case PgType.oid:
    case PgType.float4: // IEEE 754 +0.0 is all zero bits
      return Buffer.alloc(4);
    case PgType.int8:
    case PgType.float8:
    case PgType.money: // int8 cents
    case PgType.time: // int64 microseconds
      return Buffer.alloc(8);
    case PgType.timetz: // int64 microseconds + int32 zone offset (seconds west of UTC)
      return Buffer.alloc(12);
    case PgType.interval: // int64 microseconds, int32 days, int32 months
      return Buffer.alloc(16);
    case PgType.uuid:
      return Buffer.alloc(16);
    case PgType.macaddr:
      return Buffer.alloc(6);
    case PgType.macaddr8:
      return Buffer.alloc(8);
    case PgType.numeric: {
      // ndigits, weight, sign (0x0000 = positive), dscale: zero has no digits.
      const b = Buffer.alloc(8);
      b.writeInt16BE(Math.max(0, numericScale(typmod)), 6);
      return b;
    }
    case PgType.date: {
      const b = Buffer.alloc(4);
      b.writeInt32BE(DATE_1900);
      return b;
    }
    case PgType.timestamp:
    case PgType.timestamptz: {
      // Microseconds since 2000-01-01 00:00:00 UTC (integer datetimes).
      const b = Buffer.alloc(8);
      b.writeBigInt64BE(BigInt(DATE_1900) * BigInt(USEC_PER_DAY));
      return b;
    }
    case PgType.inet:
      // family (PGSQL_AF_INET = 2), bits, is_cidr, address length, address.
      return Buffer.from([2, 32, 0, 4, 0, 0, 0, 0]);
    case PgType.cidr:
      return Buffer.from([2, 0, 1, 4, 0, 0, 0, 0]);
    case PgType.jsonb:
      // jsonb's binary form is a version byte (1) and the JSON text.
      return Buffer.from('\x01{}', 'latin1');
  }
  const text = defaultText(typeId, typmod);
  if (text === null) return null;
  const element = ARRAY_ELEMENT.get(typeId);
  if (element !== undefined) {
    // Empty array: ndim 0, has-null flag 0, element type OID (array_send).
    const b = Buffer.alloc(12);
    b.writeInt32BE(element, 8);
    return b;
  }
  // text, varchar, bpchar, name, xml, json (and bytea's empty value): binary = the bytes themselves.
  return typeId === PgType.bytea ? Buffer.alloc(0) : Buffer.from(text, 'utf8');
}

/** The default value of a column in its wire format (shared; never modify it), or null. */
export function defaultValue(col: ColumnType): Buffer | null {
  if (col.binary) return defaultBinary(col.typeId, col.typmod);
  const text = defaultText(col.typeId, col.typmod);
  return text === null ? null : Buffer.from(text, 'utf8');
}
