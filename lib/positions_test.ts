import assert from "node:assert/strict";
import { applyFill, FLAT, toDecimal, unrealizedPnl } from "./positions.ts";

Deno.test("opening and adding to a long moves the average price", () => {
  let { position } = applyFill(FLAT, { side: "buy", quantity: 2, price: 100, fee: 0 });
  ({ position } = applyFill(position, { side: "buy", quantity: 2, price: 110, fee: 0 }));
  assert.deepEqual(position, { quantity: 4, averagePrice: 105, realizedPnl: 0 });
  assert.equal(unrealizedPnl(position, 120), 60);
});

Deno.test("reducing and closing a long realizes P&L at the average, net of fees", () => {
  const open = applyFill(FLAT, { side: "buy", quantity: 4, price: 100, fee: 1 }).position;
  assert.equal(open.realizedPnl, -1);
  const partly = applyFill(open, { side: "sell", quantity: 1, price: 110, fee: 0.5 });
  assert.equal(partly.realized, 9.5);
  assert.deepEqual(partly.position, { quantity: 3, averagePrice: 100, realizedPnl: 8.5 });
  const closed = applyFill(partly.position, { side: "sell", quantity: 3, price: 90, fee: 0 });
  assert.deepEqual(closed.position, { quantity: 0, averagePrice: 0, realizedPnl: -21.5 });
});

Deno.test("a short profits when price falls; a flip reopens at the fill price", () => {
  const short = applyFill(FLAT, { side: "sell", quantity: 2, price: 50, fee: 0 }).position;
  assert.deepEqual(short, { quantity: -2, averagePrice: 50, realizedPnl: 0 });
  assert.equal(unrealizedPnl(short, 45), 10);
  const flip = applyFill(short, { side: "buy", quantity: 5, price: 40, fee: 0 });
  assert.equal(flip.realized, 20);
  assert.deepEqual(flip.position, { quantity: 3, averagePrice: 40, realizedPnl: 20 });
});

Deno.test("float noise is rounded away and decimals print plainly", () => {
  const p = applyFill(FLAT, { side: "buy", quantity: 0.1, price: 0.2, fee: 0 }).position;
  const q = applyFill(p, { side: "buy", quantity: 0.2, price: 0.1, fee: 0 }).position;
  assert.equal(q.quantity, 0.3);
  assert.equal(toDecimal(0.1 + 0.2), "0.3");
  assert.equal(toDecimal(1e-7), "0.0000001");
  assert.equal(toDecimal(-0), "0", "no negative zero in a record");
});

Deno.test("toDecimal prints every magnitude plainly, never with an exponent", () => {
  const cases: Array<[number, string]> = [
    [190.12, "190.12"],
    [1e21, "1000000000000000000000"],
    [123456789012.5, "123456789012.5"],
    [0.00000012345, "0.0000001235"],
    [-2.5e-7, "-0.00000025"],
    [96.66666666666667, "96.6666666667"],
    [-0.00000000001, "0"],
  ];
  for (const [n, text] of cases) assert.equal(toDecimal(n), text, String(n));
});
