/**
 * A bounded, typed FIFO between senders and one actor. A full mailbox makes senders wait
 * (back-pressure) instead of growing without limit or dropping messages.
 */

/** A message was sent to a closed mailbox, or its sender was waiting when it closed. */
export class MailboxClosedError extends Error {
  override name = "MailboxClosedError";
}

/** Options of {@linkcode Mailbox}. */
export interface MailboxOptions {
  /** How many messages the mailbox holds before senders wait; a positive integer. */
  capacity: number;
  /** Named in error messages, usually after the actor that owns the mailbox. */
  name?: string;
}

type Sender<T> = { msg: T; resolve: () => void; reject: (error: unknown) => void };
type Receiver<T> = {
  resolve: (msg: T | undefined) => void;
  done: boolean;
  /** Removes the abort listener, so a long-lived signal does not collect listeners. */
  release?: () => void;
};

/** Smallest initial ring size; the ring doubles up to the capacity as it fills. */
const MIN_RING = 16;

/**
 * A bounded FIFO mailbox. Enqueue and dequeue are O(1): messages sit in a ring buffer and
 * waiting senders and receivers in head-indexed queues.
 *
 * @example
 * const mailbox = new Mailbox<string>({ capacity: 100 });
 * await mailbox.send("tick"); // waits while the mailbox is full
 * const msg = await mailbox.receive(); // "tick"; undefined once closed and empty
 */
export class Mailbox<T> {
  #ring: (T | undefined)[];
  #head = 0;
  #size = 0;
  #capacity: number;
  #name: string | undefined;
  #closed = false;
  #senders = new Fifo<Sender<T>>();
  #receivers = new Fifo<Receiver<T>>();

  constructor(options: MailboxOptions) {
    const { capacity } = options;
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(
        `Cannot create mailbox: capacity must be a positive integer, got "${capacity}"`,
      );
    }
    this.#capacity = capacity;
    this.#name = options.name;
    this.#ring = new Array(Math.min(capacity, MIN_RING));
  }

  /** Messages queued now, not counting senders still waiting for room. */
  get size(): number {
    return this.#size;
  }

  /** The most messages the mailbox holds before senders wait. */
  get capacity(): number {
    return this.#capacity;
  }

  /** True once {@linkcode Mailbox.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Enqueues `msg`, waiting while the mailbox is full; waiting senders are admitted in the
   * order they came. Rejects with {@linkcode MailboxClosedError} when the mailbox is closed,
   * including while waiting.
   */
  send(msg: T): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError());
    if (this.#offer(msg)) return Promise.resolve();
    return new Promise((resolve, reject) => this.#senders.push({ msg, resolve, reject }));
  }

  /**
   * Enqueues `msg` only if that needs no waiting; returns whether it did. Throws
   * {@linkcode MailboxClosedError} when the mailbox is closed.
   */
  trySend(msg: T): boolean {
    if (this.#closed) throw this.#closedError();
    return this.#offer(msg);
  }

  /**
   * The next message, waiting for one if the mailbox is empty; `undefined` once the mailbox is
   * closed and empty. When `signal` aborts while waiting, rejects with its reason and takes no
   * message.
   */
  receive(signal?: AbortSignal): Promise<T | undefined> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#size > 0) return Promise.resolve(this.#take());
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const receiver: Receiver<T> = { resolve, done: false };
      if (signal) {
        const onAbort = () => {
          receiver.done = true;
          reject(signal.reason);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        receiver.release = () => signal.removeEventListener("abort", onAbort);
      }
      this.#receivers.push(receiver);
    });
  }

  /**
   * Removes and returns every queued message, then those of waiting senders (whose `send`
   * then resolves), in order. Used to drop what is left when the owner stops.
   */
  drain(): T[] {
    const out: T[] = [];
    while (this.#size > 0) out.push(this.#take());
    for (let s = this.#senders.shift(); s; s = this.#senders.shift()) {
      out.push(s.msg);
      s.resolve();
    }
    return out;
  }

  /**
   * Refuses further sends and rejects waiting senders with {@linkcode MailboxClosedError};
   * queued messages can still be received, then `receive` returns `undefined`.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (let s = this.#senders.shift(); s; s = this.#senders.shift()) {
      s.reject(this.#closedError());
    }
    // Receivers only wait on an empty mailbox, so they get the end-of-mail marker.
    for (let r = this.#receivers.shift(); r; r = this.#receivers.shift()) {
      this.#deliver(r, undefined);
    }
  }

  /** Hands `msg` to a waiting receiver or queues it; false when it would have to wait. */
  #offer(msg: T): boolean {
    // Senders wait only while the ring is full (`#take` admits one per freed slot), so the
    // capacity check below also keeps a newcomer from overtaking them.
    for (let r = this.#receivers.shift(); r; r = this.#receivers.shift()) {
      if (this.#deliver(r, msg)) return true;
    }
    if (this.#size >= this.#capacity) return false;
    this.#push(msg);
    return true;
  }

  #deliver(receiver: Receiver<T>, msg: T | undefined): boolean {
    if (receiver.done) return false;
    receiver.done = true;
    receiver.release?.();
    receiver.resolve(msg);
    return true;
  }

  #push(msg: T): void {
    if (this.#size === this.#ring.length) this.#grow();
    this.#ring[(this.#head + this.#size) % this.#ring.length] = msg;
    this.#size++;
  }

  /** Dequeues the oldest message (the caller checked `size > 0`) and admits a waiting sender. */
  #take(): T {
    const msg = this.#ring[this.#head] as T;
    this.#ring[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#ring.length;
    this.#size--;
    const sender = this.#senders.shift();
    if (sender) {
      this.#push(sender.msg);
      sender.resolve();
    }
    return msg;
  }

  #grow(): void {
    const length = Math.min(this.#capacity, this.#ring.length * 2);
    const ring: (T | undefined)[] = new Array(length);
    for (let i = 0; i < this.#size; i++) {
      ring[i] = this.#ring[(this.#head + i) % this.#ring.length];
    }
    this.#ring = ring;
    this.#head = 0;
  }

  #closedError(): MailboxClosedError {
    const target = this.#name === undefined ? "the mailbox" : `mailbox "${this.#name}"`;
    return new MailboxClosedError(`Cannot send to ${target}: it is closed`);
  }
}

/** A FIFO queue with O(1) amortized push and shift (a head index instead of `Array.shift`). */
class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  push(item: T): void {
    this.#items.push(item);
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head++;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
}
