/**
 * The in-process event bus: every state change of the pipeline is published here as a typed,
 * serializable event; the WebSocket hub and the notifier subscribe. Subscribers are called
 * synchronously and must not throw (a throwing subscriber is logged and skipped, never allowed
 * to break the publisher).
 */
import { type Logger, serializeError } from "./log.ts";

/** The events of the pipeline, by type. */
export type PipelineEventType =
  | "signal.received"
  | "signal.rejected"
  | "trade.created"
  | "trade.updated"
  | "trade.closed"
  | "breaker.opened"
  | "breaker.closed"
  | "position.mismatch"
  | "webhook_key.expiring"
  | "trendline.new"
  | "trendline.alert"
  | "trendline.retired"
  | "scan.complete";

/** One event. `data` is plain JSON. */
export interface PipelineEvent {
  type: PipelineEventType;
  userId: string;
  accountId?: string;
  signalId?: string;
  orderId?: string;
  at: string;
  data: Record<string, unknown>;
  /** The instance that published it, when that was another one (db/cluster.ts). */
  origin?: string;
}

/** A subscriber. */
export type EventListener = (event: PipelineEvent) => void;

/** Publish/subscribe within the process. */
export class EventBus {
  #listeners = new Set<EventListener>();
  #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Delivers `event` to every subscriber. */
  publish(event: PipelineEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#log.error("Event subscriber failed", {
          event: event.type,
          error: serializeError(error),
        });
      }
    }
  }

  /** Subscribes; returns the function that unsubscribes. */
  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
