/**
 * The scanner's watchlist (symbols, each on the timeframes it is scanned on) and the scan
 * settings that shape the trendlines it finds.
 */
import { useState } from "preact/hooks";
import { api } from "./_client/api.ts";
import {
  alertOf,
  errorFor,
  FieldError,
  type FieldErrors,
  fieldErrorsOf,
} from "./_client/field_errors.tsx";
import { field } from "./_client/form.ts";

/** One watched symbol on one timeframe. */
export interface WatchView {
  symbol: string;
  timeframe: string;
}

/** The scan settings, defaults filled in. */
export interface ScanSettingsView {
  pivot_window: number;
  tolerance_mode: "percent" | "atr";
  tolerance: number;
  min_touches: number;
  max_lines: number;
}

/** Props. */
export interface WatchlistsManagerProps {
  watches: WatchView[];
  timeframes: string[];
  settings: ScanSettingsView;
  [key: string]: unknown;
}

export default function WatchlistsManager(
  { watches: initial, timeframes, settings: initialSettings }: WatchlistsManagerProps,
) {
  const [watches, setWatches] = useState(initial);
  const [settings, setSettings] = useState(initialSettings);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [status, setStatus] = useState("");

  async function run(action: () => Promise<string>) {
    setBusy(true);
    setError("");
    setErrors({});
    setStatus("");
    try {
      setStatus(await action());
    } catch (failure) {
      setError(alertOf(failure));
      setErrors(fieldErrorsOf(failure));
    } finally {
      setBusy(false);
    }
  }

  async function reload() {
    const list = await api<{ data: WatchView[] }>("GET", "/api/v1/watchlists");
    setWatches(list.data);
  }

  function add(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const symbols = field(form, "symbols").split(/[\s,]+/).filter(Boolean);
    const chosen = new FormData(form).getAll("timeframe").map(String);
    if (symbols.length === 0 || chosen.length === 0) {
      setError("Enter at least one symbol and choose at least one timeframe.");
      return;
    }
    return run(async () => {
      try {
        for (const symbol of symbols) {
          for (const timeframe of chosen) {
            await api("POST", "/api/v1/watchlists", { symbol, timeframe });
          }
        }
      } finally {
        await reload();
      }
      form.reset();
      return `Watching ${symbols.join(", ")} on ${chosen.join(", ")}.`;
    });
  }

  function remove(symbol: string, timeframe?: string) {
    const entries = watches.filter((w) =>
      w.symbol === symbol && (timeframe === undefined || w.timeframe === timeframe)
    );
    const what = timeframe ? `${symbol} on ${timeframe}` : `${symbol} on every timeframe`;
    if (!confirm(`Stop watching ${what}? Its trendlines stop being updated.`)) return;
    return run(async () => {
      try {
        for (const w of entries) {
          const query = new URLSearchParams({ symbol: w.symbol, timeframe: w.timeframe });
          await api("DELETE", `/api/v1/watchlists?${query}`);
        }
      } finally {
        await reload();
      }
      return `Stopped watching ${what}.`;
    });
  }

  function saveSettings(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    return run(async () => {
      const saved = await api<ScanSettingsView>("PUT", "/api/v1/scan-settings", {
        pivot_window: Number(field(form, "pivot_window")),
        tolerance_mode: field(form, "tolerance_mode"),
        tolerance: Number(field(form, "tolerance")),
        min_touches: Number(field(form, "min_touches")),
        max_lines: Number(field(form, "max_lines")),
      });
      setSettings(saved);
      return "Scan settings saved; the next scan uses them.";
    });
  }

  const bySymbol = new Map<string, string[]>();
  for (const w of watches) bySymbol.set(w.symbol, [...bySymbol.get(w.symbol) ?? [], w.timeframe]);

  function setting(name: keyof ScanSettingsView, label: string, props: Record<string, string>) {
    return (
      <label>
        {label}
        <input
          type="number"
          name={name}
          required
          defaultValue={String(settings[name])}
          aria-describedby={`scan-${name}-error`}
          {...props}
        />
        <FieldError id={`scan-${name}-error`} message={errorFor(errors, name)} />
      </label>
    );
  }

  return (
    <section class="card" id="watchlists" aria-labelledby="watchlists-title">
      <h2 id="watchlists-title">Watchlists &amp; scans</h2>
      <p class="muted">
        The scanner looks for trendlines in the symbols you watch, on each timeframe's schedule.
      </p>
      {bySymbol.size === 0
        ? <p class="empty-inline">Nothing watched yet: add a symbol below to start scanning.</p>
        : (
          <ul class="watchlist" data-testid="watchlist">
            {[...bySymbol].map(([symbol, tfs]) => (
              <li key={symbol} data-symbol={symbol}>
                <strong class="mono">{symbol}</strong>
                <span class="chips">
                  {tfs.map((tf) => (
                    <span class="chip" key={tf}>
                      {tf}
                      <button
                        type="button"
                        class="link"
                        disabled={busy}
                        aria-label={`Stop watching ${symbol} on ${tf}`}
                        onClick={() => remove(symbol, tf)}
                      >
                        ×
                      </button>
                    </span>
                  ))}
                </span>
                <button
                  type="button"
                  class="danger"
                  disabled={busy}
                  onClick={() => remove(symbol)}
                >
                  Remove {symbol}
                </button>
              </li>
            ))}
          </ul>
        )}
      <form class="form settings-form" data-testid="add-watch" onSubmit={add}>
        <h3>Watch symbols</h3>
        <label>
          Symbols (comma or space separated)
          <input
            name="symbols"
            required
            placeholder="AAPL, MSFT, BTCUSD"
            aria-describedby="watch-symbol-error"
          />
          <FieldError id="watch-symbol-error" message={errorFor(errors, "symbol")} />
        </label>
        <fieldset>
          <legend>Timeframes</legend>
          <div class="days">
            {timeframes.map((tf) => (
              <label class="check" key={tf}>
                <input type="checkbox" name="timeframe" value={tf} defaultChecked={tf === "1d"} />
                {tf}
              </label>
            ))}
          </div>
        </fieldset>
        <div>
          <button type="submit" class="primary" disabled={busy}>
            {busy ? "Saving…" : "Watch"}
          </button>
        </div>
      </form>
      <form class="form settings-form" data-testid="scan-settings" onSubmit={saveSettings}>
        <h3>Scan settings</h3>
        <div class="form inline">
          {setting("pivot_window", "Pivot window (bars each side)", {
            min: "1",
            max: "50",
            step: "1",
          })}
          <label>
            Tolerance mode
            <select name="tolerance_mode" defaultValue={settings.tolerance_mode}>
              <option value="percent">percent of price</option>
              <option value="atr">ATR(14) multiple</option>
            </select>
          </label>
          {setting("tolerance", "Tolerance", { min: "0.0001", max: "10", step: "any" })}
          {setting("min_touches", "Min touches", { min: "2", max: "20", step: "1" })}
          {setting("max_lines", "Max lines per symbol", { min: "1", max: "50", step: "1" })}
        </div>
        <div>
          <button type="submit" disabled={busy}>{busy ? "Saving…" : "Save scan settings"}</button>
        </div>
      </form>
      <p class="error" role="alert">{error}</p>
      <p class="ok-text" role="status">{status}</p>
    </section>
  );
}
