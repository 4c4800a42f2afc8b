/**
 * Group commit for concurrent callers: items added while a flush is under way wait for it to
 * finish and then go together, as one batch, to one call of the runner — typically one statement
 * and one commit for many requests. There is no timer: an item that finds the batcher idle is
 * flushed at once (after the current microtasks, so items added in the same turn join it), so a
 * lone request waits for nothing and batches grow only when the database is the bottleneck.
 */

/** What the runner says about one item of a batch. */
export type BatchOutcome<O> = { ok: true; value: O } | { ok: false; error: unknown };

/**
 * Runs one batch: answers one outcome per item, in the items' order. Throwing (or rejecting)
 * fails every item of the batch with that error.
 */
export type BatchRunner<I, O> = (items: readonly I[]) => Promise<BatchOutcome<O>[]>;

/** Options of {@linkcode Batcher}. */
export interface BatcherOptions {
  /** Most items in one batch (default 256); more wait for the next flush. */
  maxBatch?: number;
}

interface Waiting<I, O> {
  item: I;
  resolve(value: O): void;
  reject(error: unknown): void;
}

/**
 * Collects concurrent items into batches, one batch in flight at a time.
 *
 * @example
 * const lookups = new Batcher<string, Row | null>(async (ids) => {
 *   const rows = await findMany(db, ids);
 *   return ids.map((id) => ({ ok: true, value: rows.get(id) ?? null }));
 * });
 * const row = await lookups.add(id); // with whatever else was added meanwhile
 */
export class Batcher<I, O> {
  readonly #run: BatchRunner<I, O>;
  readonly #maxBatch: number;
  #waiting: Waiting<I, O>[] = [];
  #flushing = false;

  constructor(run: BatchRunner<I, O>, options: BatcherOptions = {}) {
    const maxBatch = options.maxBatch ?? 256;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) {
      throw new RangeError(`Cannot create a batcher: "maxBatch" must be a positive integer`);
    }
    this.#run = run;
    this.#maxBatch = maxBatch;
  }

  /** Items waiting for a flush (not counting the batch in flight). */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Adds `item` to the next batch; settles with its outcome. */
  add(item: I): Promise<O> {
    const { promise, resolve, reject } = Promise.withResolvers<O>();
    this.#waiting.push({ item, resolve, reject });
    if (!this.#flushing) {
      this.#flushing = true;
      queueMicrotask(() => this.#flush());
    }
    return promise;
  }

  async #flush(): Promise<void> {
    try {
      while (this.#waiting.length > 0) {
        const batch = this.#waiting.splice(0, this.#maxBatch);
        let outcomes: BatchOutcome<O>[];
        try {
          outcomes = await this.#run(batch.map((w) => w.item));
          if (outcomes.length !== batch.length) {
            throw new Error(
              `Cannot settle a batch: the runner answered ${outcomes.length} outcomes for ${batch.length} items`,
            );
          }
        } catch (error) {
          for (const w of batch) w.reject(error);
          continue;
        }
        batch.forEach((w, i) => {
          const outcome = outcomes[i]!;
          if (outcome.ok) w.resolve(outcome.value);
          else w.reject(outcome.error);
        });
      }
    } finally {
      this.#flushing = false;
    }
  }
}
