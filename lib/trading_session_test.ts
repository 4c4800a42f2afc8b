import assert from "node:assert/strict";
import {
  describeSession,
  isInSession,
  type TradingSession,
  TradingSessionSchema,
  zonedTime,
} from "./trading_session.ts";

const NYSE: TradingSession = {
  timezone: "America/New_York",
  days: [1, 2, 3, 4, 5],
  start: "09:30",
  end: "16:00",
};

const GLOBEX: TradingSession = {
  timezone: "America/New_York",
  days: [7, 1, 2, 3, 4],
  start: "18:00",
  end: "17:00",
};

function at(iso: string): Date {
  return new Date(iso);
}

Deno.test("trading session opens at start inclusive and closes at end exclusive", () => {
  // Tuesday 2026-01-06, EST (UTC-5).
  assert.equal(isInSession(NYSE, at("2026-01-06T14:29:59Z")), false);
  assert.equal(isInSession(NYSE, at("2026-01-06T14:30:00Z")), true);
  assert.equal(isInSession(NYSE, at("2026-01-06T20:59:59Z")), true);
  assert.equal(isInSession(NYSE, at("2026-01-06T21:00:00Z")), false);
});

Deno.test("trading session follows New York across the spring DST change of 2026-03-08", () => {
  // Friday before the change: EST, 09:30 = 14:30Z.
  assert.equal(isInSession(NYSE, at("2026-03-06T14:30:00Z")), true);
  assert.equal(isInSession(NYSE, at("2026-03-06T13:30:00Z")), false);
  // The weekend of the change is closed.
  assert.equal(isInSession(NYSE, at("2026-03-07T15:00:00Z")), false);
  assert.equal(isInSession(NYSE, at("2026-03-08T15:00:00Z")), false);
  // Monday after: EDT, 09:30 = 13:30Z and 16:00 = 20:00Z.
  assert.equal(isInSession(NYSE, at("2026-03-09T13:29:00Z")), false);
  assert.equal(isInSession(NYSE, at("2026-03-09T13:30:00Z")), true);
  assert.equal(isInSession(NYSE, at("2026-03-09T19:59:00Z")), true);
  assert.equal(isInSession(NYSE, at("2026-03-09T20:00:00Z")), false);
});

Deno.test("trading session follows New York across the autumn DST change of 2026-11-01", () => {
  // Friday before: EDT, 09:30 = 13:30Z.
  assert.equal(isInSession(NYSE, at("2026-10-30T13:30:00Z")), true);
  assert.equal(isInSession(NYSE, at("2026-10-30T20:00:00Z")), false);
  // Monday after: EST, 13:30Z is 08:30 local.
  assert.equal(isInSession(NYSE, at("2026-11-02T13:30:00Z")), false);
  assert.equal(isInSession(NYSE, at("2026-11-02T14:30:00Z")), true);
  assert.equal(isInSession(NYSE, at("2026-11-02T20:30:00Z")), true);
  assert.equal(isInSession(NYSE, at("2026-11-02T21:00:00Z")), false);
});

Deno.test("overnight trading session opens on Sunday evening", () => {
  // Sunday 2026-01-04, EST: 17:59 and 18:00 local.
  assert.equal(isInSession(GLOBEX, at("2026-01-04T22:59:00Z")), false);
  assert.equal(isInSession(GLOBEX, at("2026-01-04T23:00:00Z")), true);
  // Monday 03:00 local belongs to Sunday's session.
  assert.equal(isInSession(GLOBEX, at("2026-01-05T08:00:00Z")), true);
});

Deno.test("overnight trading session belongs to its start day and closes on Friday afternoon", () => {
  // Friday 2026-01-09 16:59 local is Thursday's session; 17:00 ends it.
  assert.equal(isInSession(GLOBEX, at("2026-01-09T21:59:00Z")), true);
  assert.equal(isInSession(GLOBEX, at("2026-01-09T22:00:00Z")), false);
  // Friday 18:00 would start a Friday session, which is not listed.
  assert.equal(isInSession(GLOBEX, at("2026-01-09T23:00:00Z")), false);
  assert.equal(isInSession(GLOBEX, at("2026-01-10T17:00:00Z")), false);
  // The daily break between 17:00 and 18:00 on a weekday.
  assert.equal(isInSession(GLOBEX, at("2026-01-06T22:30:00Z")), false);
  assert.equal(isInSession(GLOBEX, at("2026-01-06T23:00:00Z")), true);
});

Deno.test("zonedTime reads the wall clock in a zone across DST", () => {
  assert.deepEqual(zonedTime(at("2026-03-08T07:00:00Z"), "America/New_York"), {
    year: 2026,
    month: 3,
    day: 8,
    weekday: 7,
    hour: 3,
    minute: 0,
  });
  assert.deepEqual(zonedTime(at("2026-12-31T23:30:00Z"), "Asia/Tokyo"), {
    year: 2027,
    month: 1,
    day: 1,
    weekday: 5,
    hour: 8,
    minute: 30,
  });
});

Deno.test("trading session schema accepts a valid session", () => {
  assert.deepEqual(TradingSessionSchema.parse(GLOBEX), GLOBEX);
});

Deno.test("trading session schema rejects an unknown time zone by name", () => {
  const result = TradingSessionSchema.safeParse({ ...NYSE, timezone: "Mars/Olympus_Mons" });
  assert.equal(result.success, false);
  assert.deepEqual(result.error?.issues.map((i) => [i.path.join("."), i.message]), [
    ["timezone", 'Unknown time zone "Mars/Olympus_Mons"'],
  ]);
});

Deno.test("trading session schema rejects bad times, days and unknown keys", () => {
  const messages = (input: unknown) =>
    TradingSessionSchema.safeParse(input).error?.issues.map((i) => i.message) ?? [];
  assert.deepEqual(messages({ ...NYSE, start: "9:30" }), [
    '"start" must be a time "HH:MM", not "9:30"',
  ]);
  assert.deepEqual(messages({ ...NYSE, end: "24:00" }), [
    '"end" must be a time "HH:MM", not "24:00"',
  ]);
  assert.deepEqual(messages({ ...NYSE, days: [0] }), [
    '"days" must hold whole numbers from 1 (Mon) to 7 (Sun)',
  ]);
  assert.deepEqual(messages({ ...NYSE, days: [8] }), [
    '"days" must hold whole numbers from 1 (Mon) to 7 (Sun)',
  ]);
  assert.deepEqual(messages({ ...NYSE, days: [] }), ['"days" must name at least one weekday']);
  assert.deepEqual(messages({ ...NYSE, days: [1, 1] }), ['"days" must not repeat a weekday']);
  assert.deepEqual(messages({ ...NYSE, end: "09:30" }), ['"start" and "end" must differ']);
  assert.equal(messages({ ...NYSE, open: true }).length, 1);
  assert.equal(messages({ ...NYSE, timezone: 5 }).length, 1);
});

Deno.test("describeSession names the days as runs, wrapping over the week's end", () => {
  assert.equal(describeSession(NYSE), "Mon–Fri 09:30–16:00 America/New_York");
  assert.equal(describeSession(GLOBEX), "Sun–Thu 18:00–17:00 America/New_York");
  assert.equal(
    describeSession({ timezone: "UTC", days: [1, 3, 6, 7], start: "00:00", end: "12:00" }),
    "Wed, Sat–Mon 00:00–12:00 UTC",
  );
  assert.equal(
    describeSession({ timezone: "UTC", days: [1, 2, 3, 4, 5, 6, 7], start: "00:00", end: "12:00" }),
    "Mon–Sun 00:00–12:00 UTC",
  );
});
