/** Circuit breaker state per broker account, kept in Deno KV so a restart keeps an open breaker open. */
import {
  CircuitBreaker,
  type CircuitBreakerSnapshot,
  type CircuitState,
} from "../lib/circuit_breaker.ts";
import type { Clock } from "../lib/clock.ts";

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

/** The state of an account's breaker as stored ("closed" when it never failed). */
export async function storedBreakerState(
  store: BreakerStore,
  accountId: string,
  clock: Clock,
): Promise<CircuitState> {
  const snapshot = await store.load(accountId);
  return snapshot ? CircuitBreaker.restore(snapshot, { clock }).state : "closed";
}
