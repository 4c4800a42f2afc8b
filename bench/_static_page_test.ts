import assert from "node:assert/strict";
import { staticPage } from "./_static_page.ts";

Deno.test("the static page has exactly the size asked for, a stylesheet link and no script", () => {
  for (const bytes of [400, 12_345, 54_321]) {
    const page = staticPage(bytes, "/static/app-0123456789.css");
    assert.equal(new TextEncoder().encode(page).length, bytes);
    assert.match(page, /<link rel="stylesheet" href="\/static\/app-0123456789\.css">/);
    assert.doesNotMatch(page, /<script/i);
  }
  assert.doesNotMatch(staticPage(1000), /<link/);
});
