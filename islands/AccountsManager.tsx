/**
 * Broker accounts: the list (alias, broker, paper or live, kill switch, created), adding one
 * (another paper account, or Alpaca with its API key pair), editing one (risk limits, symbol map
 * overrides, micro futures, paper broker settings), replacing its credentials and deleting it.
 * Credentials are write-only: sent once, never part of the props or of any answer.
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
import { field, messageOf } from "./_client/form.ts";
import { formatTime } from "./_client/format.ts";

/** An account as the page shows it (the API's account without the breaker state). */
export interface AccountView {
  alias: string;
  broker: "paper" | "alpaca";
  live: boolean;
  kill_switch: boolean;
  has_credentials: boolean;
  symbol_map: Record<string, string>;
  micro_futures: boolean;
  risk: Record<string, unknown>;
  paper: Record<string, unknown>;
  created_at: string;
}

/** Props. */
export interface AccountsManagerProps {
  accounts: AccountView[];
  zone: string;
  [key: string]: unknown;
}

const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
// name, label, min, max, the default the paper broker uses when the field is empty
const PAPER_FIELDS = [
  ["slippage_bps", "Slippage (basis points)", "0", "1000", "0"],
  ["fee_per_unit", "Fee per share or contract", "0", undefined, "0"],
  ["fee_bps", "Fee (basis points of value)", "0", "1000", "0"],
  ["starting_cash", "Starting cash", "0.01", undefined, "100000"],
] as const;

export default function AccountsManager({ accounts: initial, zone }: AccountsManagerProps) {
  const [accounts, setAccounts] = useState(initial);
  const [editing, setEditing] = useState<string | null>(null);
  const [broker, setBroker] = useState<"paper" | "alpaca">("alpaca");
  const [live, setLive] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [status, setStatus] = useState("");

  async function reload() {
    const list = await api<{ data: AccountView[] }>("GET", "/api/v1/accounts");
    setAccounts(list.data);
  }

  async function create(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const alias = field(form, "alias").trim();
    if (
      live && !confirm(`Create "${alias}" for LIVE trading? Its orders use real money.`)
    ) return;
    setBusy(true);
    setError("");
    setErrors({});
    setStatus("");
    try {
      await api("POST", "/api/v1/accounts", {
        alias,
        broker,
        ...(broker === "alpaca"
          ? {
            live,
            credentials: {
              key_id: field(form, "credentials.key_id").trim(),
              secret_key: field(form, "credentials.secret_key").trim(),
            },
          }
          : {}),
      });
      form.reset();
      setLive(false);
      setStatus(`Account "${alias}" added.`);
      await reload();
    } catch (failure) {
      setError(alertOf(failure));
      setErrors(fieldErrorsOf(failure));
    } finally {
      setBusy(false);
    }
  }

  async function remove(account: AccountView) {
    if (!confirm(`Delete account "${account.alias}"? This cannot be undone.`)) return;
    setBusy(true);
    setError("");
    setStatus("");
    try {
      await api("DELETE", `/api/v1/accounts/${account.alias}`);
      if (editing === account.alias) setEditing(null);
      setStatus(`Account "${account.alias}" deleted.`);
      await reload();
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  }

  const current = accounts.find((a) => a.alias === editing);

  return (
    <section class="card" id="accounts" aria-labelledby="accounts-title">
      <h2 id="accounts-title">Broker accounts</h2>
      <p class="muted">
        Signals trade on these accounts. Every user starts with the <code>paper</code>{" "}
        account (simulated fills); add Alpaca to send orders to a broker.
      </p>
      {accounts.length === 0
        ? <p class="empty-inline">No accounts yet: add one below.</p>
        : (
          <div class="table-wrap">
            <table class="table" data-testid="accounts">
              <thead>
                <tr>
                  <th scope="col">Alias</th>
                  <th scope="col">Broker</th>
                  <th scope="col">Mode</th>
                  <th scope="col">Kill switch</th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {accounts.map((a) => (
                  <tr key={a.alias} data-account-alias={a.alias}>
                    <td>
                      <strong>{a.alias}</strong>
                    </td>
                    <td>
                      {a.broker}
                      {a.broker === "alpaca" && !a.has_credentials && (
                        <span class="badge rejected">no credentials</span>
                      )}
                    </td>
                    <td>
                      <span class={`badge ${a.live ? "live" : "paper"}`}>
                        {a.live ? "live" : "paper"}
                      </span>
                    </td>
                    <td>
                      {a.kill_switch
                        ? <span class="badge rejected">on</span>
                        : <span class="muted">off</span>}
                    </td>
                    <td>{formatTime(a.created_at, zone)}</td>
                    <td class="actions">
                      <button
                        type="button"
                        aria-expanded={editing === a.alias}
                        aria-controls="account-editor"
                        onClick={() => setEditing(editing === a.alias ? null : a.alias)}
                      >
                        {editing === a.alias ? "Close" : "Edit"}
                      </button>{" "}
                      <button
                        type="button"
                        class="danger"
                        disabled={busy}
                        onClick={() => remove(a)}
                      >
                        Delete
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      <p class="error" role="alert">{error}</p>
      <p class="ok-text" role="status">{status}</p>
      {current && (
        <AccountEditor
          key={current.alias}
          account={current}
          onSaved={(a) => setAccounts((list) => list.map((x) => x.alias === a.alias ? a : x))}
        />
      )}
      <h3>Add an account</h3>
      <form class="form settings-form" data-testid="create-account" onSubmit={create}>
        <div class="form inline">
          <label>
            Alias
            <input
              name="alias"
              required
              maxLength={40}
              pattern="[a-z0-9][a-z0-9_\-]{0,39}"
              placeholder="alpaca-paper"
              title="Lowercase letters, digits, _ or -"
              aria-describedby="new-alias-error"
            />
            <FieldError id="new-alias-error" message={errorFor(errors, "alias")} />
          </label>
          <label>
            Broker
            <select
              name="broker"
              value={broker}
              onChange={(e) => setBroker((e.currentTarget as HTMLSelectElement).value as "paper")}
            >
              <option value="alpaca">Alpaca</option>
              <option value="paper">Paper (simulated)</option>
            </select>
          </label>
        </div>
        {broker === "alpaca" && (
          <fieldset>
            <legend>Alpaca API keys</legend>
            <p class="muted">
              Stored encrypted and never shown again. Paper and live trading have different keys.
            </p>
            <div class="form inline">
              <label>
                API key id
                <input
                  type="password"
                  name="credentials.key_id"
                  required
                  autocomplete="off"
                  aria-describedby="new-key-id-error"
                />
                <FieldError
                  id="new-key-id-error"
                  message={errorFor(errors, "credentials.key_id")}
                />
              </label>
              <label>
                API secret key
                <input
                  type="password"
                  name="credentials.secret_key"
                  required
                  autocomplete="new-password"
                  aria-describedby="new-secret-error"
                />
                <FieldError
                  id="new-secret-error"
                  message={errorFor(errors, "credentials.secret_key") ||
                    errorFor(errors, "credentials")}
                />
              </label>
            </div>
            <label class="check">
              <input
                type="checkbox"
                name="live"
                checked={live}
                onChange={(e) => setLive((e.currentTarget as HTMLInputElement).checked)}
              />
              Live trading (real money)
            </label>
            {live && (
              <p class="banner danger" data-testid="live-warning">
                Live: every signal on this account becomes a real order with real money. Use your
                Alpaca <strong>live</strong> keys, and set risk limits before sending alerts.
              </p>
            )}
          </fieldset>
        )}
        <div>
          <button type="submit" class="primary" disabled={busy}>
            {busy ? "Adding…" : "Add account"}
          </button>
        </div>
      </form>
    </section>
  );
}

/** A number field's value for the body: undefined when empty. */
function numberOf(form: HTMLFormElement, name: string): number | undefined {
  const value = field(form, name).trim();
  return value === "" ? undefined : Number(value);
}

function text(value: unknown): string {
  return value === undefined || value === null ? "" : String(value);
}

interface Session {
  timezone?: string;
  days?: number[];
  start?: string;
  end?: string;
}

function AccountEditor(
  { account, onSaved }: {
    account: AccountView;
    onSaved: (account: AccountView) => void;
  },
) {
  const risk = account.risk;
  const session = (risk.trading_session ?? null) as Session | null;
  const [hasSession, setHasSession] = useState(session !== null);
  const [rows, setRows] = useState<Array<[string, string]>>(
    Object.entries(account.symbol_map).length > 0 ? Object.entries(account.symbol_map) : [["", ""]],
  );
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [status, setStatus] = useState("");
  const [goLive, setGoLive] = useState(account.live);
  // Which form the last message belongs to: it is shown under that form.
  const [where, setWhere] = useState<"settings" | "credentials">("settings");
  const id = (name: string) => `acct-${account.alias}-${name.replaceAll(".", "-")}`;

  async function send(body: Record<string, unknown>, message: string, form?: HTMLFormElement) {
    setWhere(form ? "credentials" : "settings");
    setBusy(true);
    setError("");
    setErrors({});
    setStatus("");
    try {
      const saved = await api<AccountView>("PATCH", `/api/v1/accounts/${account.alias}`, body);
      form?.reset();
      setStatus(message);
      onSaved(saved);
    } catch (failure) {
      setError(alertOf(failure));
      setErrors(fieldErrorsOf(failure));
    } finally {
      setBusy(false);
    }
  }

  function save(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const limits: Record<string, unknown> = {};
    for (
      const name of [
        "max_order_quantity",
        "max_position",
        "max_daily_loss",
        "max_signal_age_seconds",
      ]
    ) {
      const value = numberOf(form, `risk.${name}`);
      if (value !== undefined) limits[name] = value;
    }
    const symbols = field(form, "risk.allowed_symbols").split(/[\s,]+/).filter(Boolean);
    if (symbols.length > 0) limits.allowed_symbols = symbols;
    if (hasSession) {
      const data = new FormData(form);
      limits.trading_session = {
        timezone: field(form, "risk.trading_session.timezone").trim(),
        days: data.getAll("risk.trading_session.days").map(Number),
        start: field(form, "risk.trading_session.start"),
        end: field(form, "risk.trading_session.end"),
      };
    }
    const symbolMap = Object.fromEntries(
      rows.map(([k, v]) => [k.trim(), v.trim()] as const).filter(([k, v]) => k !== "" || v !== ""),
    );
    const body: Record<string, unknown> = {
      risk: limits,
      symbol_map: symbolMap,
      micro_futures: (form.elements.namedItem("micro_futures") as HTMLInputElement).checked,
    };
    if (account.broker === "paper") {
      const paper: Record<string, unknown> = {};
      for (const [name] of PAPER_FIELDS) {
        const value = numberOf(form, `paper.${name}`);
        if (value !== undefined) paper[name] = value;
      }
      body.paper = paper;
    }
    return send(body, `Settings of "${account.alias}" saved.`);
  }

  function replaceCredentials(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    if (
      goLive && !account.live &&
      !confirm(`Switch "${account.alias}" to LIVE trading? Its orders will use real money.`)
    ) return;
    return send(
      {
        live: goLive,
        credentials: {
          key_id: field(form, "credentials.key_id").trim(),
          secret_key: field(form, "credentials.secret_key").trim(),
        },
      },
      `Credentials of "${account.alias}" replaced.`,
      form,
    );
  }

  function numberInput(
    name: string,
    label: string,
    value: unknown,
    { min = "0", step = "any", placeholder = "no limit" } = {},
  ) {
    const full = `risk.${name}`;
    return (
      <label>
        {label}
        <input
          type="number"
          name={full}
          min={min}
          step={step}
          defaultValue={text(value)}
          placeholder={placeholder}
          aria-describedby={id(full)}
          aria-invalid={errorFor(errors, full) ? true : undefined}
        />
        <FieldError id={id(full)} message={errorFor(errors, full)} />
      </label>
    );
  }

  return (
    <div class="account-editor" id="account-editor" data-testid="account-editor">
      <h3>Edit "{account.alias}"</h3>
      <form class="form settings-form" data-testid="account-settings" onSubmit={save}>
        <fieldset>
          <legend>Risk limits</legend>
          <p class="muted">Leave a field empty for no limit. Checked before every order.</p>
          <div class="form inline">
            {numberInput("max_order_quantity", "Max order quantity", risk.max_order_quantity)}
            {numberInput("max_position", "Max position (per symbol)", risk.max_position)}
            {numberInput(
              "max_daily_loss",
              "Max daily loss (account currency)",
              risk.max_daily_loss,
            )}
            {numberInput(
              "max_signal_age_seconds",
              "Max signal age (seconds, default 60)",
              risk.max_signal_age_seconds,
              { min: "1", step: "1", placeholder: "60" },
            )}
          </div>
          <label>
            Allowed symbols (comma or space separated; empty allows all)
            <input
              name="risk.allowed_symbols"
              defaultValue={Array.isArray(risk.allowed_symbols)
                ? risk.allowed_symbols.join(", ")
                : ""}
              placeholder="AAPL, MNQ"
              aria-describedby={id("risk.allowed_symbols")}
            />
            <FieldError
              id={id("risk.allowed_symbols")}
              message={errorFor(errors, "risk.allowed_symbols")}
            />
          </label>
          <label class="check">
            <input
              type="checkbox"
              checked={hasSession}
              onChange={(e) => setHasSession((e.currentTarget as HTMLInputElement).checked)}
            />
            Trade only in a session
          </label>
          {hasSession && (
            <fieldset class="session">
              <legend>Trading session (in the exchange's time zone)</legend>
              <div class="form inline">
                <label>
                  Time zone
                  <input
                    name="risk.trading_session.timezone"
                    required
                    defaultValue={session?.timezone ?? "America/New_York"}
                  />
                </label>
                <label>
                  Start
                  <input
                    type="time"
                    name="risk.trading_session.start"
                    required
                    defaultValue={session?.start ?? "09:30"}
                  />
                </label>
                <label>
                  End
                  <input
                    type="time"
                    name="risk.trading_session.end"
                    required
                    defaultValue={session?.end ?? "16:00"}
                  />
                </label>
              </div>
              <div class="days" role="group" aria-label="Days the session starts on">
                {DAYS.map((day, i) => (
                  <label class="check" key={day}>
                    <input
                      type="checkbox"
                      name="risk.trading_session.days"
                      value={String(i + 1)}
                      defaultChecked={session?.days ? session.days.includes(i + 1) : i < 5}
                    />
                    {day}
                  </label>
                ))}
              </div>
              <p class="muted">An end before the start runs overnight (e.g. 18:00 to 17:00).</p>
              <FieldError
                id={id("risk.trading_session")}
                message={errorFor(errors, "risk.trading_session")}
              />
            </fieldset>
          )}
        </fieldset>
        <fieldset>
          <legend>Symbol map overrides</legend>
          <p class="muted">
            TradingView ticker → broker symbol, tried before the built-in mapping.
          </p>
          {rows.map(([from, to], i) => (
            <div class="form inline map-row" key={i}>
              <label>
                Ticker
                <input
                  value={from}
                  placeholder="NQ1!"
                  maxLength={64}
                  onInput={(e) =>
                    setRows((r) =>
                      r.map((row, j) =>
                        j === i ? [(e.currentTarget as HTMLInputElement).value, row[1]] : row
                      )
                    )}
                />
              </label>
              <label>
                Broker symbol
                <input
                  value={to}
                  placeholder="MNQZ6"
                  maxLength={64}
                  onInput={(e) =>
                    setRows((r) =>
                      r.map((row, j) =>
                        j === i ? [row[0], (e.currentTarget as HTMLInputElement).value] : row
                      )
                    )}
                />
              </label>
              <button
                type="button"
                aria-label={`Remove mapping ${from || i + 1}`}
                onClick={() => setRows((r) => r.filter((_, j) => j !== i))}
              >
                Remove
              </button>
            </div>
          ))}
          <button type="button" onClick={() => setRows((r) => [...r, ["", ""]])}>
            Add mapping
          </button>
          <FieldError id={id("symbol_map")} message={errorFor(errors, "symbol_map")} />
        </fieldset>
        <label class="check">
          <input type="checkbox" name="micro_futures" defaultChecked={account.micro_futures} />
          Trade micro futures (NQ → MNQ, ES → MES …)
        </label>
        {account.broker === "paper" && (
          <fieldset>
            <legend>Paper broker</legend>
            <div class="form inline">
              {PAPER_FIELDS.map(([name, label, min, max, fallback]) => (
                <label key={name}>
                  {label}
                  <input
                    type="number"
                    name={`paper.${name}`}
                    min={min}
                    max={max}
                    step="any"
                    defaultValue={text(account.paper[name])}
                    placeholder={fallback}
                    aria-describedby={id(`paper.${name}`)}
                  />
                  <FieldError
                    id={id(`paper.${name}`)}
                    message={errorFor(errors, `paper.${name}`)}
                  />
                </label>
              ))}
            </div>
          </fieldset>
        )}
        <div>
          <button type="submit" class="primary" disabled={busy}>
            {busy ? "Saving…" : "Save settings"}
          </button>
        </div>
        <p class="error" role="alert">{where === "settings" ? error : ""}</p>
        <p class="ok-text" role="status">{where === "settings" ? status : ""}</p>
      </form>
      {account.broker === "alpaca" && (
        <form
          class="form settings-form"
          data-testid="account-credentials"
          onSubmit={replaceCredentials}
        >
          <fieldset>
            <legend>Replace Alpaca API keys</legend>
            <p class="muted">
              {account.has_credentials ? "Keys are stored (never shown)." : "No keys stored."}{" "}
              Switching between paper and live needs that account's keys.
            </p>
            <div class="form inline">
              <label>
                API key id
                <input type="password" name="credentials.key_id" required autocomplete="off" />
                <FieldError
                  id={id("credentials.key_id")}
                  message={errorFor(errors, "credentials.key_id")}
                />
              </label>
              <label>
                API secret key
                <input
                  type="password"
                  name="credentials.secret_key"
                  required
                  autocomplete="new-password"
                />
                <FieldError
                  id={id("credentials.secret_key")}
                  message={errorFor(errors, "credentials.secret_key")}
                />
              </label>
            </div>
            <label class="check">
              <input
                type="checkbox"
                checked={goLive}
                onChange={(e) => setGoLive((e.currentTarget as HTMLInputElement).checked)}
              />
              Live trading (real money)
            </label>
            {goLive && (
              <p class="banner danger">
                Live: signals on "{account.alias}" become real orders with real money.
              </p>
            )}
            <div>
              <button type="submit" disabled={busy}>
                {busy ? "Saving…" : "Replace keys"}
              </button>
            </div>
            <p class="error" role="alert">{where === "credentials" ? error : ""}</p>
            <p class="ok-text" role="status">{where === "credentials" ? status : ""}</p>
          </fieldset>
        </form>
      )}
    </div>
  );
}
