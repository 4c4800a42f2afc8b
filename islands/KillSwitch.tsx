/**
 * The kill switches: one per broker account (its owner's), and the global one for admins. While
 * one is on, every new signal for its account(s) is rejected with the reason, and nothing is
 * sent to the broker.
 */
import { useState } from "preact/hooks";
import { api } from "./_client/api.ts";
import { messageOf } from "./_client/form.ts";

/** One account's switch. */
export interface KillSwitchAccount {
  alias: string;
  kill_switch: boolean;
}

/** Props. */
export interface KillSwitchProps {
  accounts: KillSwitchAccount[];
  global: boolean;
  admin: boolean;
  [key: string]: unknown;
}

export default function KillSwitch({ accounts, global, admin }: KillSwitchProps) {
  const [state, setState] = useState({ accounts, global });
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState("");

  async function toggle(account: string | null, enabled: boolean) {
    setBusy(account ?? "*");
    setError("");
    try {
      await api("POST", "/api/v1/kill-switch", account ? { enabled, account } : { enabled });
      setState((s) =>
        account
          ? {
            ...s,
            accounts: s.accounts.map((a) =>
              a.alias === account ? { ...a, kill_switch: enabled } : a
            ),
          }
          : { ...s, global: enabled }
      );
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(null);
    }
  }

  return (
    <section class="card" aria-labelledby="kill-switch">
      <h2 id="kill-switch">Kill switch</h2>
      {state.global && (
        <p class="banner danger" role="status">
          The global kill switch is on: every signal of every user is rejected.
        </p>
      )}
      <ul class="switches">
        {state.accounts.map((a) => (
          <li key={a.alias} data-account={a.alias} data-kill-switch={a.kill_switch ? "on" : "off"}>
            <span>
              <strong>{a.alias}</strong> {a.kill_switch
                ? <span class="badge rejected">stopped: new signals are rejected</span>
                : <span class="badge filled">trading</span>}
            </span>
            <button
              type="button"
              class={a.kill_switch ? "" : "danger"}
              disabled={busy !== null}
              aria-pressed={a.kill_switch}
              onClick={() =>
                toggle(a.alias, !a.kill_switch)}
            >
              {a.kill_switch ? `Resume ${a.alias}` : `Stop ${a.alias}`}
            </button>
          </li>
        ))}
        {admin && (
          <li data-account="*" data-kill-switch={state.global ? "on" : "off"}>
            <span>
              <strong>Everyone</strong> <span class="muted">(global, admins only)</span>
            </span>
            <button
              type="button"
              class={state.global ? "" : "danger"}
              disabled={busy !== null}
              aria-pressed={state.global}
              onClick={() => toggle(null, !state.global)}
            >
              {state.global ? "Resume all trading" : "Stop all trading"}
            </button>
          </li>
        )}
      </ul>
      <p class="error" role="alert">{error}</p>
    </section>
  );
}
