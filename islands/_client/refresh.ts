/**
 * Helpers for islands that re-read their state: a debounce (a burst of fills is one re-read), a
 * poll that never overlaps itself, and the props an island has on a freshly rendered page (so a
 * page can be fetched again instead of adding an API route for its figures).
 */

/** `fn` called once, `ms` after the last of a burst of calls. */
export function debounce(fn: () => void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

/** One call of a {@linkcode pollEvery} poll. */
export interface PollAttempt {
  /** Aborts when the call runs past its deadline or the poll is stopped. */
  signal: AbortSignal;
  /** True once the call ran past its deadline (as against the poll being stopped). */
  timedOut(): boolean;
}

/**
 * Calls `run` every `everyMs`, counted from the end of the previous call: one call at a time,
 * so a slow server never gets a pile of them, nor does an older answer land over a newer one.
 * Each call's `signal` aborts after `timeoutMs` or when the poll stops. `run` answers false to
 * stop polling; it handles its own errors (one that escapes ends that call, not the poll).
 * Returns the function that stops the poll.
 */
export function pollEvery(
  everyMs: number,
  timeoutMs: number,
  run: (attempt: PollAttempt) => Promise<boolean | void>,
): () => void {
  const stop = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = async () => {
    // One signal for both ends of a call (no AbortSignal.any: Safari before 17.4 lacks it).
    const attempt = new AbortController();
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      attempt.abort();
    }, timeoutMs);
    const onStop = () => attempt.abort();
    stop.signal.addEventListener("abort", onStop);
    let goOn: boolean | void = true;
    try {
      goOn = await run({ signal: attempt.signal, timedOut: () => timedOut });
    } catch {
      // run's own failure to report; the poll goes on
    } finally {
      clearTimeout(deadline);
      stop.signal.removeEventListener("abort", onStop);
    }
    if (goOn !== false && !stop.signal.aborted) timer = setTimeout(tick, everyMs);
  };
  timer = setTimeout(tick, everyMs);
  return () => {
    stop.abort();
    clearTimeout(timer);
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
