/**
 * The error codes of the API and the errors that carry them. Every failure that reaches a
 * client is rendered from one of these by the one error handler in `routes/_errors.ts`.
 */

/** Error codes with their HTTP status, as in the product requirements. */
export const ERROR_STATUS = {
  VALIDATION_ERROR: 400,
  AUTHENTICATION_REQUIRED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNPROCESSABLE_ENTITY: 422,
  RATE_LIMITED: 429,
  INTERNAL_ERROR: 500,
  BROKER_ERROR: 502,
  SERVICE_UNAVAILABLE: 503,
} as const;

/** A code of the standard error body. */
export type ErrorCode = keyof typeof ERROR_STATUS;

/** One entry of the error body's `details`: which field, and what is wrong with it. */
export interface ErrorDetail {
  field?: string;
  message: string;
}

/** Options of {@linkcode ApiError}. */
export interface ApiErrorOptions {
  details?: ErrorDetail[];
  /** Response headers to set with the error (e.g. `Retry-After`, `Allow`). */
  headers?: Record<string, string>;
  cause?: unknown;
}

/** An error whose code, message and details are meant for the client. */
export class ApiError extends Error {
  override name = "ApiError";
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: ErrorDetail[];
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, message: string, options: ApiErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.details = options.details ?? [];
    this.headers = options.headers ?? {};
  }
}

/** A dependency (database, KV, broker) cannot be reached; the client may try again later. */
export class ServiceUnavailableError extends ApiError {
  override name = "ServiceUnavailableError";
  constructor(message: string, options: ApiErrorOptions = {}) {
    super("SERVICE_UNAVAILABLE", message, options);
  }
}
