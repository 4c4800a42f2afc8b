/** Constant-time comparison, so a guess cannot be refined from response timing. */

const encoder = new TextEncoder();

/** True when `a` and `b` are equal; takes the same time wherever they first differ. */
export function timingSafeEqual(a: string | Uint8Array, b: string | Uint8Array): boolean {
  const x = typeof a === "string" ? encoder.encode(a) : a;
  const y = typeof b === "string" ? encoder.encode(b) : b;
  // Compare over the longer length so the length difference does not end the loop early.
  const length = Math.max(x.length, y.length);
  let diff = x.length ^ y.length;
  for (let i = 0; i < length; i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}
