/**
 * The demo company database: schema and data for `gatehouse demo`, generated here from a seeded
 * PRNG (mulberry32) so every run produces byte-identical SQL. Every person, card, SSN, phone
 * number and key is fictional: phones use the 555-0100..0199 range reserved for fiction, emails
 * the reserved example.* domains, card numbers only pass the Luhn check.
 *
 * Exact row counts (tests rely on them, the demo tour quotes them):
 *
 *   customers        1,000
 *   orders           6,000   status: delivered 5,000 · cancelled 300 · shipped 300 · pending 250
 *                            · refunded 150
 *   payments         4,000   one per paid order (delivered, shipped, refunded), the 4,000 newest
 *   support_tickets    500   `notes`: free text, every note has an email and a phone number in
 *                            sentences (phones as +1-AAA-555-01NN or (AAA) 555-01NN); 10% an SSN
 *   api_keys            50   10 service keys (customer_id NULL) and 40 customer keys
 *
 * Predicates for the bulk-DELETE scene (a 1,000-row cap must stop both):
 *
 *   DELETE FROM orders WHERE status = 'delivered'             -- exactly 5,000 rows
 *   DELETE FROM orders WHERE created_at < '2024-01-01'        -- exactly 5,000 rows (ids 1..5000)
 *   DELETE FROM orders WHERE id <= 5000                       -- exactly 5,000 rows
 *
 * and a small one that a cap lets through:
 *
 *   DELETE FROM orders WHERE status = 'pending'               -- exactly 250 rows
 *
 * Foreign keys are ON DELETE CASCADE so those statements succeed (and report their own table's
 * row count) rather than failing on a reference from payments.
 */

/** Tables of the demo schema, in creation order. */
export type DemoTable = 'customers' | 'orders' | 'payments' | 'support_tickets' | 'api_keys';

/** Exact number of rows each table holds after seeding. */
export const SEED_ROW_COUNTS: Readonly<Record<DemoTable, number>> = {
  customers: 1000,
  orders: 6000,
  payments: 4000,
  support_tickets: 500,
  api_keys: 50,
};

/** Order statuses and their exact counts. */
export const ORDER_STATUS_COUNTS: Readonly<Record<OrderStatus, number>> = {
  delivered: 5000,
  cancelled: 300,
  shipped: 300,
  pending: 250,
  refunded: 150,
};

/** Orders 1..5000 are dated 2021-2023, orders 5001..6000 are dated 2024. */
export const ORDERS_BEFORE_2024 = 5000;

/** Values of orders.status. */
export type OrderStatus = 'pending' | 'shipped' | 'delivered' | 'cancelled' | 'refunded';

/** Rows per INSERT statement: few round trips, statements of ~100-250 KB. */
const ROWS_PER_INSERT = 500;

const SCHEMA: readonly string[] = [
  `CREATE TABLE customers (
     id serial PRIMARY KEY,
     full_name text NOT NULL,
     email text NOT NULL UNIQUE,
     phone text NOT NULL,
     ssn text NOT NULL,
     card_number text NOT NULL,
     address text NOT NULL,
     date_of_birth date NOT NULL,
     created_at timestamptz NOT NULL
   )`,
  `CREATE TABLE orders (
     id serial PRIMARY KEY,
     customer_id integer NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
     status text NOT NULL CHECK (status IN ('pending', 'shipped', 'delivered', 'cancelled', 'refunded')),
     total_cents integer NOT NULL,
     created_at timestamptz NOT NULL
   )`,
  `CREATE INDEX orders_customer_id_idx ON orders (customer_id)`,
  `CREATE INDEX orders_status_idx ON orders (status)`,
  `CREATE TABLE payments (
     id serial PRIMARY KEY,
     order_id integer NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
     amount_cents integer NOT NULL,
     method text NOT NULL,
     card_last4 text,
     paid_at timestamptz NOT NULL
   )`,
  `CREATE INDEX payments_order_id_idx ON payments (order_id)`,
  `CREATE TABLE support_tickets (
     id serial PRIMARY KEY,
     customer_id integer NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
     subject text NOT NULL,
     notes text NOT NULL,
     created_at timestamptz NOT NULL
   )`,
  `CREATE INDEX support_tickets_customer_id_idx ON support_tickets (customer_id)`,
  `CREATE TABLE api_keys (
     id serial PRIMARY KEY,
     customer_id integer REFERENCES customers (id) ON DELETE CASCADE,
     name text NOT NULL,
     key text NOT NULL UNIQUE,
     created_at timestamptz NOT NULL
   )`,
];

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

/** mulberry32: a tiny 32-bit PRNG, good enough for fixtures; returns floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Rng {
  readonly #next: () => number;

  /** One stream per table, so changing one table never shifts another's data. */
  constructor(seed: number) {
    this.#next = mulberry32(seed);
  }

  /** Integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    return min + Math.floor(this.#next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.#next() * items.length)]!;
  }

  chance(p: number): boolean {
    return this.#next() < p;
  }

  digits(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += String(this.int(0, 9));
    return s;
  }

  /** Fisher-Yates, in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      const t = items[i]!;
      items[i] = items[j]!;
      items[j] = t;
    }
    return items;
  }

  /** `n` sorted instants (ms) in [from, to). */
  sortedTimes(n: number, from: string, to: string): number[] {
    const a = Date.parse(from);
    const span = Date.parse(to) - a;
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(a + Math.floor(this.#next() * span / 1000) * 1000);
    return out.sort((x, y) => x - y);
  }
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

const FIRST_NAMES = [
  'James', 'Mary', 'Robert', 'Patricia', 'John', 'Jennifer', 'Michael', 'Linda', 'David', 'Elizabeth',
  'William', 'Barbara', 'Richard', 'Susan', 'Joseph', 'Jessica', 'Thomas', 'Sarah', 'Carlos', 'Karen',
  'Daniel', 'Lisa', 'Matthew', 'Nancy', 'Anthony', 'Sandra', 'Mark', 'Ashley', 'Wei', 'Emily',
  'Steven', 'Michelle', 'Andrew', 'Amanda', 'Kenji', 'Melissa', 'Joshua', 'Deborah', 'Kevin', 'Priya',
  'Brian', 'Laura', 'Omar', 'Rebecca', 'Luis', 'Sharon', 'Ryan', 'Cynthia', 'Jacob', 'Aisha',
  'Gary', 'Angela', 'Nicholas', 'Maria', 'Eric', 'Hannah', 'Jonathan', 'Olivia', 'Diego', 'Sofia',
  'Samuel', 'Grace', 'Mohammed', 'Chloe', 'Hiroshi', 'Fatima', 'Ethan', 'Isabella', 'Noah', 'Mei',
];

const LAST_NAMES = [
  'Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis', 'Rodriguez', 'Martinez',
  'Hernandez', 'Lopez', 'Gonzalez', 'Wilson', 'Anderson', 'Thomas', 'Taylor', 'Moore', 'Jackson', 'Martin',
  'Lee', 'Perez', 'Thompson', 'White', 'Harris', 'Sanchez', 'Clark', 'Ramirez', 'Lewis', 'Robinson',
  'Walker', 'Young', 'Allen', 'King', 'Wright', 'Scott', 'Torres', 'Nguyen', 'Hill', 'Flores',
  'Green', 'Adams', 'Nelson', 'Baker', 'Hall', 'Rivera', 'Campbell', 'Mitchell', 'Carter', 'Roberts',
  "O'Brien", 'Chen', 'Patel', 'Kim', 'Tanaka', 'Khan', 'Singh', 'Cohen', 'Murphy', "D'Angelo",
];

/** City, state, area code, ZIP prefix: real combinations, so addresses and phones look right. */
const CITIES: readonly (readonly [string, string, string, string])[] = [
  ['San Francisco', 'CA', '415', '941'], ['Los Angeles', 'CA', '213', '900'], ['San Diego', 'CA', '619', '921'],
  ['Seattle', 'WA', '206', '981'], ['Portland', 'OR', '503', '972'], ['Denver', 'CO', '303', '802'],
  ['Austin', 'TX', '512', '787'], ['Houston', 'TX', '713', '770'], ['Dallas', 'TX', '214', '752'],
  ['Chicago', 'IL', '312', '606'], ['Minneapolis', 'MN', '612', '554'], ['Detroit', 'MI', '313', '482'],
  ['Boston', 'MA', '617', '021'], ['New York', 'NY', '212', '100'], ['Brooklyn', 'NY', '718', '112'],
  ['Philadelphia', 'PA', '215', '191'], ['Atlanta', 'GA', '404', '303'], ['Miami', 'FL', '305', '331'],
  ['Orlando', 'FL', '407', '328'], ['Nashville', 'TN', '615', '372'], ['Phoenix', 'AZ', '602', '850'],
  ['Salt Lake City', 'UT', '801', '841'], ['Raleigh', 'NC', '919', '276'], ['Columbus', 'OH', '614', '432'],
];

const STREETS = [
  'Oak', 'Maple', 'Cedar', 'Pine', 'Elm', 'Washington', 'Lake', 'Hill', 'Park', 'Main', 'Sunset', 'Highland',
  'Jefferson', 'Lincoln', 'Madison', 'Franklin', 'Willow', 'Riverside', 'Church', 'Spring', 'Valley', 'Ridge',
];
const STREET_SUFFIXES = ['St', 'Ave', 'Blvd', 'Rd', 'Ln', 'Dr', 'Ct', 'Way', 'Pl'];
const EMAIL_DOMAINS = ['example.com', 'example.org', 'example.net', 'mail.example.com'];

const TICKET_SUBJECTS = [
  'Double charge on my card', 'Where is my order?', 'Update contact details', 'Refund request',
  'Cannot log in', 'Please close my account', 'Need a copy of my invoice', 'Item arrived damaged',
  'Change shipping address', 'Promo code not working', 'Wrong item received', 'Question about billing',
];

const SERVICE_KEY_NAMES = [
  'billing-service', 'reporting-etl', 'search-indexer', 'email-sender', 'fraud-scoring',
  'warehouse-sync', 'analytics-export', 'support-portal', 'mobile-backend', 'webhook-relay',
];
const CUSTOMER_KEY_NAMES = [
  'Production integration', 'Staging', 'Zapier', 'Shopify sync', 'CI pipeline', 'Accounting export',
  'Inventory bot', 'Personal script',
];

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

// ---------------------------------------------------------------------------------------------
// Field generators

/** Luhn check digit for `payload` (the digits before the check digit). */
function luhnCheckDigit(payload: string): number {
  let sum = 0;
  // The rightmost payload digit sits second from the right once the check digit is appended,
  // so it is the first one doubled.
  for (let i = payload.length - 1, double = true; i >= 0; i--, double = !double) {
    let d = payload.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return (10 - (sum % 10)) % 10;
}

/** 16-digit Visa, Mastercard or Discover number passing the Luhn check. */
function cardNumber(rng: Rng): string {
  const r = rng.int(0, 9);
  const prefix = r < 5 ? '4' : r < 8 ? `5${rng.int(1, 5)}` : '6011';
  const payload = prefix + rng.digits(15 - prefix.length);
  return payload + String(luhnCheckDigit(payload));
}

/** NNN-NN-NNNN with a valid area (001-899, not 666), group (01-99) and serial (0001-9999). */
function ssn(rng: Rng): string {
  let area = rng.int(1, 898);
  if (area >= 666) area += 1; // skip 666
  return `${pad(area, 3)}-${pad(rng.int(1, 99), 2)}-${pad(rng.int(1, 9999), 4)}`;
}

/** +1-AAA-555-01NN: a real area code and a number from the range reserved for fiction. */
function phone(rng: Rng, area: string): string {
  return `+1-${area}-555-01${pad(rng.int(0, 99), 2)}`;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** Lowercase ASCII letters only, for the local part of an email. */
function slug(name: string): string {
  return name.toLowerCase().replace(/[^a-z]/g, '');
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** A single-quoted SQL literal (standard_conforming_strings is on: only quotes are doubled). */
function lit(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

function nullable(s: string | null): string {
  return s === null ? 'NULL' : lit(s);
}

// ---------------------------------------------------------------------------------------------
// Tables

interface Customer {
  readonly id: number;
  readonly first: string;
  readonly last: string;
  readonly email: string;
  readonly phone: string;
  readonly area: string;
  readonly ssn: string;
  readonly card: string;
  readonly createdAt: number;
}

interface Order {
  readonly id: number;
  readonly customerId: number;
  readonly status: OrderStatus;
  readonly totalCents: number;
  readonly createdAt: number;
}

function customers(rows: string[][]): Customer[] {
  const rng = new Rng(0xc0ffee);
  const times = rng.sortedTimes(SEED_ROW_COUNTS.customers, '2020-01-01T00:00:00Z', '2024-01-01T00:00:00Z');
  const dobFrom = Date.parse('1950-01-01T00:00:00Z');
  const dobDays = (Date.parse('2005-01-01T00:00:00Z') - dobFrom) / 86_400_000;
  const out: Customer[] = [];
  for (let id = 1; id <= SEED_ROW_COUNTS.customers; id++) {
    const first = rng.pick(FIRST_NAMES);
    const last = rng.pick(LAST_NAMES);
    const [city, state, area, zip] = rng.pick(CITIES);
    const c: Customer = {
      id,
      first,
      last,
      email: `${slug(first)}.${slug(last)}${id}@example.com`,
      phone: phone(rng, area),
      area,
      ssn: ssn(rng),
      card: cardNumber(rng),
      createdAt: times[id - 1]!,
    };
    const apt = rng.chance(0.3) ? `, Apt ${rng.int(1, 40)}${rng.pick(['', 'A', 'B', 'C'])}` : '';
    const address =
      `${rng.int(100, 9899)} ${rng.pick(STREETS)} ${rng.pick(STREET_SUFFIXES)}${apt}, ` +
      `${city}, ${state} ${zip}${pad(rng.int(0, 99), 2)}`;
    const dob = iso(dobFrom + rng.int(0, dobDays - 1) * 86_400_000).slice(0, 10);
    out.push(c);
    rows.push([
      String(id), lit(`${first} ${last}`), lit(c.email), lit(c.phone), lit(c.ssn), lit(c.card),
      lit(address), lit(dob), lit(iso(c.createdAt)),
    ]);
  }
  return out;
}

/** Exact status multiset for a range of orders, shuffled. */
function statuses(rng: Rng, counts: Partial<Record<OrderStatus, number>>): OrderStatus[] {
  const out: OrderStatus[] = [];
  for (const [s, n] of Object.entries(counts) as [OrderStatus, number][]) for (let i = 0; i < n; i++) out.push(s);
  return rng.shuffle(out);
}

function orders(rows: string[][], people: readonly Customer[]): Order[] {
  const rng = new Rng(0x0dde75);
  // Orders 1..5000 fall in 2021-2023, 5001..6000 in 2024 (see the header for the exact counts).
  const times = [
    ...rng.sortedTimes(ORDERS_BEFORE_2024, '2021-01-01T00:00:00Z', '2024-01-01T00:00:00Z'),
    ...rng.sortedTimes(SEED_ROW_COUNTS.orders - ORDERS_BEFORE_2024, '2024-01-01T00:00:00Z', '2025-01-01T00:00:00Z'),
  ];
  const sts = [
    ...statuses(rng, { delivered: 4600, cancelled: 250, refunded: 150 }),
    ...statuses(rng, { delivered: 400, shipped: 300, pending: 250, cancelled: 50 }),
  ];
  const out: Order[] = [];
  let known = 0; // customers created before the current order (customers are sorted by created_at)
  for (let id = 1; id <= SEED_ROW_COUNTS.orders; id++) {
    const createdAt = times[id - 1]!;
    while (known < people.length && people[known]!.createdAt < createdAt) known++;
    const o: Order = {
      id,
      customerId: rng.int(1, Math.max(known, 1)),
      status: sts[id - 1]!,
      totalCents: rng.chance(0.8) ? rng.int(499, 15000) : rng.int(15001, 99999),
      createdAt,
    };
    out.push(o);
    rows.push([String(id), String(o.customerId), lit(o.status), String(o.totalCents), lit(iso(createdAt))]);
  }
  return out;
}

function payments(rows: string[][], people: readonly Customer[], all: readonly Order[]): void {
  const rng = new Rng(0x9a1d);
  const paid = all.filter((o) => o.status === 'delivered' || o.status === 'shipped' || o.status === 'refunded');
  const chosen = paid.slice(paid.length - SEED_ROW_COUNTS.payments);
  let id = 0;
  for (const o of chosen) {
    const r = rng.int(0, 99);
    const method = r < 70 ? 'card' : r < 85 ? 'paypal' : r < 95 ? 'bank_transfer' : 'gift_card';
    const last4 = method === 'card' ? people[o.customerId - 1]!.card.slice(-4) : null;
    const paidAt = o.createdAt + rng.int(1, 180) * 60_000;
    rows.push([String(++id), String(o.id), String(o.totalCents), lit(method), nullable(last4), lit(iso(paidAt))]);
  }
}

function supportTickets(rows: string[][], people: readonly Customer[]): void {
  const rng = new Rng(0x71c3e7);
  const times = rng.sortedTimes(SEED_ROW_COUNTS.support_tickets, '2022-01-01T00:00:00Z', '2025-01-01T00:00:00Z');
  for (let id = 1; id <= SEED_ROW_COUNTS.support_tickets; id++) {
    const c = people[rng.int(0, people.length - 1)]!;
    const altEmail = `${slug(c.first)}.${slug(c.last)}.${rng.pick(['work', 'home', 'billing', 'personal'])}@${rng.pick(EMAIL_DOMAINS)}`;
    const altPhone = `(${c.area}) 555-01${pad(rng.int(0, 99), 2)}`;
    const order = rng.int(1, SEED_ROW_COUNTS.orders);
    // Every sentence names at least one email and one phone number.
    const sentences = [
      `Customer called from ${c.phone} about a double charge on order #${order}. Asked us to reply to ${c.email}.`,
      `Please update the contact email to ${altEmail}; the old address ${c.email} bounces. Callback number: ${altPhone}.`,
      `Package for order #${order} not delivered. Reached the customer at ${c.phone}, follow-up sent to ${c.email}.`,
      `Wants invoices sent to ${altEmail} instead of ${c.email}. The phone on file is out of date, new one is ${altPhone}.`,
      `Left a voicemail at ${altPhone}, no answer yet. Will email ${c.email} tomorrow if there is no callback.`,
      `Requested account closure by phone from ${c.phone}. Confirmed identity via ${c.email} and the card ending ${c.card.slice(-4)}.`,
      `Refund for order #${order} approved by the team lead; confirmation sent to ${c.email}, customer also notified at ${altPhone}.`,
    ];
    let notes = rng.pick(sentences);
    if (rng.chance(0.4)) notes += ` ${rng.pick(sentences)}`;
    if (rng.chance(0.1)) notes += ` Verified identity with SSN ${c.ssn} before changing the address.`;
    rows.push([String(id), String(c.id), lit(rng.pick(TICKET_SUBJECTS)), lit(notes), lit(iso(times[id - 1]!))]);
  }
}

function apiKeys(rows: string[][]): void {
  const rng = new Rng(0x5eca7);
  const times = rng.sortedTimes(SEED_ROW_COUNTS.api_keys, '2022-01-01T00:00:00Z', '2025-01-01T00:00:00Z');
  for (let id = 1; id <= SEED_ROW_COUNTS.api_keys; id++) {
    const service = id <= SERVICE_KEY_NAMES.length;
    const customerId = service ? null : rng.int(1, SEED_ROW_COUNTS.customers);
    const name = service ? SERVICE_KEY_NAMES[id - 1]! : rng.pick(CUSTOMER_KEY_NAMES);
    let key = 'sk_live_';
    for (let i = 0; i < 32; i++) key += ALNUM[rng.int(0, ALNUM.length - 1)];
    rows.push([String(id), customerId === null ? 'NULL' : String(customerId), lit(name), lit(key), lit(iso(times[id - 1]!))]);
  }
}

function inserts(table: DemoTable, columns: string, rows: readonly string[][], out: string[]): void {
  for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
    const values = rows
      .slice(i, i + ROWS_PER_INSERT)
      .map((r) => `(${r.join(', ')})`)
      .join(',\n');
    out.push(`INSERT INTO ${table} (${columns}) VALUES\n${values}`);
  }
  // Rows carry explicit ids; move the serial on so later INSERTs without an id work.
  out.push(`SELECT setval(pg_get_serial_sequence('${table}', 'id'), ${rows.length})`);
}

/**
 * DDL and INSERT statements for the demo schema, in order, one statement per element (no
 * trailing semicolons). Run them inside one transaction; the last one is `ANALYZE` so row
 * estimates are right from the start. Deterministic: the same array every call.
 */
export function seedSql(): string[] {
  const out: string[] = [...SCHEMA];
  const rows = {
    customers: [] as string[][],
    orders: [] as string[][],
    payments: [] as string[][],
    support_tickets: [] as string[][],
    api_keys: [] as string[][],
  } satisfies Record<DemoTable, string[][]>;
  const people = customers(rows.customers);
  const all = orders(rows.orders, people);
  payments(rows.payments, people, all);
  supportTickets(rows.support_tickets, people);
  apiKeys(rows.api_keys);
  inserts('customers', 'id, full_name, email, phone, ssn, card_number, address, date_of_birth, created_at', rows.customers, out);
  inserts('orders', 'id, customer_id, status, total_cents, created_at', rows.orders, out);
  inserts('payments', 'id, order_id, amount_cents, method, card_last4, paid_at', rows.payments, out);
  inserts('support_tickets', 'id, customer_id, subject, notes, created_at', rows.support_tickets, out);
  inserts('api_keys', 'id, customer_id, name, key, created_at', rows.api_keys, out);
  out.push('ANALYZE');
  return out;
}

/** Exposed for tests: the Luhn check on a whole number. */
export function luhnValid(digits: string): boolean {
  return /^\d+$/.test(digits) && luhnCheckDigit(digits.slice(0, -1)) === digits.charCodeAt(digits.length - 1) - 48;
}
