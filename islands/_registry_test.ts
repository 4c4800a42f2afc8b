/// <reference lib="dom" />
import assert from "node:assert/strict";
import { ISLANDS } from "./_registry.ts";

/** The island files: `islands/*.tsx` (helpers live in `islands/_client/`). */
async function islandFiles(): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(new URL("./", import.meta.url))) {
    if (entry.isFile && entry.name.endsWith(".tsx")) names.push(entry.name.slice(0, -4));
  }
  return names.sort();
}

Deno.test("every islands/*.tsx is in the registry under its file name, and nothing else is", async () => {
  assert.deepEqual(Object.keys(ISLANDS).sort(), await islandFiles());
});

Deno.test("each registered island loads, and its component has the name it is registered under", async () => {
  for (const [name, load] of Object.entries(ISLANDS)) {
    const { default: component } = await load();
    assert.equal(typeof component, "function", `${name} exports a component`);
    // components/Island.tsx finds the island by the function's name.
    assert.equal(component.displayName ?? component.name, name);
  }
});
