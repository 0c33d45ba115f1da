/** The engine-neutral identity of whoever is behind a connection. */

export type IdentityKind = 'human' | 'agent' | 'service';

/** How the identity was established. */
export type AuthMethod = 'scram-sha-256' | 'password' | 'token' | 'jwt' | 'certificate';

export interface Identity {
  /** Stable identifier, e.g. "user:alice". */
  readonly id: string;
  readonly kind: IdentityKind;
  readonly name: string;
  readonly groups: readonly string[];
  readonly attributes: Readonly<Record<string, string>>;
  readonly authMethod: AuthMethod;
  /** Which credential was used (never the secret itself). */
  readonly credentialId: string;
  /** For agents and workloads: the person who delegated or triggered the work. */
  readonly onBehalfOf?: { readonly id: string; readonly name: string; readonly kind: IdentityKind };
}
