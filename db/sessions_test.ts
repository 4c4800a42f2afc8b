import assert from "node:assert/strict";
import { createTestDb, ENGINES } from "../tests/_db.ts";
import { insertTrader } from "../tests/_fixtures.ts";
import {
  createSession,
  purgeEndedSessions,
  REFRESH_TOKEN_TTL_MS,
  revokeSession,
  rotateRefreshToken,
  sessionUser,
} from "./sessions.ts";

const T0 = Date.UTC(2026, 0, 5, 14, 30);
const DAY = 86_400_000;

for (const engine of ENGINES) {
  Deno.test(`sessions: live until revoked or expired, then purged after 30 days (${engine})`, async () => {
    await using t = await createTestDb(engine);
    const trader = await insertTrader(t.db);
    const kept = await createSession(t.db, trader.userId, { now: T0 });
    const revoked = await createSession(t.db, trader.userId, { now: T0 });
    const expiring = await createSession(t.db, trader.userId, { now: T0 });
    assert.ok(await sessionUser(t.db, kept.session.id, trader.userId, T0));
    assert.equal(await sessionUser(t.db, kept.session.id, crypto.randomUUID(), T0), null);
    assert.equal(await sessionUser(t.db, "not-a-uuid", trader.userId, T0), null);

    assert.ok(
      await revokeSession(t.db, {
        sessionId: revoked.session.id,
        userId: trader.userId,
        reason: "logout",
        now: T0,
      }),
    );
    assert.equal(await sessionUser(t.db, revoked.session.id, trader.userId, T0), null);
    // Keep one alive by refreshing it every 6 days.
    let token = kept.refreshToken;
    for (let day = 6; day <= 36; day += 6) {
      const r = await rotateRefreshToken(t.db, token, { now: T0 + day * DAY });
      assert.equal(r.kind, "rotated");
      if (r.kind === "rotated") token = r.refreshToken;
    }
    assert.equal(
      await sessionUser(t.db, expiring.session.id, trader.userId, T0 + REFRESH_TOKEN_TTL_MS),
      null,
    );

    const now = T0 + 38 * DAY;
    assert.ok(await purgeEndedSessions(t.db, now) > 0);
    const left = await t.db.query<{ id: string }>("SELECT id FROM sessions ORDER BY id");
    assert.deepEqual(left.map((s) => s.id), [kept.session.id]);
    const tokens = await t.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM refresh_tokens",
    );
    assert.equal(tokens[0]?.n, 1, "only the live token is kept");
    assert.ok(await sessionUser(t.db, kept.session.id, trader.userId, now));
  });
}
