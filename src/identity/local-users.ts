/** Local users from the configuration, authenticated with SCRAM-SHA-256 verifiers. */
import { randomBytes } from 'node:crypto';
import type { UserConfig } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import type { Identity } from './identity.js';
import { decoyVerifier, parseVerifier, type ScramVerifier } from './scram.js';

export interface LocalUser {
  readonly verifier: ScramVerifier;
  readonly identity: Identity;
}

export class LocalUsers {
  readonly #users = new Map<string, LocalUser>();
  /** Per-process secret for decoy verifiers of unknown users. */
  readonly #decoySecret = randomBytes(32);

  constructor(users: readonly UserConfig[], file = 'configuration') {
    users.forEach((u, i) => {
      const verifier = parseVerifier(u.password);
      if (!verifier) throw new ConfigError(`${file}: users[${i}].password: expected a SCRAM-SHA-256 verifier (see \`gatehouse user add\`)`);
      this.#users.set(u.name, {
        verifier,
        identity: {
          id: `user:${u.name}`,
          kind: u.kind,
          name: u.name,
          groups: [...u.groups],
          attributes: { ...u.attributes },
          authMethod: 'scram-sha-256',
          credentialId: `local:${u.name}`,
        },
      });
    });
  }

  get(name: string): LocalUser | undefined {
    return this.#users.get(name);
  }

  /** The verifier to run the exchange with: the user's, or a decoy so unknown names are not revealed. */
  verifierFor(name: string): ScramVerifier {
    return this.#users.get(name)?.verifier ?? decoyVerifier(name, this.#decoySecret);
  }
}
