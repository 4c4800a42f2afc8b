import assert from "node:assert/strict";
import { FakeClock } from "./clock.ts";
import { nextTicks, SCAN_SCHEDULES, SCAN_TIMEFRAMES, type ScanTimeframe } from "./schedule.ts";

Deno.test("scan schedules fire at the right UTC minutes over a simulated day (accelerated clock)", async () => {
  // Monday 2026-01-05 00:00 UTC; a driver advances a fake clock a minute at a time and fires
  // every schedule whose minute has come, as Deno.cron would.
  const clock = new FakeClock(Date.UTC(2026, 0, 5, 0, 0));
  const fired: Record<ScanTimeframe, string[]> = {
    "1h": [],
    "2h": [],
    "4h": [],
    "1d": [],
    "1w": [],
  };
  const end = clock.now() + 86_400_000;
  while (clock.now() < end) {
    const from = new Date(clock.now());
    await clock.advance(60_000);
    for (const tf of SCAN_TIMEFRAMES) {
      for (const at of nextTicks(SCAN_SCHEDULES[tf], from, new Date(clock.now()))) {
        fired[tf].push(at.toISOString().slice(11, 16));
      }
    }
  }
  assert.equal(fired["1h"].length, 24);
  assert.deepEqual(fired["1h"].slice(0, 2), ["00:01", "01:01"]);
  assert.deepEqual(fired["4h"], ["00:01", "04:01", "08:01", "12:01", "16:01", "20:01"]);
  assert.equal(fired["2h"].length, 12);
  assert.deepEqual(fired["1d"], ["00:05"]);
  assert.deepEqual(fired["1w"], ["00:10"], "Monday");
  // Tuesday: no weekly tick.
  const tuesday = nextTicks(SCAN_SCHEDULES["1w"], new Date(end), new Date(end + 86_400_000));
  assert.deepEqual(tuesday, []);
});

Deno.test("nextTicks refuses a malformed schedule", () => {
  assert.throws(() => nextTicks("61 * * * *", new Date(0), new Date(60_000)), /Cannot parse cron/);
  assert.throws(() => nextTicks("* * *", new Date(0), new Date(60_000)), /five fields/);
});
