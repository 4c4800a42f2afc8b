/**
 * `GET /api/v1/ws`: the dashboard's live updates over one WebSocket (served by the hub actor,
 * actors/hub.ts). Not in the OpenAPI document, which cannot describe a WebSocket; this is its
 * reference.
 *
 * **Authentication**, checked before the upgrade (a failure is the standard error body, 401):
 *
 * - a token as a subprotocol: `Sec-WebSocket-Protocol: trendedge.v1, bearer.<access token>`
 *   (`new WebSocket(url, ["trendedge.v1", "bearer." + token])`); the server answers with
 *   `trendedge.v1` only, never echoing the token. Our access token or the identity provider's;
 * - or the dashboard's `te_access` cookie, accepted only when the `Origin` header (which browsers
 *   always send on a WebSocket) is ours or one of CORS_ORIGINS: a page elsewhere cannot borrow
 *   the trader's session.
 *
 * A token in the URL is never read (URLs end up in logs and histories). Other refusals: 400
 * without `Upgrade: websocket` or with subprotocols that leave out `trendedge.v1`, 429
 * (RATE_LIMITED) when the user already holds 10 connections, 503 while the hub is down.
 *
 * **Server messages** (JSON text):
 *
 * - an event: `{"id","channel","type","at","account_id"?,"signal_id"?,"order_id"?,"data"}`, e.g.
 *   `{"id":"mf3k2a1b0c9d8-42","channel":"trades","type":"trade.updated",…}`. `channel` is
 *   `signals` (signal.*), `trades` (trade.*), `trendlines` (trendline.*) or `system` (breaker.*,
 *   webhook_key.*). Ids increase; only the user's own events are sent, admins included;
 * - `{"type":"hello","channels":[…],"heartbeat_ms":30000,"last_id"}` first; `last_id` is where
 *   to resume from should the connection drop before any event arrives;
 * - `{"type":"ping"}` every `heartbeat_ms`: answer `{"type":"pong"}` (any message will do);
 * - `{"type":"subscribed","channels":[…]}`, `{"type":"pong"}`, `{"type":"error","message"}`;
 * - `{"type":"resumed","after","count"}` after the missed events of a resume, or
 *   `{"type":"resync","reason"}` when they are no longer known (the server restarted, the client
 *   was away too long): reload the state through the REST API.
 *
 * **Client messages**: `{"type":"subscribe","channels":["trades",…]}` (all channels by default),
 * `{"type":"resume","after":"<last event id seen>"}`, `{"type":"pong"}`, `{"type":"ping"}`.
 * The resume can instead go with the upgrade as `?resume=<id>` (an event id is no secret); that
 * way no live event can come before the missed ones. Messages over 4 KiB close the connection.
 *
 * **Close codes**: 1001 server stopping, 1009 message too big, 1013 try again, 4008 too slow to
 * keep up (its unsent events passed 1 MiB), 4401 token expired or session ended (checked every
 * 15 minutes and at the token's expiry: log in or refresh, then reconnect), 4408 no answer to
 * the heartbeat for two intervals. After any of them a client may reconnect and resume.
 */
import { Hono } from "hono";
import { getCookie } from "hono/cookie";
import { decodeJwt } from "jose";
import { ActorStoppedError, AskTimeoutError } from "../actors/actor.ts";
import { attachSocket, type Reservation } from "../actors/hub.ts";
import { ApiError, ServiceUnavailableError } from "../lib/errors.ts";
import { ACCESS_COOKIE, authenticateToken, isAllowedOrigin, type TokenAuthDeps } from "./_auth.ts";
import type { AppEnv } from "./_env.ts";
import { clientIp } from "./_middleware.ts";

/** The path of the WebSocket. */
export const WS_PATH = "/api/v1/ws";
/** The subprotocol of this API, the one the server answers with. */
export const WS_PROTOCOL = "trendedge.v1";
/** The prefix of the subprotocol that carries the token. */
export const BEARER_PROTOCOL_PREFIX = "bearer.";

const EVENT_ID = /^[a-z0-9]{1,40}-\d{1,15}$/;

/** The WebSocket route; mount with `app.route("/", ws)`. */
export const ws = new Hono<AppEnv>();

ws.get(WS_PATH, async (c) => {
  const deps = c.get("deps");
  const offered = (c.req.header("sec-websocket-protocol") ?? "").split(",")
    .map((p) => p.trim()).filter(Boolean);
  if (offered.length > 0 && !offered.includes(WS_PROTOCOL)) {
    throw new ApiError(
      "VALIDATION_ERROR",
      `Cannot open a WebSocket: the subprotocols must include "${WS_PROTOCOL}"`,
    );
  }
  const bearers = offered.filter((p) => p.startsWith(BEARER_PROTOCOL_PREFIX));
  let token: string | undefined;
  let via: "bearer" | "cookie" = "bearer";
  if (bearers.length > 1) {
    throw new ApiError("VALIDATION_ERROR", "Cannot open a WebSocket: send one bearer token");
  } else if (bearers.length === 1) {
    token = bearers[0]!.slice(BEARER_PROTOCOL_PREFIX.length);
  } else {
    token = getCookie(c, ACCESS_COOKIE);
    via = "cookie";
    const origin = c.req.header("origin");
    if (token && origin !== undefined && !isAllowedOrigin(c, origin)) {
      // Browsers send the cookie along whatever page opens the socket.
      throw unauthenticated(
        `Cannot open a WebSocket: the session cookie is not accepted from origin "${origin}"`,
      );
    }
  }
  if (!token) {
    throw unauthenticated(
      `Cannot open a WebSocket: send the access token as the subprotocol "${BEARER_PROTOCOL_PREFIX}<token>" next to "${WS_PROTOCOL}", or the session cookie`,
    );
  }
  const user = await authenticateToken(deps, token, {
    via,
    origin: {
      ip: clientIp(c),
      userAgent: c.req.header("user-agent"),
      requestId: c.get("requestId"),
    },
  });
  c.set("userId", user.userId);
  c.set("role", user.role);
  c.set("authVia", via);

  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new ApiError("VALIDATION_ERROR", "Cannot open a WebSocket: send Upgrade: websocket", {
      headers: { Upgrade: "websocket" },
    });
  }
  const resumeAfter = c.req.query("resume");
  if (resumeAfter !== undefined && !EVENT_ID.test(resumeAfter)) {
    throw new ApiError("VALIDATION_ERROR", "Cannot open a WebSocket: resume is not an event id", {
      details: [{ field: "resume", message: "an event id such as mf3k2a1b0c9d8-42" }],
    });
  }
  const hub = deps.hub;
  if (!hub) throw new ServiceUnavailableError("Cannot open a WebSocket: live updates are off");
  let reservation: Reservation;
  try {
    reservation = await hub.ask<Reservation>(
      (reply) => ({ type: "reserve", userId: user.userId, reply }),
      { timeoutMs: 2_000 },
    );
  } catch (error) {
    if (!(error instanceof AskTimeoutError || error instanceof ActorStoppedError)) throw error;
    throw new ServiceUnavailableError("Cannot open a WebSocket: live updates are unavailable", {
      headers: { "Retry-After": "5" },
      cause: error,
    });
  }
  if (!reservation.ok) {
    throw new ApiError(
      "RATE_LIMITED",
      `Cannot open a WebSocket: at most ${reservation.limit} connections per user; close one first`,
    );
  }
  let upgraded;
  try {
    upgraded = Deno.upgradeWebSocket(
      c.req.raw,
      offered.length > 0 ? { protocol: WS_PROTOCOL } : {},
    );
  } catch (error) {
    hub.tell({ type: "release", connId: reservation.connId }).catch(() => {});
    throw new ApiError(
      "VALIDATION_ERROR",
      `Cannot open a WebSocket: ${(error as Error).message}`,
      { cause: error },
    );
  }
  attachSocket(hub, upgraded.socket, {
    connId: reservation.connId,
    client: { userId: user.userId, token, via, expiresAt: expiresAt(token) },
    resumeAfter,
  });
  return upgraded.response;
});

/**
 * The check the hub runs on an open connection's token every few minutes: the user id, null
 * when the token or its session is no longer good; throws when it cannot tell.
 */
export function hubAuthenticator(
  deps: TokenAuthDeps,
): (token: string, via: "bearer" | "cookie") => Promise<string | null> {
  return async (token, via) => {
    try {
      return (await authenticateToken(deps, token, { via })).userId;
    } catch (error) {
      if (error instanceof ApiError && error.code === "AUTHENTICATION_REQUIRED") return null;
      throw error;
    }
  };
}

function unauthenticated(message: string): ApiError {
  return new ApiError("AUTHENTICATION_REQUIRED", message, {
    headers: { "WWW-Authenticate": 'Bearer realm="trendedge"' },
  });
}

/** Epoch ms of the token's `exp` (already verified), when it has one. */
function expiresAt(token: string): number | undefined {
  try {
    const { exp } = decodeJwt(token);
    return typeof exp === "number" ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
