/**
 * Account and security: changing the password (which signs out every other session) and the
 * live sessions, each device with its address and times, with "Sign out" for the others.
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

/** A live session as the API shows it. */
export interface SessionView {
  id: string;
  created_at: string;
  last_used_at: string;
  expires_at: string;
  ip: string | null;
  user_agent: string | null;
  current: boolean;
}

/** Props. */
export interface SecurityPanelProps {
  email: string;
  sessions: SessionView[];
  zone: string;
  [key: string]: unknown;
}

/** A short name for a user agent: browser on system, else the raw string. */
function device(agent: string | null): string {
  if (!agent) return "unknown device";
  const browser = /Edg\//.test(agent)
    ? "Edge"
    : /Firefox\//.test(agent)
    ? "Firefox"
    : /Chrom(e|ium)\//.test(agent)
    ? "Chrome"
    : /Safari\//.test(agent)
    ? "Safari"
    : null;
  const system = /Android/.test(agent)
    ? "Android"
    : /iPhone|iPad/.test(agent)
    ? "iOS"
    : /Windows/.test(agent)
    ? "Windows"
    : /Mac OS X/.test(agent)
    ? "macOS"
    : /Linux/.test(agent)
    ? "Linux"
    : null;
  return browser ? `${browser}${system ? ` on ${system}` : ""}` : agent.slice(0, 60);
}

export default function SecurityPanel({ email, sessions: initial, zone }: SecurityPanelProps) {
  const [sessions, setSessions] = useState(initial);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [status, setStatus] = useState("");

  async function reload() {
    const list = await api<{ data: SessionView[] }>("GET", "/api/v1/sessions");
    setSessions(list.data);
  }

  async function changePassword(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    setError("");
    setErrors({});
    setStatus("");
    if (field(form, "new_password") !== field(form, "confirm")) {
      setErrors({ confirm: "The two new passwords differ" });
      setError("The two new passwords differ.");
      return;
    }
    const others = sessions.filter((s) => !s.current).length;
    if (
      others > 0 &&
      !confirm(`Change the password and sign out your ${others} other session(s)?`)
    ) return;
    setBusy("password");
    try {
      await api("POST", "/api/v1/me/password", {
        current_password: field(form, "current_password"),
        new_password: field(form, "new_password"),
      });
      form.reset();
      setStatus("Password changed. Every other session is signed out.");
      await reload();
    } catch (failure) {
      setError(alertOf(failure));
      setErrors(fieldErrorsOf(failure));
    } finally {
      setBusy(null);
    }
  }

  async function signOut(session: SessionView) {
    if (!confirm(`Sign out ${device(session.user_agent)} (${session.ip ?? "unknown address"})?`)) {
      return;
    }
    setBusy(session.id);
    setError("");
    setStatus("");
    try {
      await api("DELETE", `/api/v1/sessions/${session.id}`);
      setStatus(`Signed out ${device(session.user_agent)}.`);
      await reload();
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(null);
    }
  }

  return (
    <section class="card" id="security" aria-labelledby="security-title">
      <h2 id="security-title">Account &amp; security</h2>
      <p class="muted">
        Signed in as <strong>{email}</strong>.
      </p>
      <form class="form narrow" data-testid="change-password" onSubmit={changePassword}>
        <h3>Change password</h3>
        <input type="text" name="username" autocomplete="username" value={email} hidden readOnly />
        <label>
          Current password
          <input
            type="password"
            name="current_password"
            required
            autocomplete="current-password"
          />
        </label>
        <label>
          New password
          <input
            type="password"
            name="new_password"
            required
            minLength={8}
            autocomplete="new-password"
            aria-describedby="new-password-error"
          />
          <FieldError id="new-password-error" message={errorFor(errors, "new_password")} />
        </label>
        <label>
          New password again
          <input
            type="password"
            name="confirm"
            required
            autocomplete="new-password"
            aria-describedby="confirm-error"
          />
          <FieldError id="confirm-error" message={errorFor(errors, "confirm")} />
        </label>
        <p class="muted">Changing it signs out every other session (other browsers, devices).</p>
        <div>
          <button type="submit" class="primary" disabled={busy !== null}>
            {busy === "password" ? "Changing…" : "Change password"}
          </button>
        </div>
      </form>
      <h3>Sessions</h3>
      <div class="table-wrap">
        <table class="table" data-testid="sessions">
          <thead>
            <tr>
              <th scope="col">Device</th>
              <th scope="col">IP address</th>
              <th scope="col">Signed in</th>
              <th scope="col">Last used</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {sessions.map((s) => (
              <tr key={s.id} data-session-id={s.id} data-current={s.current ? "yes" : "no"}>
                <td title={s.user_agent ?? ""}>{device(s.user_agent)}</td>
                <td class="mono">{s.ip ?? "unknown"}</td>
                <td>{formatTime(s.created_at, zone)}</td>
                <td>{formatTime(s.last_used_at, zone)}</td>
                <td>
                  {s.current ? <span class="badge active">this session</span> : (
                    <button
                      type="button"
                      disabled={busy !== null}
                      onClick={() => signOut(s)}
                    >
                      {busy === s.id ? "Signing out…" : "Sign out"}
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p class="error" role="alert">{error}</p>
      <p class="ok-text" role="status">{status}</p>
    </section>
  );
}
