/**
 * The signals page's live hint: while the page shows the newest signals, a signal that arrives
 * adds to a "N new signals — show" link instead of moving the table under the reader's eyes.
 */
import { useEffect, useState } from "preact/hooks";
import { liveConnection } from "./_client/live.ts";

/** Props. */
export interface NewSignalsProps {
  /** When the newest signal shown was received (ISO), or null for none. */
  since: string | null;
  /** The page to load to see them (the current filters, first page). */
  href: string;
  [key: string]: unknown;
}

export default function NewSignals({ since, href }: NewSignalsProps) {
  const [ids, setIds] = useState<string[]>([]);
  const [stale, setStale] = useState(false);

  useEffect(() => {
    const after = since ? Date.parse(since) : 0;
    return liveConnection().listen({
      event: (event) => {
        if (event.channel !== "signals" || !event.signal_id) return;
        if (event.type !== "signal.received" && event.type !== "signal.rejected") return;
        if (Date.parse(event.at) <= after) return;
        const id = event.signal_id;
        setIds((current) => current.includes(id) ? current : [...current, id]);
      },
      resync: () => setStale(true),
    });
  }, []);

  const n = ids.length;
  return (
    <p class="new-signals" role="status" aria-live="polite">
      {n > 0
        ? <a href={href}>{n === 1 ? "1 new signal" : `${n} new signals`} — show</a>
        : stale
        ? <a href={href}>New signals may have arrived — reload</a>
        : null}
    </p>
  );
}
