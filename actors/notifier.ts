/**
 * The notifier actor: tells traders on Telegram and Discord what happened, and the operator what
 * went wrong.
 *
 * - It subscribes to the event bus; an event with `origin` set happened on another instance,
 *   which notifies it itself. Each event goes to the user's enabled channels that want its type,
 *   rendered by `lib/notify.ts`. Breaker changes also go to the operator channel (config).
 * - Sends go through one lane per Telegram chat (1 message per second) or Discord webhook
 *   (2 per second), paced with the injected clock; a 429 holds the lane for the `retry_after`
 *   the service names and resends (up to 3 times, waits up to a minute).
 * - A failure a retry can help (network, 5xx, 429) is retried through the durable queue after
 *   10 s, 60 s and 300 s; after the last, or at once for other 4xx answers (bad token, chat not
 *   found, unknown webhook), the notification becomes a `notification_dead_letters` row and a
 *   warning (`deno task notify:replay` resends it).
 * - With an operator channel configured it checks every `monitorIntervalMs` that the database
 *   answers and that the queue has no backlog, alerting once per change.
 * - `daily_summary` (told by the 22:00 UTC cron) sends each user with a channel wanting
 *   `summary.daily` their day's figures per account; a tick claim makes one instance send it.
 * - `log_error` (told per error/critical log line) counts errors per minute of the clock; the
 *   first minute reaching `errorSpikeThreshold` alerts the operator once, and not again until a
 *   minute stays below it.
 */
import type { ActorContext, ActorRef, Behavior, Reply } from "./actor.ts";
import type { Db } from "../db/client.ts";
import {
  type ChannelKind,
  channelsForEvent,
  channelWants,
  countPendingDeadLetters,
  dailySummaries,
  enabledChannelsOf,
  getSealedChannel,
  insertDeadLetter,
  type SealedChannel,
} from "../db/notifications.ts";
import { claimTick } from "../db/leases.ts";
import type { Delivery, Queue } from "../db/queue.ts";
import type { Clock } from "../lib/clock.ts";
import type { Cipher } from "../lib/crypto.ts";
import type { EventBus, PipelineEvent } from "../lib/events.ts";
import { uuidv7 } from "../lib/ids.ts";
import { serializeError } from "../lib/log.ts";
import {
  DAILY_SUMMARY_EVENT,
  type NotifyTarget,
  renderDailySummary,
  renderEvent,
  sendNotification,
  type SendOptions,
  type SendOutcome,
  truncate,
} from "../lib/notify.ts";

/** The durable queue message type of notification retries. */
export const NOTIFY_RETRY_MESSAGE = "notification.send";
/** Waits before the 2nd, 3rd and 4th attempt. */
export const RETRY_DELAYS_MS: readonly number[] = [10_000, 60_000, 300_000];
/** The least time between two messages to one Telegram chat. */
export const TELEGRAM_INTERVAL_MS = 1_000;
/** The least time between two messages to one Discord webhook. */
export const DISCORD_INTERVAL_MS = 500;
/** A 429 asking for a longer wait goes back to the durable queue instead of holding the lane. */
const MAX_HOLD_MS = 60_000;
const MAX_HOLDS = 3;
/** Breaker changes reach the operator as well as the trader. */
const OPERATOR_EVENTS = new Set(["breaker.opened", "breaker.closed"]);

/** One notification to send: plain JSON, as it travels through the durable queue. */
export interface NotifyJob {
  /** The user's channel; null for an operator channel. */
  channelId: string | null;
  /** The operator channel's kind; null for a user's channel. */
  operator: ChannelKind | null;
  userId: string | null;
  eventType: string;
  text: string;
  /** 1 for the first attempt. */
  attempt: number;
}

/** The operator channels from the configuration, secrets in clear. */
export interface OperatorChannels {
  telegram?: { token: string; chatId: string };
  discord?: { webhookUrl: string };
}

/** What the notifier needs. */
export interface NotifierDeps {
  db: Db;
  /** Opens channel secrets (the keyring). */
  cipher: Cipher;
  queue: Queue;
  bus: EventBus;
  clock: Clock;
  operator?: OperatorChannels;
  /** Base URLs and fetch of the services. */
  send?: SendOptions;
  /** Who claims the daily summary's tick (default "local"). */
  instanceId?: string;
}

/** Tunables (tests shorten them). */
export interface NotifierOptions {
  retryDelaysMs?: readonly number[];
  telegramIntervalMs?: number;
  discordIntervalMs?: number;
  /** How often the operator checks run (default 60 s); 0 turns them off. */
  monitorIntervalMs?: number;
  /** Pending queue messages above this are a backlog (default 1000). */
  backlogThreshold?: number;
  /** Error log lines in one minute that make a spike (default 20). */
  errorSpikeThreshold?: number;
  /**
   * How long an event waits for others before their channels are looked up together (default
   * 50 ms; 0: at once, behind the events already in the mailbox). Sends are paced at one or two
   * a second per chat anyway; under load this turns hundreds of lookups a second into twenty.
   */
  eventBatchMs?: number;
}

/** The notifier's messages. */
export type NotifierCommand =
  | { type: "event"; event: PipelineEvent }
  /** A (re)try from the durable queue. */
  | { type: "send"; job: NotifyJob }
  /** Sends a test message to one of `userId`'s channels now; undefined when it has no such channel. */
  | { type: "test"; userId: string; channelId: string; reply: Reply<SendOutcome | undefined> }
  | { type: "monitor" }
  /**
   * Sends the summary of the UTC day of `day` to every user whose channels want it, unless
   * another notifier claimed that day; `reply` gets the number of messages queued.
   */
  | { type: "daily_summary"; day: Date; reply?: Reply<number> }
  /** One error or critical log line was written. */
  | { type: "log_error" }
  | Internal;

type Internal =
  /** Handles the events that arrived since the last flush (see `pendingEvents`). */
  | { type: "flush_events" }
  | { type: "ready"; key: string }
  | { type: "sent"; key: string; item: LaneItem; outcome: SendOutcome };

interface LaneItem {
  job: NotifyJob;
  target: NotifyTarget;
  holds: number;
  reply?: Reply<SendOutcome | undefined>;
}

interface Lane {
  items: LaneItem[];
  busy: boolean;
  notBefore: number;
  /** When the send in flight started (the pace counts from starts, not from answers). */
  startedAt: number;
  intervalMs: number;
}

interface NotifierState {
  lanes: Map<string, Lane>;
  /**
   * Events waiting for the next flush, in arrival order. A burst (a fill publishes two or three)
   * costs one channel lookup for all of its users instead of one per event; the flush message
   * comes `eventBatchMs` after the first of them (or queues behind the events already in the
   * mailbox), and any other message flushes them first.
   */
  pendingEvents: PipelineEvent[];
  flushScheduled: boolean;
  abort: AbortController;
  unsubscribe: () => void;
  databaseUp: boolean;
  backlogged: boolean;
  deadLetters: number;
  /** The minute (ms since the epoch / 60 000) whose errors `errorCount` counts. */
  errorMinute: number;
  errorCount: number;
  /** An error spike was alerted and no minute has been quiet since. */
  spiking: boolean;
}

/** The queue handler that hands retries to the notifier. */
export function notifierQueueHandler(
  notifier: ActorRef<NotifierCommand>,
): (delivery: Delivery) => Promise<void> {
  return (delivery) => notifier.tell({ type: "send", job: delivery.payload as NotifyJob });
}

/**
 * The notifier's behaviour.
 *
 * @example
 * const notifier = createActor("notifier", notifierBehavior(deps), { log });
 * queue.handle(NOTIFY_RETRY_MESSAGE, notifierQueueHandler(notifier.ref));
 */
export function notifierBehavior(
  deps: NotifierDeps,
  options: NotifierOptions = {},
): Behavior<NotifierState, NotifierCommand> {
  const delays = options.retryDelaysMs ?? RETRY_DELAYS_MS;
  const intervals = {
    telegram: options.telegramIntervalMs ?? TELEGRAM_INTERVAL_MS,
    discord: options.discordIntervalMs ?? DISCORD_INTERVAL_MS,
  };
  const monitorMs = options.monitorIntervalMs ?? 60_000;
  const backlogThreshold = options.backlogThreshold ?? 1_000;
  const spikeThreshold = options.errorSpikeThreshold ?? 20;
  const eventBatchMs = options.eventBatchMs ?? 50;
  const { clock } = deps;

  return {
    init(ctx) {
      const abort = new AbortController();
      const unsubscribe = deps.bus.subscribe((event) => {
        if (event.origin) return;
        ctx.self.tell({ type: "event", event }).catch(() => {});
      });
      const state: NotifierState = {
        lanes: new Map(),
        pendingEvents: [],
        flushScheduled: false,
        abort,
        unsubscribe,
        databaseUp: true,
        backlogged: false,
        deadLetters: 0,
        errorMinute: 0,
        errorCount: 0,
        spiking: false,
      };
      scheduleMonitor(state, ctx);
      return state;
    },

    async receive(state, msg, ctx) {
      // Whatever arrived before this message is handled before it (the mailbox stays FIFO).
      if (msg.type !== "event") await flushEvents(state, ctx);
      switch (msg.type) {
        case "event": {
          if (renderEvent(msg.event) === undefined) return state;
          state.pendingEvents.push(msg.event);
          if (!state.flushScheduled) {
            state.flushScheduled = true;
            // Not awaited: with a full mailbox the tell waits for room, and we are the reader.
            const flush = () => ctx.self.tell({ type: "flush_events" }).catch(() => {});
            if (eventBatchMs > 0) {
              clock.sleep(eventBatchMs, state.abort.signal).then(flush, () => {});
            } else flush();
          }
          return state;
        }
        case "flush_events":
          state.flushScheduled = false; // flushEvents above handled them
          return state;
        case "send": {
          const { job } = msg;
          let target: NotifyTarget | undefined;
          if (job.operator) {
            target = operatorTarget(job.operator);
          } else if (job.channelId && job.userId) {
            const channel = await getSealedChannel(deps.db, job.userId, job.channelId);
            target = channel && await openTarget(channel);
          }
          if (!target) {
            ctx.log.info("Dropping a notification retry: its channel is gone", {
              channel_id: job.channelId,
              operator: job.operator,
            });
            return state;
          }
          enqueueLocal(state, { job, target, holds: 0 }, ctx);
          return state;
        }
        case "test": {
          const channel = await getSealedChannel(deps.db, msg.userId, msg.channelId);
          if (!channel) {
            msg.reply.ok(undefined);
            return state;
          }
          const job: NotifyJob = {
            channelId: channel.id,
            operator: null,
            userId: channel.userId,
            eventType: "test",
            text: `✅ trendedge test message for "${channel.name}"`,
            attempt: 1,
          };
          enqueueLocal(state, {
            job,
            target: await openTarget(channel),
            holds: 0,
            reply: msg.reply,
          }, ctx);
          return state;
        }
        case "monitor":
          await monitor(state, ctx);
          scheduleMonitor(state, ctx);
          return state;
        case "daily_summary": {
          try {
            msg.reply?.ok(await dailySummary(state, msg.day, ctx));
          } catch (error) {
            msg.reply?.fail(error);
            throw error;
          }
          return state;
        }
        case "log_error": {
          const minute = Math.floor(clock.now() / 60_000);
          if (minute !== state.errorMinute) {
            // A minute with fewer errors (or none, when minutes were skipped) ends the spike.
            if (minute > state.errorMinute + 1 || state.errorCount < spikeThreshold) {
              state.spiking = false;
            }
            state.errorMinute = minute;
            state.errorCount = 0;
          }
          state.errorCount++;
          if (state.errorCount >= spikeThreshold && !state.spiking) {
            state.spiking = true;
            operatorAlert(
              state,
              "system.error_spike",
              `🚨 ${state.errorCount} errors in the last minute`,
              ctx,
            );
          }
          return state;
        }
        case "ready": {
          const lane = state.lanes.get(msg.key);
          if (lane) lane.busy = false;
          pump(state, msg.key, ctx);
          return state;
        }
        case "sent":
          await settle(state, msg.key, msg.item, msg.outcome, ctx);
          return state;
        default: {
          const never: never = msg;
          throw new Error(`Cannot handle notifier message: ${JSON.stringify(never)}`);
        }
      }
    },

    stop(state) {
      state.unsubscribe();
      state.abort.abort();
    },
  };

  /** Sends the pending events to their users' channels: one channel lookup for them all. */
  async function flushEvents(state: NotifierState, ctx: ActorContext<NotifierCommand>) {
    if (state.pendingEvents.length === 0) return;
    const events = state.pendingEvents.splice(0);
    const users = [...new Set(events.flatMap((e) => e.userId ? [e.userId] : []))];
    const channels = Map.groupBy(await enabledChannelsOf(deps.db, users), (c) => c.userId);
    const targets = new Map<string, NotifyTarget>(); // each secret opened once per flush
    for (const event of events) {
      const text = renderEvent(event)!;
      for (const channel of channels.get(event.userId) ?? []) {
        if (!channelWants(channel, event.type)) continue;
        const job: NotifyJob = {
          channelId: channel.id,
          operator: null,
          userId: channel.userId,
          eventType: event.type,
          text,
          attempt: 1,
        };
        let target = targets.get(channel.id);
        if (!target) targets.set(channel.id, target = await openTarget(channel));
        enqueueLocal(state, { job, target, holds: 0 }, ctx);
      }
      if (OPERATOR_EVENTS.has(event.type)) {
        operatorAlert(state, event.type, `[operator] user ${event.userId}: ${text}`, ctx);
      }
    }
  }

  async function openTarget(channel: SealedChannel): Promise<NotifyTarget> {
    const secret = await deps.cipher.decrypt(channel.secret);
    return channel.kind === "telegram"
      ? { kind: "telegram", token: secret, chatId: channel.chatId ?? "" }
      : { kind: "discord", webhookUrl: secret };
  }

  function operatorTarget(kind: ChannelKind): NotifyTarget | undefined {
    const op = deps.operator;
    if (kind === "telegram" && op?.telegram) return { kind: "telegram", ...op.telegram };
    if (kind === "discord" && op?.discord) return { kind: "discord", ...op.discord };
    return undefined;
  }

  function operatorAlert(
    state: NotifierState,
    eventType: string,
    text: string,
    ctx: ActorContext<NotifierCommand>,
  ) {
    for (const kind of ["telegram", "discord"] as const) {
      const target = operatorTarget(kind);
      if (!target) continue;
      const job: NotifyJob = {
        channelId: null,
        operator: kind,
        userId: null,
        eventType,
        text: truncate(text),
        attempt: 1,
      };
      enqueueLocal(state, { job, target, holds: 0 }, ctx);
    }
  }

  function laneKey(target: NotifyTarget): string {
    return target.kind === "telegram"
      ? `telegram:${target.chatId}`
      : `discord:${new URL(target.webhookUrl).pathname}`;
  }

  function enqueueLocal(state: NotifierState, item: LaneItem, ctx: ActorContext<NotifierCommand>) {
    const key = laneKey(item.target);
    let lane = state.lanes.get(key);
    if (!lane) {
      lane = {
        items: [],
        busy: false,
        notBefore: 0,
        startedAt: 0,
        intervalMs: intervals[item.target.kind],
      };
      state.lanes.set(key, lane);
    }
    lane.items.push(item);
    pump(state, key, ctx);
  }

  function pump(state: NotifierState, key: string, ctx: ActorContext<NotifierCommand>) {
    const lane = state.lanes.get(key);
    if (!lane || lane.busy) return;
    const now = clock.now();
    if (lane.items.length === 0) {
      if (lane.notBefore <= now) state.lanes.delete(key);
      return;
    }
    lane.busy = true;
    const wait = lane.notBefore - now;
    if (wait > 0) {
      clock.sleep(wait, state.abort.signal).then(
        () => ctx.self.tell({ type: "ready", key }),
        () => {},
      ).catch(() => {});
      return;
    }
    const item = lane.items.shift()!;
    lane.startedAt = now;
    sendNotification(item.target, item.job.text, deps.send)
      .then((outcome) => ctx.self.tell({ type: "sent", key, item, outcome }))
      .catch(() => {});
  }

  async function settle(
    state: NotifierState,
    key: string,
    item: LaneItem,
    outcome: SendOutcome,
    ctx: ActorContext<NotifierCommand>,
  ) {
    const lane = state.lanes.get(key);
    const now = clock.now();
    if (lane) {
      lane.busy = false;
      // A slow answer does not push the next send further out: 1 message per interval of starts.
      lane.notBefore = lane.startedAt + lane.intervalMs;
    }
    const { job } = item;
    const fields = {
      channel_id: job.channelId,
      operator: job.operator,
      user_id: job.userId,
      event_type: job.eventType,
      attempt: job.attempt,
    };
    if (outcome.ok) {
      item.reply?.ok(outcome);
      ctx.log.debug("Notification sent", fields);
    } else if (item.reply) {
      // A test message answers the caller; nothing is retried.
      item.reply.ok(outcome);
    } else if (
      lane && outcome.retryAfterMs !== undefined && outcome.retryAfterMs <= MAX_HOLD_MS &&
      item.holds < MAX_HOLDS
    ) {
      lane.notBefore = now + Math.max(outcome.retryAfterMs, lane.intervalMs);
      lane.items.unshift({ ...item, holds: item.holds + 1 });
      ctx.log.info("Notification rate limited; holding the lane", {
        ...fields,
        retry_after_ms: outcome.retryAfterMs,
      });
    } else if (outcome.retryable && job.attempt <= delays.length) {
      const delayMs = Math.max(delays[job.attempt - 1]!, outcome.retryAfterMs ?? 0);
      await deps.queue.enqueue({
        type: NOTIFY_RETRY_MESSAGE,
        payload: { ...job, attempt: job.attempt + 1 },
      }, { delayMs });
      ctx.log.info("Notification failed; retrying through the queue", {
        ...fields,
        delay_ms: delayMs,
        error: outcome.error,
      });
    } else {
      await deadLetter(state, job, outcome.error, ctx);
    }
    pump(state, key, ctx);
  }

  async function deadLetter(
    _state: NotifierState,
    job: NotifyJob,
    error: string,
    ctx: ActorContext<NotifierCommand>,
  ) {
    const id = uuidv7(clock.now());
    const fields = {
      dead_letter_id: id,
      channel_id: job.channelId,
      operator: job.operator,
      user_id: job.userId,
      event_type: job.eventType,
      attempts: job.attempt,
      error,
    };
    try {
      await insertDeadLetter(deps.db, {
        id,
        channelId: job.channelId,
        operator: job.operator,
        userId: job.userId,
        eventType: job.eventType,
        message: job.text,
        attempts: job.attempt,
        lastError: error,
        createdAt: new Date(clock.now()),
      });
    } catch (cause) {
      // An operator alert about a dead database cannot be kept in it: log it, don't crash.
      if (!job.operator) throw cause;
      ctx.log.error("Cannot keep an operator notification as a dead letter", {
        ...fields,
        cause: serializeError(cause),
      });
      return;
    }
    ctx.log.warning("Notification failed for good; kept as a dead letter", fields);
  }

  async function dailySummary(
    state: NotifierState,
    day: Date,
    ctx: ActorContext<NotifierCommand>,
  ): Promise<number> {
    const dayStart = new Date(Math.floor(day.getTime() / 86_400_000) * 86_400_000);
    // Everything that reads the database first: a failure here leaves the day unclaimed, so the
    // cron's retry (or another instance) can still send it.
    const rows = await dailySummaries(deps.db, dayStart, DAILY_SUMMARY_EVENT);
    const items: LaneItem[] = [];
    for (const [userId, lines] of Map.groupBy(rows, (row) => row.userId)) {
      const text = renderDailySummary(dayStart, lines);
      for (const channel of await channelsForEvent(deps.db, userId, DAILY_SUMMARY_EVENT)) {
        const job: NotifyJob = {
          channelId: channel.id,
          operator: null,
          userId,
          eventType: DAILY_SUMMARY_EVENT,
          text,
          attempt: 1,
        };
        items.push({ job, target: await openTarget(channel), holds: 0 });
      }
    }
    if (!await claimTick(deps.db, DAILY_SUMMARY_EVENT, dayStart, deps.instanceId ?? "local")) {
      ctx.log.debug("Daily summary already claimed", { day: dayStart.toISOString() });
      return 0;
    }
    for (const item of items) enqueueLocal(state, item, ctx);
    const queued = items.length;
    ctx.log.info("Daily summary queued", { day: dayStart.toISOString(), messages: queued });
    return queued;
  }

  function scheduleMonitor(state: NotifierState, ctx: ActorContext<NotifierCommand>) {
    if (monitorMs <= 0 || !deps.operator || (!deps.operator.telegram && !deps.operator.discord)) {
      return;
    }
    clock.sleep(monitorMs, state.abort.signal).then(
      () => ctx.self.tell({ type: "monitor" }),
      () => {},
    ).catch(() => {});
  }

  async function monitor(state: NotifierState, ctx: ActorContext<NotifierCommand>) {
    let up = true;
    let problem = "";
    try {
      await deps.db.ping(5_000);
    } catch (error) {
      up = false;
      problem = (error as Error).message;
    }
    if (up !== state.databaseUp) {
      state.databaseUp = up;
      operatorAlert(
        state,
        up ? "system.database_recovered" : "system.database_unreachable",
        up ? "🟢 The database answers again" : `🚨 The database is unreachable: ${problem}`,
        ctx,
      );
    }
    if (!up) return;
    const depth = await deps.queue.depth().catch(() => undefined);
    const dead = await countPendingDeadLetters(deps.db).catch(() => state.deadLetters);
    const backlogged = (depth?.pending ?? 0) > backlogThreshold || (depth?.deadLetters ?? 0) > 0;
    if (backlogged && !state.backlogged) {
      operatorAlert(
        state,
        "system.queue_backlog",
        `⚠️ Queue backlog: ${depth?.pending ?? "?"} pending, ${
          depth?.deadLetters ?? "?"
        } dead letters in the durable queue`,
        ctx,
      );
    }
    state.backlogged = backlogged;
    if (dead > state.deadLetters) {
      operatorAlert(
        state,
        "system.notification_dead_letters",
        `⚠️ ${dead} notification(s) failed for good; run deno task notify:replay`,
        ctx,
      );
    }
    state.deadLetters = dead;
  }
}
