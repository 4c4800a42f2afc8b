/** Ids: UUIDv7, so ids sort by creation time (index locality, cursor pagination). */

/** Two hex digits per byte value, so formatting an id does not build one string per byte. */
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));
/** Random bytes drawn 4 KiB at a time: one `getRandomValues` call per 256 ids, not per id. */
const pool = new Uint8Array(4096);
let poolAt = pool.length;

/** A UUIDv7 for the instant `now` (ms since the epoch): 48 bits of time, then randomness. */
export function uuidv7(now: number = Date.now()): string {
  if (poolAt + 10 > pool.length) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  const r = pool.subarray(poolAt, poolAt += 10);
  let ms = Math.floor(now);
  let time = "";
  for (let i = 0; i < 6; i++) {
    time = HEX[ms % 256]! + time;
    ms = Math.floor(ms / 256);
  }
  const h = (i: number) => HEX[r[i]!]!;
  return `${time.slice(0, 8)}-${time.slice(8)}-${HEX[(r[0]! & 0x0f) | 0x70]}${h(1)}-${
    HEX[(r[2]! & 0x3f) | 0x80]
  }${h(3)}-${h(4)}${h(5)}${h(6)}${h(7)}${h(8)}${h(9)}`;
}

/** The creation time (ms since the epoch) encoded in a UUIDv7. */
export function uuidv7Time(id: string): number {
  return parseInt(id.replaceAll("-", "").slice(0, 12), 16);
}
