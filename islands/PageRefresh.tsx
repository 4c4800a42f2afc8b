/**
 * Keeps a server-rendered region of the page current: every `everySeconds`, while the tab is
 * visible, it fetches the page again and swaps in the new HTML of the element marked
 * `data-refresh-region={region}`. The region must hold no islands (they would not hydrate); a
 * trader can pause it. One fetch runs at a time, the next `everySeconds` after it ended. A failed
 * or hung fetch says so and keeps the last good figures; a signed-out session stops it.
 */
import { useEffect, useState } from "preact/hooks";
import { formatTime } from "./_client/format.ts";
import { pollEvery } from "./_client/refresh.ts";

/** How long a refresh may wait for the page (at least; the period when that is longer). */
const WAIT_MS = 10_000;

/** Props. */
export interface PageRefreshProps {
  region: string;
  everySeconds: number;
  zone: string;
  /** When the server rendered the page (ISO). */
  renderedAt: string;
  [key: string]: unknown;
}

/** The region's new inner HTML from a whole page's HTML; null when the page has no such region. */
export function regionOf(html: string, region: string): string | null {
  const doc = new DOMParser().parseFromString(html, "text/html");
  return doc.querySelector(`[data-refresh-region="${region}"]`)?.innerHTML ?? null;
}

export default function PageRefresh({ region, everySeconds, zone, renderedAt }: PageRefreshProps) {
  const [on, setOn] = useState(true);
  const [at, setAt] = useState(renderedAt);
  const [problem, setProblem] = useState("");

  useEffect(() => {
    if (!on) return;
    // One fetch at a time, the next a period after the last ended; one that hangs is given up
    // after WAIT_MS (or the period, when longer).
    const waitMs = Math.max(WAIT_MS, everySeconds * 1000);
    return pollEvery(everySeconds * 1000, waitMs, async ({ signal, timedOut }) => {
      if (document.visibilityState !== "visible") return;
      const stopped = () => signal.aborted && !timedOut();
      try {
        const res = await fetch(location.href, { cache: "no-store", redirect: "manual", signal });
        if (stopped()) return false;
        if (res.type === "opaqueredirect" || res.status === 401 || res.status === 403) {
          setProblem("Signed out: sign in again to see current figures.");
          setOn(false);
          return false;
        }
        if (!res.ok) throw new Error(`the server answered ${res.status}`);
        const html = regionOf(await res.text(), region);
        const target = document.querySelector(`[data-refresh-region="${region}"]`);
        if (html === null || !target) throw new Error("the page changed");
        target.innerHTML = html;
        setAt(new Date().toISOString());
        setProblem("");
      } catch (error) {
        if (stopped()) return false;
        const why = timedOut() ? `no answer within ${waitMs / 1000} s` : (error as Error).message;
        setProblem(`Cannot refresh (${why}); these figures are old.`);
      }
    });
  }, [on]);

  return (
    <p class="page-refresh" data-refreshed-at={at}>
      <label class="check">
        <input
          type="checkbox"
          checked={on}
          onChange={(e) => setOn((e.currentTarget as HTMLInputElement).checked)}
        />
        Refresh every {everySeconds} s
      </label>{" "}
      <span class="muted">
        as of <time dateTime={at}>{formatTime(at, zone)}</time>
      </span>
      {problem && <span class="error" role="alert">{problem}</span>}
    </p>
  );
}
