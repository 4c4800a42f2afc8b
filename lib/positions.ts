/**
 * Position arithmetic: applying a fill to a signed position gives the new position and the
 * realized P&L. Prices and quantities are plain numbers here (decimal strings are converted at
 * the edges and rounded back to 10 places), since this is accounting for display and risk, not
 * a ledger of cash.
 */

/** A signed position: quantity > 0 long, < 0 short. */
export interface Position {
  quantity: number;
  averagePrice: number;
  realizedPnl: number;
}

/** The flat position. */
export const FLAT: Position = { quantity: 0, averagePrice: 0, realizedPnl: 0 };

/** Applies a fill (`side`, `quantity` > 0, `price`, `fee` ≥ 0); returns the new position and the P&L it realized. */
export function applyFill(
  position: Position,
  fill: { side: "buy" | "sell"; quantity: number; price: number; fee: number },
): { position: Position; realized: number } {
  const signed = fill.side === "buy" ? fill.quantity : -fill.quantity;
  const q = position.quantity;
  let realized = -fill.fee;
  let quantity = q + signed;
  let averagePrice = position.averagePrice;
  if (q === 0 || Math.sign(q) === Math.sign(signed)) {
    // Opening or adding: the average moves.
    averagePrice = (Math.abs(q) * position.averagePrice + fill.quantity * fill.price) /
      Math.abs(quantity);
  } else {
    // Reducing, closing or flipping: the closed part realizes P&L at the old average.
    const closed = Math.min(Math.abs(q), fill.quantity);
    realized += closed * (fill.price - position.averagePrice) * Math.sign(q);
    if (Math.abs(signed) > Math.abs(q)) averagePrice = fill.price; // flipped: the rest opens at the fill
    else if (Math.abs(signed) === Math.abs(q)) averagePrice = 0;
  }
  quantity = round(quantity);
  return {
    position: {
      quantity,
      averagePrice: quantity === 0 ? 0 : round(averagePrice),
      realizedPnl: round(position.realizedPnl + realized),
    },
    realized: round(realized),
  };
}

/** Unrealized P&L of a position at `price`. */
export function unrealizedPnl(position: Position, price: number): number {
  return round(position.quantity * (price - position.averagePrice));
}

/** Rounds to 10 decimal places, dropping float noise. */
export function round(n: number): number {
  return Math.round(n * 1e10) / 1e10;
}

/** Plain decimal notation with up to 10 fraction digits; built once (constructing one is slow). */
const PLAIN = new Intl.NumberFormat("en-US", { useGrouping: false, maximumFractionDigits: 10 });

/** A number as a plain decimal string for a `numeric` column. */
export function toDecimal(n: number): string {
  const r = round(n);
  if (r === 0) return "0"; // never "-0" in a record
  // String() is the shortest exact form and fast; only very small or large values use an exponent.
  const text = String(r);
  return text.includes("e") ? PLAIN.format(r) : text;
}
