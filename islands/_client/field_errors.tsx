/**
 * Server validation errors next to the fields they name: the standard error body's `details`
 * carry a `field` path (`risk.max_order_quantity`, `credentials.secret_key`), which the settings
 * forms use as their input names.
 */
import { ApiFailure } from "./api.ts";
import { messageOf } from "./form.ts";

/** Field path → message; the messages without a field under "". */
export type FieldErrors = Record<string, string>;

/** The failure's details by field (several messages for one field joined). */
export function fieldErrorsOf(failure: unknown): FieldErrors {
  const out: FieldErrors = {};
  if (!(failure instanceof ApiFailure)) return out;
  for (const detail of failure.details) {
    const key = detail.field ?? "";
    out[key] = out[key] ? `${out[key]}; ${detail.message}` : detail.message;
  }
  return out;
}

/** The messages for `field` and anything below it (`risk.trading_session` covers `.start`). */
export function errorFor(errors: FieldErrors, field: string): string {
  return Object.entries(errors)
    .filter(([key]) => key === field || key.startsWith(`${field}.`))
    .map(([, message]) => message)
    .join("; ");
}

/** The inline message under a field, linked to it by `id` for aria-describedby. */
export function FieldError({ id, message }: { id: string; message: string }) {
  return message ? <span class="field-error" id={id}>{message}</span> : null;
}

/** The failure as one line for the alert: the server's message, then what each field lacks. */
export function alertOf(failure: unknown): string {
  const message = messageOf(failure);
  if (!(failure instanceof ApiFailure) || failure.details.length === 0) return message;
  const details = failure.details.map((d) => d.field ? `${d.field}: ${d.message}` : d.message);
  return `${message}: ${details.join("; ")}`;
}
