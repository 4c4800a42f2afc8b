/**
 * Helpers for islands that re-read their state after live events: a debounce (a burst of fills
 * is one re-read), and the props an island has on a freshly rendered page (so a page can be
 * fetched again instead of adding an API route for its figures).
 */

/** `fn` called once, `ms` after the last of a burst of calls. */
export function debounce(fn: () => void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

/** The props of the first island `name` in the page `html`, or null when it is not there. */
export function islandPropsIn(html: string, name: string): Record<string, unknown> | null {
  const doc = new DOMParser().parseFromString(html, "text/html");
  const root = doc.querySelector<HTMLElement>(`[data-island="${name}"]`);
  const props = root &&
    doc.querySelector(`script[data-island-props="${root.dataset.islandId}"]`)?.textContent;
  return props ? JSON.parse(props) : null;
}

/** Fetches the page at `path` again and returns island `name`'s props there (null if absent). */
export async function fetchIslandProps(
  path: string,
  name: string,
): Promise<Record<string, unknown> | null> {
  const res = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (!res.ok || res.redirected) return null;
  return islandPropsIn(await res.text(), name);
}
