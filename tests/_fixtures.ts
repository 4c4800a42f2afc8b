/** Rows that many tests need: a user with a paper account and a webhook key. */
import type { Queryable } from "../db/client.ts";
import type { NewOrder } from "../db/executions.ts";
import { insertWebhookKey } from "../db/webhook_keys.ts";
import { createSession } from "../db/sessions.ts";
import { uuidv7 } from "../lib/ids.ts";
import { signAccessToken } from "../lib/jwt.ts";
import { generateWebhookKey } from "../lib/webhook_key.ts";

/** The entry order of a market buy of 1 AAPL for `signalId` (client order id = the signal's). */
export function marketBuyOrder(
  owner: { userId: string; accountId: string },
  signalId: string,
  id: string,
): NewOrder {
  return {
    id,
    userId: owner.userId,
    accountId: owner.accountId,
    signalId,
    parentId: null,
    leg: "entry",
    clientOrderId: signalId,
    symbol: "AAPL",
    side: "buy",
    quantity: "1",
    orderType: "market",
    timeInForce: "day",
    limitPrice: null,
    stopPrice: null,
  };
}

/** A user, their `paper` account and a webhook key (in clear). */
export interface TraderFixture {
  userId: string;
  accountId: string;
  key: string;
  keyId: string;
}

/** Inserts a trader with a paper account and a key, straight into the tables. */
export async function insertTrader(
  db: Queryable,
  options: { email?: string; risk?: Record<string, unknown>; paper?: Record<string, unknown> } = {},
): Promise<TraderFixture> {
  const userId = uuidv7();
  const accountId = uuidv7();
  await db.query(
    "INSERT INTO users (id, email, password_hash, role) VALUES ($1, $2, 'x', 'trader')",
    [
      userId,
      options.email ?? `trader-${userId.slice(-8)}@example.com`,
    ],
  );
  await db.query(
    `INSERT INTO broker_accounts (id, user_id, alias, broker, risk, paper) VALUES ($1, $2, 'paper', 'paper', $3::text::jsonb, $4::text::jsonb)`,
    [accountId, userId, JSON.stringify(options.risk ?? {}), JSON.stringify(options.paper ?? {})],
  );
  const key = await generateWebhookKey();
  const keyId = uuidv7();
  await insertWebhookKey(db, {
    id: keyId,
    userId,
    name: "test",
    prefix: key.prefix,
    hash: key.hash,
  });
  return { userId, accountId, key: key.key, keyId };
}

/** A bearer access token for `userId`, backed by a real session (as login would create). */
export async function accessTokenFor(
  db: Queryable,
  user: { id: string; role: "admin" | "trader" },
  options: { secret: string; now: number },
): Promise<{ token: string; sessionId: string; refreshToken: string }> {
  const { session, refreshToken } = await createSession(db, user.id, { now: options.now });
  const token = await signAccessToken(
    { userId: user.id, role: user.role, sessionId: session.id },
    options,
  );
  return { token, sessionId: session.id, refreshToken };
}
