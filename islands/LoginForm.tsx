/**
 * The login form. On load it first tries to renew an existing session silently (the access
 * cookie lasts an hour, the refresh cookie a week), so a trader coming back is not asked for a
 * password; then it logs in with email and password in cookie mode and goes to `next`.
 */
import { useEffect, useState } from "preact/hooks";
import { csrfToken, readFailure, refreshSession } from "./_client/api.ts";
import { field, messageOf } from "./_client/form.ts";

/** Props. */
export interface LoginFormProps {
  /** Where to go after logging in (a path on this site). */
  next: string;
  [key: string]: unknown;
}

export default function LoginForm({ next }: LoginFormProps) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const [checking, setChecking] = useState(false);

  useEffect(() => {
    if (!csrfToken()) return; // never signed in from this browser: nothing to renew
    setChecking(true);
    refreshSession().then((ok) => {
      if (ok) location.replace(next);
      else setChecking(false);
    });
  }, []);

  async function submit(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    setBusy(true);
    setError("");
    try {
      const res = await fetch("/api/v1/auth/login", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          email: field(form, "email"),
          password: field(form, "password"),
          mode: "cookie",
        }),
      });
      if (!res.ok) throw await readFailure(res);
      location.assign(next);
    } catch (failure) {
      setError(messageOf(failure));
      setBusy(false);
    }
  }

  return (
    <form class="card form narrow" onSubmit={submit} aria-busy={busy || checking}>
      <h1>Sign in</h1>
      {checking && <p class="muted" role="status">Renewing your session…</p>}
      <label>
        Email
        <input name="email" type="email" autocomplete="username" required autofocus />
      </label>
      <label>
        Password
        <input name="password" type="password" autocomplete="current-password" required />
      </label>
      <p class="error" role="alert" aria-live="assertive">{error}</p>
      <button type="submit" class="primary" disabled={busy}>
        {busy ? "Signing in…" : "Sign in"}
      </button>
    </form>
  );
}
