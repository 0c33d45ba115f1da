/** Test helper shared by the store contract suites (not a test file itself). */
import { after, before } from 'node:test';
import type { Store } from './sqlite-store.js';

/** An empty place for a store: open it (as often as a test likes), remove it. */
export interface StoreLocation {
  open(): Promise<Store>;
  cleanup(): Promise<void>;
}

/** A fresh store for the enclosing describe, opened before its tests and removed after them. */
export function useStore<L extends StoreLocation>(make: () => Promise<L>): { store(): Store; location(): L } {
  let location: L | undefined;
  let store: Store | undefined;
  before(async () => {
    location = await make();
    store = await location.open();
  });
  after(async () => {
    await store?.close();
    await location?.cleanup();
  });
  return { store: () => store!, location: () => location! };
}
