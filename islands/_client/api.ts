/**
 * The dashboard's calls to the JSON API: same-origin cookies, the CSRF token on every change,
 * one silent refresh of the session when the access token has expired, and failures turned into
 * {@linkcode ApiFailure}s that carry the server's message (the standard error body).
 */

/** A failed API call, with the server's error code and message. */
export class ApiFailure extends Error {
  override name = "ApiFailure";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Array<{ field?: string; message: string }> = [],
  ) {
    super(message);
  }
}

/** The CSRF token the server set at login (`te_csrf`, readable by scripts on purpose). */
export function csrfToken(): string {
  const match = /(?:^|;\s*)te_csrf=([^;]*)/.exec(document.cookie);
  return match ? decodeURIComponent(match[1]!) : "";
}

let refreshing: Promise<boolean> | undefined;

/**
 * Renews the cookie session once for the whole page. Tabs take a lock first, and a tab that
 * finds the session already renewed by another skips its own refresh: two refreshes with one
 * refresh token would look like a stolen token and end the session.
 */
export function refreshSession(): Promise<boolean> {
  refreshing ??= (async () => {
    const run = async () => {
      const me = await fetch("/api/v1/me", { credentials: "same-origin" });
      if (me.ok) return true;
      const res = await fetch("/api/v1/auth/refresh", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrfToken() },
      });
      return res.ok;
    };
    try {
      const locks = (navigator as Navigator & { locks?: LockManager }).locks;
      return locks ? await locks.request("trendedge-refresh", run) : await run();
    } catch {
      return false;
    } finally {
      setTimeout(() => refreshing = undefined, 0);
    }
  })();
  return refreshing;
}

/** Sends the browser to the login page, coming back here afterwards. */
export function toLogin(): void {
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

export async function readFailure(res: Response): Promise<ApiFailure> {
  try {
    const body = await res.json();
    const error = body?.error;
    if (error && typeof error.message === "string") {
      return new ApiFailure(res.status, String(error.code), error.message, error.details ?? []);
    }
  } catch {
    // not our error body
  }
  return new ApiFailure(res.status, "HTTP_ERROR", `The server answered ${res.status}`);
}

/**
 * Calls the API and returns the parsed JSON answer (null for 204). A 401 refreshes the session
 * once and retries; when that fails the page goes to the login.
 *
 * @example
 * const keys = await api<{ data: Key[] }>("GET", "/api/v1/webhook-keys");
 */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const send = () =>
    fetch(path, {
      method,
      credentials: "same-origin",
      headers: {
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        ...(method === "GET" ? {} : { "X-CSRF-Token": csrfToken() }),
        Accept: "application/json",
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  let res: Response;
  try {
    res = await send();
    if (res.status === 401 && await refreshSession()) res = await send();
  } catch {
    throw new ApiFailure(0, "NETWORK", "Cannot reach the server: check your connection");
  }
  if (res.status === 401) {
    toLogin();
    throw await readFailure(res);
  }
  if (!res.ok) throw await readFailure(res);
  if (res.status === 204) return null as T;
  return await res.json() as T;
}
