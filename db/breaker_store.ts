/** Circuit breaker state per broker account, kept in Deno KV so a restart keeps an open breaker open. */
import type { CircuitBreakerSnapshot } from "../lib/circuit_breaker.ts";

/** Loads and saves breaker snapshots. */
export interface BreakerStore {
  load(accountId: string): Promise<CircuitBreakerSnapshot | null>;
  save(accountId: string, snapshot: CircuitBreakerSnapshot): Promise<void>;
}

/** The KV key of an account's breaker. */
export function breakerKey(accountId: string): Deno.KvKey {
  return ["breaker", accountId];
}

/** A store over Deno KV. */
export function kvBreakerStore(kv: Deno.Kv): BreakerStore {
  return {
    async load(accountId) {
      return (await kv.get<CircuitBreakerSnapshot>(breakerKey(accountId))).value;
    },
    async save(accountId, snapshot) {
      await kv.set(breakerKey(accountId), snapshot);
    },
  };
}

/** A store in memory (tests, and instances without KV). */
export function memoryBreakerStore(): BreakerStore {
  const map = new Map<string, CircuitBreakerSnapshot>();
  return {
    load: (id) => Promise.resolve(map.get(id) ?? null),
    save: (id, s) => {
      map.set(id, structuredClone(s));
      return Promise.resolve();
    },
  };
}
