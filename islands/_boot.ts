/**
 * The one script every page loads. It hydrates each island the server rendered — a
 * `<div data-island="Name" data-island-id="…">` followed by its props in a
 * `<script type="application/json" data-island-props="…">` — loading only the islands present,
 * shows times outside islands in the browser's time zone, and remembers that zone in the
 * `te_tz` cookie so the server renders the next pages in it.
 */
import { h, hydrate } from "preact";
import { ISLANDS } from "./_registry.ts";
import { formatTime, viewerTimeZone } from "./_client/format.ts";

const zone = viewerTimeZone();
if (!document.cookie.split(/;\s*/).includes(`te_tz=${encodeURIComponent(zone)}`)) {
  document.cookie = `te_tz=${encodeURIComponent(zone)}; path=/; max-age=31536000; SameSite=Lax`;
}
const rendered = document.documentElement.dataset.tz;
if (rendered !== zone) {
  for (const time of document.querySelectorAll<HTMLTimeElement>("time[datetime]")) {
    if (!time.closest("[data-island]")) time.textContent = formatTime(time.dateTime, zone);
  }
}

async function hydrateIsland(root: HTMLElement): Promise<void> {
  const name = root.dataset.island!;
  const load = ISLANDS[name];
  if (!load) throw new Error(`Unknown island "${name}"`);
  const propsEl = document.querySelector<HTMLScriptElement>(
    `script[data-island-props="${root.dataset.islandId}"]`,
  );
  const props = propsEl?.textContent ? JSON.parse(propsEl.textContent) : {};
  const { default: component } = await load();
  hydrate(h(component, props), root);
  root.dataset.hydrated = "true";
}

const islands = [...document.querySelectorAll<HTMLElement>("[data-island]")];
Promise.allSettled(islands.map(hydrateIsland)).then((results) => {
  for (const result of results) {
    // deno-lint-ignore no-console
    if (result.status === "rejected") console.error("island failed to start", result.reason);
  }
  document.documentElement.dataset.hydrated = "true";
});
