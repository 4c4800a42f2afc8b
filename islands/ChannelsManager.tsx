/**
 * Notification channels: the list, adding a Telegram chat (bot token + chat id) or a Discord
 * webhook, choosing the events a channel gets, editing one (name, events, chat, on/off, a new
 * bot token or webhook URL), sending a test message and deleting one. The bot token and the
 * webhook URL are write-only: sent, never shown again.
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

/** A channel as the API shows it (no secret). */
export interface ChannelView {
  id: string;
  kind: "telegram" | "discord";
  name: string;
  chat_id: string | null;
  events: string[] | null;
  enabled: boolean;
  created_at: string;
}

/** Props. */
export interface ChannelsManagerProps {
  channels: ChannelView[];
  /** Every event type a channel can subscribe to. */
  eventTypes: string[];
  zone: string;
  [key: string]: unknown;
}

type TestResult = { ok: boolean; error?: string };

const NO_EVENTS = "Choose at least one event, or all events.";

/** The events a form's {@linkcode EventsPicker} chose: null for all. */
function eventsOf(form: HTMLFormElement): string[] | null {
  const data = new FormData(form);
  return data.get("all") ? null : data.getAll("events").map(String);
}

/** "All events", or a box per event type; `chosen` null starts from all. */
function EventsPicker({ eventTypes, chosen }: { eventTypes: string[]; chosen: string[] | null }) {
  const [all, setAll] = useState(chosen === null);
  return (
    <fieldset>
      <legend>Events</legend>
      <label class="check">
        <input
          type="checkbox"
          name="all"
          checked={all}
          onChange={(e) => setAll((e.currentTarget as HTMLInputElement).checked)}
        />
        All events
      </label>
      {!all && (
        <div class="events-pick">
          {eventTypes.map((type) => (
            <label class="check" key={type}>
              <input
                type="checkbox"
                name="events"
                value={type}
                defaultChecked={chosen === null || chosen.includes(type)}
              />
              <span class="mono">{type}</span>
            </label>
          ))}
        </div>
      )}
    </fieldset>
  );
}

export default function ChannelsManager(
  { channels: initial, eventTypes, zone }: ChannelsManagerProps,
) {
  const [channels, setChannels] = useState(initial);
  const [kind, setKind] = useState<"telegram" | "discord">("telegram");
  /** Bumped after each new channel, so the next one's event choice starts from "all". */
  const [created, setCreated] = useState(0);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [status, setStatus] = useState("");
  const [results, setResults] = useState<Record<string, TestResult>>({});
  const [editing, setEditing] = useState<string | null>(null);
  /** The edit form's field errors, apart from the add form's. */
  const [editErrors, setEditErrors] = useState<FieldErrors>({});

  async function reload() {
    const list = await api<{ data: ChannelView[] }>("GET", "/api/v1/notification-channels");
    setChannels(list.data);
  }

  async function create(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const name = field(form, "name").trim();
    const events = eventsOf(form);
    if (events && events.length === 0) {
      setError(NO_EVENTS);
      return;
    }
    setBusy("create");
    setError("");
    setErrors({});
    setStatus("");
    try {
      await api("POST", "/api/v1/notification-channels", {
        kind,
        name,
        events,
        ...(kind === "telegram"
          ? { bot_token: field(form, "bot_token").trim(), chat_id: field(form, "chat_id").trim() }
          : { webhook_url: field(form, "webhook_url").trim() }),
      });
      form.reset();
      setCreated((n) => n + 1);
      setStatus(`Channel "${name}" added. Send a test to check it.`);
      await reload();
    } catch (failure) {
      setError(alertOf(failure));
      setErrors(fieldErrorsOf(failure));
    } finally {
      setBusy(null);
    }
  }

  async function test(channel: ChannelView) {
    setBusy(channel.id);
    setError("");
    setResults((r) => {
      const { [channel.id]: _, ...rest } = r;
      return rest;
    });
    try {
      const result = await api<TestResult>(
        "POST",
        `/api/v1/notification-channels/${channel.id}/test`,
      );
      setResults((r) => ({ ...r, [channel.id]: result }));
    } catch (failure) {
      setResults((r) => ({ ...r, [channel.id]: { ok: false, error: messageOf(failure) } }));
    } finally {
      setBusy(null);
    }
  }

  async function update(channel: ChannelView, change: Record<string, unknown>, done: string) {
    // Not the channel's id: that one says "Sending…" on its test button.
    setBusy(`update:${channel.id}`);
    setError("");
    setEditErrors({});
    setStatus("");
    try {
      await api("PATCH", `/api/v1/notification-channels/${channel.id}`, change);
      setStatus(done);
      setEditing(null);
      await reload();
    } catch (failure) {
      setError(alertOf(failure));
      setEditErrors(fieldErrorsOf(failure));
    } finally {
      setBusy(null);
    }
  }

  function save(channel: ChannelView, event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const events = eventsOf(form);
    if (events && events.length === 0) {
      setError(NO_EVENTS);
      return;
    }
    const name = field(form, "name").trim();
    // A new secret only when one was typed: an empty field keeps the stored one.
    const secretField = newSecretOf(channel.kind).field;
    const secret = field(form, secretField).trim();
    return update(
      channel,
      {
        name,
        events,
        ...(channel.kind === "telegram" ? { chat_id: field(form, "chat_id").trim() } : {}),
        ...(secret ? { [secretField]: secret } : {}),
      },
      `Channel "${name}" saved.`,
    );
  }

  async function remove(channel: ChannelView) {
    if (!confirm(`Delete the channel "${channel.name}"? It gets no more notifications.`)) return;
    setBusy(channel.id);
    setError("");
    setStatus("");
    try {
      await api("DELETE", `/api/v1/notification-channels/${channel.id}`);
      setStatus(`Channel "${channel.name}" deleted.`);
      await reload();
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(null);
    }
  }

  return (
    <section class="card" id="notifications" aria-labelledby="notifications-title">
      <h2 id="notifications-title">Notifications</h2>
      <p class="muted">
        Trades, rejected signals, broker outages, trendline alerts and the daily summary, sent to
        Telegram or Discord.
      </p>
      {channels.length === 0
        ? (
          <p class="empty-inline">
            No channels yet: add a Telegram chat or a Discord webhook below.
          </p>
        )
        : (
          <div class="table-wrap">
            <table class="table" data-testid="channels">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Events</th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {channels.map((ch) => {
                  const result = results[ch.id];
                  return [
                    <tr key={ch.id} data-channel-id={ch.id}>
                      <td>
                        <strong>{ch.name}</strong>
                        {!ch.enabled && <span class="badge canceled">disabled</span>}
                      </td>
                      <td>
                        {ch.kind}
                        {ch.chat_id && <span class="muted mono">{ch.chat_id}</span>}
                      </td>
                      <td class="events">{ch.events ? ch.events.join(", ") : "all"}</td>
                      <td>{formatTime(ch.created_at, zone)}</td>
                      <td class="actions">
                        <button
                          type="button"
                          disabled={busy !== null}
                          aria-describedby={`test-${ch.id}`}
                          onClick={() => test(ch)}
                        >
                          {busy === ch.id ? "Sending…" : "Send test"}
                        </button>{" "}
                        <button
                          type="button"
                          disabled={busy !== null}
                          aria-expanded={editing === ch.id}
                          onClick={() => {
                            setEditErrors({});
                            setEditing(editing === ch.id ? null : ch.id);
                          }}
                        >
                          Edit
                        </button>{" "}
                        <button
                          type="button"
                          disabled={busy !== null}
                          onClick={() =>
                            update(
                              ch,
                              { enabled: !ch.enabled },
                              `Channel "${ch.name}" ${ch.enabled ? "disabled" : "enabled"}.`,
                            )}
                        >
                          {ch.enabled ? "Disable" : "Enable"}
                        </button>{" "}
                        <button
                          type="button"
                          class="danger"
                          disabled={busy !== null}
                          onClick={() => remove(ch)}
                        >
                          Delete
                        </button>
                        <span
                          id={`test-${ch.id}`}
                          role="status"
                          data-testid="test-result"
                          class={result ? (result.ok ? "ok-text" : "error") : ""}
                        >
                          {result && (result.ok ? "Test sent." : `Test failed: ${result.error}`)}
                        </span>
                      </td>
                    </tr>,
                    editing === ch.id && (
                      <tr key={`${ch.id}-edit`} class="edit-row">
                        <td colSpan={5}>
                          <EditChannel
                            channel={ch}
                            eventTypes={eventTypes}
                            busy={busy !== null}
                            errors={editErrors}
                            onSave={(e) => save(ch, e)}
                            onCancel={() => setEditing(null)}
                          />
                        </td>
                      </tr>
                    ),
                  ];
                })}
              </tbody>
            </table>
          </div>
        )}
      <p class="error" role="alert">{error}</p>
      <p class="ok-text" role="status">{status}</p>
      <h3>Add a channel</h3>
      <form class="form settings-form" data-testid="create-channel" onSubmit={create}>
        <div class="form inline">
          <label>
            Kind
            <select
              name="kind"
              value={kind}
              onChange={(e) =>
                setKind((e.currentTarget as HTMLSelectElement).value as "telegram" | "discord")}
            >
              <option value="telegram">Telegram</option>
              <option value="discord">Discord</option>
            </select>
          </label>
          <label>
            Name
            <input name="name" required maxLength={100} placeholder="My phone" />
            <FieldError id="channel-name-error" message={errorFor(errors, "name")} />
          </label>
          {kind === "telegram"
            ? (
              <>
                <label>
                  Bot token
                  <input
                    type="password"
                    name="bot_token"
                    required
                    autocomplete="off"
                    placeholder="123456:ABC…"
                    aria-describedby="bot-token-error"
                  />
                  <FieldError id="bot-token-error" message={errorFor(errors, "bot_token")} />
                </label>
                <label>
                  Chat id
                  <input
                    name="chat_id"
                    required
                    placeholder="-1001234 or @channel"
                    aria-describedby="chat-id-error"
                  />
                  <FieldError id="chat-id-error" message={errorFor(errors, "chat_id")} />
                </label>
              </>
            )
            : (
              <label class="wide">
                Webhook URL
                <input
                  type="password"
                  name="webhook_url"
                  required
                  autocomplete="off"
                  placeholder="https://discord.com/api/webhooks/…"
                  aria-describedby="webhook-url-error"
                />
                <FieldError id="webhook-url-error" message={errorFor(errors, "webhook_url")} />
              </label>
            )}
        </div>
        <EventsPicker key={created} eventTypes={eventTypes} chosen={null} />
        <p class="muted">
          The bot token and the webhook URL are stored encrypted and never shown again.
        </p>
        <div>
          <button type="submit" class="primary" disabled={busy !== null}>
            {busy === "create" ? "Adding…" : "Add channel"}
          </button>
        </div>
      </form>
    </section>
  );
}

/** The edit form's field for a channel's new secret. */
function newSecretOf(kind: string): { field: string; label: string } {
  return kind === "telegram"
    ? { field: "bot_token", label: "New bot token" }
    : { field: "webhook_url", label: "New webhook URL" };
}

/**
 * The edit form of one channel: its name, Telegram chat, events, and a new bot token or webhook
 * URL (left empty, the stored one stays; it is never shown).
 */
function EditChannel(
  { channel, eventTypes, busy, errors, onSave, onCancel }: {
    channel: ChannelView;
    eventTypes: string[];
    busy: boolean;
    errors: FieldErrors;
    onSave: (event: Event) => void;
    onCancel: () => void;
  },
) {
  const id = (name: string) => `edit-${channel.id}-${name}`;
  const secret = newSecretOf(channel.kind);
  return (
    <form class="form settings-form" data-testid="edit-channel" onSubmit={onSave}>
      <div class="form inline">
        <label>
          Name
          <input
            name="name"
            required
            maxLength={100}
            defaultValue={channel.name}
            aria-describedby={id("name")}
          />
          <FieldError id={id("name")} message={errorFor(errors, "name")} />
        </label>
        {channel.kind === "telegram" && (
          <label>
            Chat id
            <input
              name="chat_id"
              required
              defaultValue={channel.chat_id ?? ""}
              aria-describedby={id("chat")}
            />
            <FieldError id={id("chat")} message={errorFor(errors, "chat_id")} />
          </label>
        )}
        <label class={channel.kind === "discord" ? "wide" : undefined}>
          {secret.label}
          <input
            type="password"
            name={secret.field}
            autocomplete="off"
            placeholder="Leave empty to keep it"
            aria-describedby={id(secret.field)}
          />
          <FieldError id={id(secret.field)} message={errorFor(errors, secret.field)} />
        </label>
      </div>
      <EventsPicker eventTypes={eventTypes} chosen={channel.events} />
      <div>
        <button type="submit" class="primary" disabled={busy}>Save</button>{" "}
        <button type="button" disabled={busy} onClick={onCancel}>Cancel</button>
      </div>
    </form>
  );
}
