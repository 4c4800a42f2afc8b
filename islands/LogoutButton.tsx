/** Signs out: ends the session on the server (cookies cleared) and opens the login page. */
import { useState } from "preact/hooks";
import { csrfToken } from "./_client/api.ts";

export default function LogoutButton(_props: Record<string, unknown>) {
  const [busy, setBusy] = useState(false);
  async function logout() {
    setBusy(true);
    try {
      await fetch("/api/v1/auth/logout", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrfToken() },
      });
    } finally {
      location.assign("/login");
    }
  }
  return (
    <button type="button" class="link" onClick={logout} disabled={busy}>
      Sign out
    </button>
  );
}
