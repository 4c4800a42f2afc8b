/**
 * What instances on one PostgreSQL tell each other, over `LISTEN/NOTIFY`:
 *
 * - events (`trendedge_events`): every event published on one instance's bus is published on
 *   every other's, marked with its `origin`, so a WebSocket client sees the signals whichever
 *   instance received them. Events are batched per tick into as few notifications as fit
 *   PostgreSQL's 8,000-byte payload limit.
 * - dispatches (`trendedge_dispatch`): a signal accepted by an instance that does not run its
 *   account's executor is handed to the one that does.
 */
import type { EventBus, PipelineEvent } from "../lib/events.ts";
import type { Logger } from "../lib/log.ts";
import type { Db } from "./client.ts";

/** The channel of the event bridge. */
export const EVENTS_CHANNEL = "trendedge_events";
/** The channel of forwarded dispatches. */
export const DISPATCH_CHANNEL = "trendedge_dispatch";

// PostgreSQL refuses payloads of 8,000 bytes or more.
const MAX_PAYLOAD_BYTES = 7_900;
const encoder = new TextEncoder();

/** Options of {@linkcode bridgeEvents}. */
export interface BridgeOptions {
  instanceId: string;
  log: Logger;
}

/**
 * Sends this instance's events to the others and publishes theirs here. Returns the function
 * that stops the bridge (flushing what is pending).
 */
export async function bridgeEvents(
  db: Db,
  bus: EventBus,
  options: BridgeOptions,
): Promise<() => Promise<void>> {
  const { instanceId, log } = options;
  let pending: PipelineEvent[] = [];
  let flushing: Promise<void> | undefined;

  const flush = async () => {
    const batch = pending;
    pending = [];
    for (const payload of payloads(instanceId, batch, log)) {
      try {
        await db.query("SELECT pg_notify($1, $2)", [EVENTS_CHANNEL, payload]);
      } catch (error) {
        log.warning("Cannot send events to the other instances", {
          error: (error as Error).message,
        });
      }
    }
  };
  const unsubscribe = bus.subscribe((event) => {
    if (event.origin !== undefined) return; // came from another instance
    pending.push(event);
    flushing ??= new Promise<void>((resolve) => setTimeout(resolve, 0)).then(flush).finally(() => {
      flushing = undefined;
    });
  });
  const unlisten = await db.listen(EVENTS_CHANNEL, (payload) => {
    let message: { origin: string; events: PipelineEvent[] };
    try {
      message = JSON.parse(payload);
    } catch {
      log.warning("Ignored a malformed event notification");
      return;
    }
    if (message.origin === instanceId) return;
    for (const event of message.events) bus.publish({ ...event, origin: message.origin });
  });
  return async () => {
    unsubscribe();
    await flushing;
    await unlisten();
  };
}

/** Calls `onDispatch` for every signal another instance hands to this one. */
export function listenForDispatches(
  db: Db,
  instanceId: string,
  onDispatch: (signal: { signalId: string; accountId: string }) => void,
): Promise<() => Promise<void>> {
  return db.listen(DISPATCH_CHANNEL, (payload) => {
    try {
      const message = JSON.parse(payload) as {
        origin: string;
        signalId: string;
        accountId: string;
      };
      if (message.origin === instanceId) return;
      if (typeof message.signalId !== "string" || typeof message.accountId !== "string") return;
      onDispatch({ signalId: message.signalId, accountId: message.accountId });
    } catch {
      // not ours
    }
  });
}

/** Hands a signal to whichever instance runs its account's executor. */
export async function forwardDispatch(
  db: Db,
  instanceId: string,
  signal: { signalId: string; accountId: string },
): Promise<void> {
  await db.query("SELECT pg_notify($1, $2)", [
    DISPATCH_CHANNEL,
    JSON.stringify({ origin: instanceId, ...signal }),
  ]);
}

/** Splits events into JSON payloads under the size limit (an event too large alone is dropped). */
function* payloads(origin: string, events: PipelineEvent[], log: Logger): Generator<string> {
  let batch: PipelineEvent[] = [];
  const text = (list: PipelineEvent[]) => JSON.stringify({ origin, events: list });
  for (const event of events) {
    if (encoder.encode(text([event])).length > MAX_PAYLOAD_BYTES) {
      log.warning("Event too large for the other instances; delivered here only", {
        event: event.type,
      });
      continue;
    }
    if (batch.length > 0 && encoder.encode(text([...batch, event])).length > MAX_PAYLOAD_BYTES) {
      yield text(batch);
      batch = [];
    }
    batch.push(event);
  }
  if (batch.length > 0) yield text(batch);
}
