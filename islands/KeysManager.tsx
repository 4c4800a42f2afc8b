/**
 * Webhook keys: the list (prefix, status, last use, expiry), creating a key — shown in clear this
 * once, with the webhook URL and the TradingView alert message to paste — rotating one (with an
 * optional grace period for the old key) and revoking one.
 */
import { useState } from "preact/hooks";
import type { WebhookKeyView } from "../routes/keys.ts";
import { api } from "./_client/api.ts";
import { CopyButton } from "./_client/CopyButton.tsx";
import { field, messageOf } from "./_client/form.ts";
import { formatTime } from "./_client/format.ts";

/** Props. */
export interface KeysManagerProps {
  keys: WebhookKeyView[];
  zone: string;
  [key: string]: unknown;
}

type NewKey = WebhookKeyView & { key: string };

export default function KeysManager({ keys: initial, zone }: KeysManagerProps) {
  const [keys, setKeys] = useState(initial);
  const [fresh, setFresh] = useState<NewKey | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");

  async function run(action: () => Promise<void>) {
    setBusy(true);
    setError("");
    try {
      await action();
      const list = await api<{ data: WebhookKeyView[] }>("GET", "/api/v1/webhook-keys");
      setKeys(list.data);
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  }

  function create(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const expires = field(form, "expires");
    return run(async () => {
      const created = await api<NewKey>("POST", "/api/v1/webhook-keys", {
        name: field(form, "name"),
        ...(expires === "default"
          ? {}
          : { expires_in_days: expires === "never" ? null : Number(expires) }),
      });
      setFresh(created);
      form.reset();
    });
  }

  function rotate(key: WebhookKeyView) {
    const grace = prompt(
      `Rotate "${key.name}": how many minutes may the old key keep working (0 = revoke it now)?`,
      "0",
    );
    if (grace === null) return;
    const minutes = Number(grace);
    if (!Number.isInteger(minutes) || minutes < 0) {
      setError("The grace period is a whole number of minutes.");
      return;
    }
    return run(async () => {
      const rotated = await api<NewKey>("POST", `/api/v1/webhook-keys/${key.id}/rotate`, {
        grace_minutes: minutes,
      });
      setFresh(rotated);
    });
  }

  function revoke(key: WebhookKeyView) {
    if (!confirm(`Revoke "${key.name}" (${key.prefix}…)? Alerts using it stop working at once.`)) {
      return;
    }
    return run(() => api("DELETE", `/api/v1/webhook-keys/${key.id}`));
  }

  return (
    <section class="card" id="keys" aria-labelledby="keys-title">
      <h2 id="keys-title">Webhook keys</h2>
      <p class="muted">
        TradingView sends its alerts with one of these keys. Each key is shown once, when it is
        made: copy the alert message into your TradingView alert and the webhook URL into its
        Notifications tab.
      </p>
      {fresh && (
        <div class="banner ok" data-testid="new-key" role="status">
          <p>
            <strong>New key "{fresh.name}"</strong> — copy it now, it is not shown again.
          </p>
          <pre data-testid="new-key-value">{fresh.key}</pre>
          <CopyButton text={fresh.key} label="key" />
          <p>Webhook URL</p>
          <pre data-testid="webhook-url">{fresh.webhook_url}</pre>
          <CopyButton text={fresh.webhook_url} label="webhook URL" />
          <p>TradingView alert message</p>
          <pre data-testid="alert-message">{fresh.alert_message}</pre>
          <CopyButton text={fresh.alert_message} label="alert message" />{" "}
          <button type="button" onClick={() => setFresh(null)}>Done</button>
        </div>
      )}
      <form class="form inline" data-testid="create-key" onSubmit={create}>
        <label>
          Name
          <input name="name" required maxLength={100} placeholder="TradingView" />
        </label>
        <label>
          Expires
          <select name="expires">
            <option value="default">default (server setting)</option>
            <option value="30">in 30 days</option>
            <option value="90">in 90 days</option>
            <option value="365">in a year</option>
            <option value="never">never</option>
          </select>
        </label>
        <button type="submit" class="primary" disabled={busy}>Create key</button>
      </form>
      <p class="error" role="alert">{error}</p>
      {keys.length === 0
        ? <p class="empty-inline">No keys yet: create one to connect TradingView.</p>
        : (
          <div class="table-wrap">
            <table class="table" data-testid="keys">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Key</th>
                  <th scope="col">Status</th>
                  <th scope="col">Created</th>
                  <th scope="col">Last used</th>
                  <th scope="col">Expires</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {keys.map((k) => (
                  <tr key={k.id} data-key-id={k.id}>
                    <td>{k.name}</td>
                    <td class="mono">{k.prefix}…</td>
                    <td>
                      <span class={`badge ${k.status}`}>{k.status}</span>
                    </td>
                    <td>{formatTime(k.created_at, zone)}</td>
                    <td>{k.last_used_at ? formatTime(k.last_used_at, zone) : "never"}</td>
                    <td>{k.expires_at ? formatTime(k.expires_at, zone) : "never"}</td>
                    <td>
                      {(k.status === "active" || k.status === "expiring") && !k.replaced_by && (
                        <>
                          <button type="button" disabled={busy} onClick={() => rotate(k)}>
                            Rotate
                          </button>{" "}
                          <button
                            type="button"
                            class="danger"
                            disabled={busy}
                            onClick={() => revoke(k)}
                          >
                            Revoke
                          </button>
                        </>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
    </section>
  );
}
