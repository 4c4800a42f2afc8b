/**
 * `deno task notify:replay [--id ID | --all]` — resends notifications kept as dead letters (they
 * failed every attempt, or met a 4xx such as "chat not found" that the trader has since fixed).
 * Each one is sent once, now, to its channel (or the configured operator channel); a success
 * marks the row replayed, a failure leaves it for a later replay. Telegram chats get one message
 * per second. Prints the counts; exits 1 when any resend failed, 64 on bad flags.
 */
import { getSealedChannel, markReplayed, pendingDeadLetters } from "../db/notifications.ts";
import { describeDatabase, openOperatorDb } from "../db/open.ts";
import { TELEGRAM_INTERVAL_MS } from "../actors/notifier.ts";
import { fail, parseFlags, print, printError } from "../lib/cli.ts";
import { systemClock } from "../lib/clock.ts";
import { configuredKeyring } from "../lib/crypto.ts";
import { type NotifyTarget, sendNotification } from "../lib/notify.ts";

const USAGE = "Usage: deno task notify:replay [--id ID | --all]";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

async function main(args: string[]) {
  const flags = parseFlags(args, { id: {}, all: { boolean: true } }, USAGE);
  if (Boolean(flags.id) === flags.all) fail(`Give --id ID or --all\n${USAGE}`, 64);
  if (flags.id && !UUID.test(flags.id)) {
    fail(`Cannot replay "${flags.id}": not a dead letter id`, 64);
  }
  const { config, db } = await openOperatorDb();
  const keyring = configuredKeyring(config);
  let sent = 0, failed = 0, skipped = 0;
  try {
    const letters = await pendingDeadLetters(db, { id: flags.id });
    if (flags.id && letters.length === 0) {
      fail(`Cannot replay "${flags.id}": no dead letter waits with that id`, 1);
    }
    print(`Replaying ${letters.length} dead letter(s) from ${describeDatabase(config)}`);
    const lastSent = new Map<string, number>();
    for (const letter of letters) {
      let target: NotifyTarget | undefined;
      if (letter.operator) {
        const op = config.notify.operator;
        target = letter.operator === "telegram"
          ? op.telegram && { kind: "telegram", ...op.telegram }
          : op.discord && { kind: "discord", ...op.discord };
      } else if (letter.channelId && letter.userId) {
        const channel = await getSealedChannel(db, letter.userId, letter.channelId);
        if (channel) {
          const secret = await keyring.decrypt(channel.secret);
          target = channel.kind === "telegram"
            ? { kind: "telegram", token: secret, chatId: channel.chatId ?? "" }
            : { kind: "discord", webhookUrl: secret };
        }
      }
      if (!target) {
        skipped++;
        printError(`Skipped ${letter.id}: its channel is gone or not configured`);
        continue;
      }
      const lane = target.kind === "telegram" ? `telegram:${target.chatId}` : "";
      const last = lastSent.get(lane);
      if (lane && last !== undefined) {
        const wait = last + TELEGRAM_INTERVAL_MS - systemClock.now();
        if (wait > 0) await systemClock.sleep(wait);
      }
      const outcome = await sendNotification(target, letter.message, {
        telegramApiUrl: config.notify.telegramApiUrl,
        discordApiUrl: config.notify.discordApiUrl,
      });
      if (lane) lastSent.set(lane, systemClock.now());
      if (outcome.ok) {
        await markReplayed(db, letter.id, new Date());
        sent++;
      } else {
        failed++;
        printError(`Failed ${letter.id}: ${outcome.error}`);
      }
    }
  } finally {
    await db.close();
  }
  print(`Resent ${sent}, failed ${failed}, skipped ${skipped}.`);
  if (failed > 0) Deno.exit(1);
}

if (import.meta.main) await main(Deno.args);
