import { type Queue } from "./queue.ts";
import { createKvQueue } from "./queue_kv.ts";
import { queueContract, type QueueStorage } from "./_queue_contract.ts";

/** A KV file in a temp dir; a restart closes the KV and the next open reopens the file. */
async function kvStorage(): Promise<QueueStorage> {
  const dir = await Deno.makeTempDir({ prefix: "trendedge-queue-kv-" });
  const path = `${dir}/kv.sqlite3`;
  let kv: Deno.Kv | undefined;
  let queues: Queue[] = [];

  async function restart() {
    for (const queue of queues) await queue.close(2_000);
    queues = [];
    kv?.close();
    kv = undefined;
  }

  return {
    workerArgs: ["kv", path],
    async open({ log, backoffMs }) {
      kv ??= await Deno.openKv(path);
      // A short first redelivery step, so that a crashed message comes back soon in tests.
      const queue = createKvQueue(kv, { log, backoffMs, redeliveryBackoffMs: [100, 1_000, 5_000] });
      queues.push(queue);
      return queue;
    },
    restart,
    async [Symbol.asyncDispose]() {
      await restart();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

queueContract({ name: "kv queue", setup: kvStorage, crashable: true });
