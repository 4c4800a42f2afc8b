/**
 * The one place that turns failures into responses. Every error body has the same shape:
 * `{"error":{"code","message","details","request_id","timestamp"}}`; 5xx bodies never carry
 * internals (stack, SQL, paths), which go to the log instead.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ZodError } from "zod";
import { isDbUnavailable } from "../db/client.ts";
import { ApiError, type ErrorCode, type ErrorDetail } from "../lib/errors.ts";
import { serializeError } from "../lib/log.ts";
import type { AppEnv } from "./_env.ts";

/** The standard error body. */
export interface ErrorBody {
  error: {
    code: ErrorCode;
    message: string;
    details: ErrorDetail[];
    request_id: string;
    timestamp: string;
  };
}

const CODE_BY_STATUS: Record<number, ErrorCode> = {
  400: "VALIDATION_ERROR",
  401: "AUTHENTICATION_REQUIRED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  405: "METHOD_NOT_ALLOWED",
  409: "CONFLICT",
  413: "PAYLOAD_TOO_LARGE",
  415: "UNSUPPORTED_MEDIA_TYPE",
  422: "UNPROCESSABLE_ENTITY",
  429: "RATE_LIMITED",
  502: "BROKER_ERROR",
  503: "SERVICE_UNAVAILABLE",
};

/** Turns zod issues into error details that name each bad field. */
export function zodDetails(error: ZodError): ErrorDetail[] {
  return error.issues.map((issue) => ({
    field: issue.path.length > 0 ? issue.path.join(".") : undefined,
    message: issue.message,
  }));
}

/** Maps any thrown value to an {@linkcode ApiError}; unknown errors become INTERNAL_ERROR. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof ZodError) {
    return new ApiError("VALIDATION_ERROR", "Cannot accept the request: validation failed", {
      details: zodDetails(error),
    });
  }
  if (isDbUnavailable(error)) {
    return new ApiError("SERVICE_UNAVAILABLE", "Cannot reach the database; try again shortly", {
      headers: { "Retry-After": "5" },
      cause: error,
    });
  }
  if (error instanceof HTTPException) {
    const code = CODE_BY_STATUS[error.status] ??
      (error.status >= 500 ? "INTERNAL_ERROR" : "VALIDATION_ERROR");
    // A 4xx HTTPException's message is ours (Hono's helpers); a 5xx one may not be safe to show.
    const message = error.status < 500 && error.message ? error.message : "Internal server error";
    return new ApiError(code, message, { cause: error });
  }
  return new ApiError("INTERNAL_ERROR", "Internal server error", { cause: error });
}

/** Renders the standard error body for `error`, logging it when it is the server's fault. */
export function renderError(c: Context<AppEnv>, error: unknown): Response {
  const apiError = toApiError(error);
  const requestId = c.get("requestId") ?? "";
  if (apiError.status >= 500) {
    c.get("deps")?.log.error("Request failed", {
      request_id: requestId,
      method: c.req.method,
      path: c.req.path,
      code: apiError.code,
      error: serializeError(apiError.cause ?? apiError),
    });
  }
  const body: ErrorBody = {
    error: {
      code: apiError.code,
      message: apiError.message,
      details: apiError.details,
      request_id: requestId,
      timestamp: new Date(c.get("deps")?.clock.now() ?? Date.now()).toISOString(),
    },
  };
  for (const [name, value] of Object.entries(apiError.headers)) c.header(name, value);
  return c.json(body, apiError.status as ContentfulStatusCode);
}
