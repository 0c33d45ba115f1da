/**
 * Column-name classification: which sensitivity class a result column holds, judged by its name
 * alone (the proxy adds catalog, lineage and content evidence on top). Configured rules run
 * first, in order; then the built-in phrases, unless turned off. Everything is compiled in the
 * constructor; `classify` is a cached map lookup for names seen before.
 */
import { ConfigError } from '../errors.js';
import { isMaskClass, type MaskClass } from './classes.js';

/** A configured name rule. */
export interface NameRule {
  /**
   * Exact name, glob (`*` any run, `?` one character; e.g. `*_email`) or `/regex/flags`.
   * Exact names and globs are case-insensitive and tried against both the raw name and its
   * normalized form (so `*_email` also matches `customerEmail`).
   */
  readonly pattern: string;
  /** The class of matching columns; `none` exempts them (also from the built-in phrases). */
  readonly class: MaskClass | 'none';
}

/** Options of a name classifier. */
export interface NameClassifierOptions {
  /** Rules tried before the built-in phrases, first match wins. */
  readonly rules?: readonly NameRule[];
  /** Whether the built-in phrases apply (default true). */
  readonly defaults?: boolean;
}

/**
 * Built-in phrases, as normalized names (tokens joined by `_`). A column matches a phrase when its
 * normalized name equals the phrase or ends with it as whole tokens (`billing_email` ends with
 * `email`); the phrase with the most tokens wins (`email_address` beats `address`). Each
 * multi-token phrase also matches its tokens run together (`firstname`, `zipcode`).
 */
export const DEFAULT_NAME_PHRASES: Readonly<Record<MaskClass | 'none', readonly string[]>> = Object.freeze({
  email: ['email', 'e_mail', 'email_address', 'e_mail_address'],
  phone: ['phone', 'mobile', 'msisdn', 'phone_number', 'phone_no', 'telephone', 'mobile_number', 'cell_phone', 'fax'],
  person_name: ['first_name', 'last_name', 'full_name', 'surname', 'given_name', 'family_name', 'middle_name', 'maiden_name'],
  national_id: [
    'ssn',
    'national_id',
    'national_id_number',
    'tax_id',
    'passport_number',
    'passport_no',
    'social_security_number',
    'driver_license_number',
    'drivers_license_number',
  ],
  payment_card: ['card_number', 'cc_number', 'pan', 'credit_card', 'credit_card_number', 'card_no', 'cvv', 'cvc'],
  iban: ['iban'],
  ip_address: ['ip', 'ip_address', 'ip_addr', 'client_ip', 'remote_addr', 'remote_ip', 'ipv4', 'ipv6', 'ipv4_address', 'ipv6_address'],
  date_of_birth: ['dob', 'date_of_birth', 'birth_date', 'birthdate', 'birthday'],
  address: ['address', 'street', 'street_address', 'postal_code', 'zip', 'zip_code', 'postcode', 'address_line'],
  secret: [
    'password',
    'passwd',
    'password_hash',
    'secret',
    'api_key',
    'token',
    'access_token',
    'refresh_token',
    'private_key',
    'client_secret',
    'secret_key',
  ],
  free_text: [],
  // Names ending in a default phrase that are not what the phrase suggests.
  none: ['mac_address', 'token_type'],
});

/**
 * A column name as lower-case tokens joined by `_`: split on every character that is not a
 * letter or digit and at camelCase boundaries (`customerEMailAddress` -> `customer_e_mail_address`,
 * `IPAddress` -> `ip_address`). Digits stay in their token (`ipv4`).
 */
export function normalizeColumnName(name: string): string {
  // lower->Upper and ACRONYMWord boundaries, then any run of non-alphanumerics is one separator.
  return name
    .replace(/([\p{Ll}\p{N}])(\p{Lu})/gu, '$1_$2')
    .replace(/(\p{Lu})(\p{Lu}\p{Ll})/gu, '$1_$2')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, '_')
    .replace(/^_+|_+$/g, '');
}

/** A compiled configured rule. */
interface CompiledRule {
  readonly re: RegExp;
  /** Regexes written by the user see the raw name only; globs see raw and normalized. */
  readonly rawOnly: boolean;
  readonly cls: MaskClass | null;
}

/** Results cached per raw name; bounded so a stream of generated aliases cannot grow it forever. */
const CACHE_LIMIT = 4096;

/** Classifies result columns by name; construct once per configuration. */
export class NameClassifier {
  readonly #rules: readonly CompiledRule[];
  readonly #phrases: ReadonlyMap<string, MaskClass | null>;
  readonly #cache = new Map<string, MaskClass | null>();

  /** Validates and compiles the rules; throws ConfigError naming a bad rule. */
  constructor(opts: NameClassifierOptions = {}) {
    this.#rules = (opts.rules ?? []).map((r, i) => compileRule(r, i));
    const phrases = new Map<string, MaskClass | null>();
    if (opts.defaults !== false) {
      for (const [cls, list] of Object.entries(DEFAULT_NAME_PHRASES)) {
        for (const p of list) {
          const value = cls === 'none' ? null : (cls as MaskClass);
          phrases.set(p, value);
          if (p.includes('_') && !phrases.has(p.replaceAll('_', ''))) phrases.set(p.replaceAll('_', ''), value);
        }
      }
    }
    this.#phrases = phrases;
  }

  /** The class of a column named `name`, or null when neither a rule nor a phrase matches. */
  classify(name: string): MaskClass | null {
    const hit = this.#cache.get(name);
    if (hit !== undefined) return hit;
    const cls = this.#classify(name);
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(name, cls);
    return cls;
  }

  #classify(name: string): MaskClass | null {
    const normalized = normalizeColumnName(name);
    const lower = name.toLowerCase();
    for (const r of this.#rules) {
      if (r.rawOnly ? r.re.test(name) : r.re.test(lower) || r.re.test(normalized)) return r.cls;
    }
    if (this.#phrases.size === 0 || normalized.length === 0) return null;
    const tokens = normalized.split('_');
    const cls = this.#matchPhrase(tokens);
    if (cls !== undefined) return cls;
    // Trailing counters do not change what a column holds: phone2, address_line_1, email_2.
    while (tokens.length > 1 && /^\d+$/.test(tokens[tokens.length - 1]!)) tokens.pop();
    tokens[tokens.length - 1] = tokens[tokens.length - 1]!.replace(/(\D)\d+$/, '$1');
    return this.#matchPhrase(tokens) ?? null;
  }

  /** The phrase class for the longest matching token suffix (so `email_address` beats `address`). */
  #matchPhrase(tokens: readonly string[]): MaskClass | null | undefined {
    for (let i = 0; i < tokens.length; i++) {
      const cls = this.#phrases.get(i === 0 ? tokens.join('_') : tokens.slice(i).join('_'));
      if (cls !== undefined) return cls;
    }
    return undefined;
  }
}

/** A name classifier for the given options (see NameClassifier). */
export function createNameClassifier(opts: NameClassifierOptions = {}): NameClassifier {
  return new NameClassifier(opts);
}

function compileRule(rule: NameRule, index: number): CompiledRule {
  const where = `masking name rule #${index + 1}`;
  if (typeof rule?.pattern !== 'string' || rule.pattern.length === 0) throw new ConfigError(`${where}: pattern must be a non-empty string`);
  if (rule.class !== 'none' && !isMaskClass(rule.class)) throw new ConfigError(`${where}: unknown class ${JSON.stringify(rule.class)}`);
  const cls = rule.class === 'none' ? null : rule.class;
  const m = /^\/(.+)\/([a-z]*)$/s.exec(rule.pattern);
  if (m) {
    try {
      // Drop g/y: they make test() stateful across calls.
      return { re: new RegExp(m[1]!, m[2]!.replace(/[gy]/g, '')), rawOnly: true, cls };
    } catch (err) {
      throw new ConfigError(`${where}: invalid regular expression ${rule.pattern}`, { cause: err });
    }
  }
  const body = rule.pattern
    .toLowerCase()
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return { re: new RegExp(`^${body}$`, 's'), rawOnly: false, cls };
}
