/**
 * First-run setup: creates the first admin (only possible while no user exists) and signs them
 * in, then opens the overview.
 */
import { useState } from "preact/hooks";
import { readFailure } from "./_client/api.ts";
import { field, messageOf } from "./_client/form.ts";

/** Props. */
export interface SetupFormProps {
  /** The shortest password the server accepts. */
  minPassword: number;
  [key: string]: unknown;
}

export default function SetupForm({ minPassword }: SetupFormProps) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  async function submit(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const password = field(form, "password");
    if (password !== field(form, "confirm")) {
      setError("The two passwords differ.");
      return;
    }
    setBusy(true);
    setError("");
    try {
      const res = await fetch("/api/v1/auth/setup", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ email: field(form, "email"), password, mode: "cookie" }),
      });
      if (res.status === 409) {
        location.assign("/login");
        return;
      }
      if (!res.ok) throw await readFailure(res);
      location.assign("/");
    } catch (failure) {
      setError(messageOf(failure));
      setBusy(false);
    }
  }

  return (
    <form class="card form narrow" onSubmit={submit} aria-busy={busy}>
      <h1>Welcome to trendedge</h1>
      <p class="muted">
        Create the administrator account. You can invite traders afterwards.
      </p>
      <label>
        Email
        <input name="email" type="email" autocomplete="username" required autofocus />
      </label>
      <label>
        Password <span class="muted">(at least {minPassword} characters)</span>
        <input
          name="password"
          type="password"
          autocomplete="new-password"
          minLength={minPassword}
          required
        />
      </label>
      <label>
        Repeat the password
        <input
          name="confirm"
          type="password"
          autocomplete="new-password"
          minLength={minPassword}
          required
        />
      </label>
      <p class="error" role="alert" aria-live="assertive">{error}</p>
      <button type="submit" class="primary" disabled={busy}>
        {busy ? "Creating…" : "Create admin and sign in"}
      </button>
    </form>
  );
}
