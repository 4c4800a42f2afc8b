import assert from "node:assert/strict";
import {
  EXPIRY_WARNING_MS,
  generateWebhookKey,
  hashWebhookKey,
  looksLikeWebhookKey,
  webhookKeyStatus,
} from "./webhook_key.ts";

Deno.test("generateWebhookKey makes a whk_ key with a visible prefix and its SHA-256", async () => {
  const { key, prefix, hash } = await generateWebhookKey();
  assert.ok(looksLikeWebhookKey(key));
  assert.equal(prefix, key.slice(0, 12));
  assert.deepEqual(hash, await hashWebhookKey(key));
});

Deno.test("webhookKeyStatus: revoked, expired from expiresAt on, expiring in the last 7 days", () => {
  const now = Date.UTC(2026, 0, 5);
  const at = (ms: number) => new Date(now + ms);
  const status = (expiresAt: Date | null, revokedAt: Date | null = null) =>
    webhookKeyStatus({ expiresAt, revokedAt }, now);
  assert.equal(status(null), "active");
  assert.equal(status(at(EXPIRY_WARNING_MS + 1)), "active");
  assert.equal(status(at(EXPIRY_WARNING_MS)), "expiring");
  assert.equal(status(at(1)), "expiring");
  assert.equal(status(at(0)), "expired");
  assert.equal(status(at(-1)), "expired");
  assert.equal(status(at(-1), at(-2)), "revoked", "revoked wins over expired");
  assert.equal(status(null, at(0)), "revoked");
});
