/** Small helpers the form islands share. */
import { ApiFailure } from "./api.ts";

/** A failure as one line for the page: the server's message, or a generic one. */
export function messageOf(error: unknown): string {
  if (error instanceof ApiFailure) return error.message;
  return error instanceof Error ? error.message : String(error);
}

/** The value of a named field of a submitted form. */
export function field(form: HTMLFormElement, name: string): string {
  const value = new FormData(form).get(name);
  return typeof value === "string" ? value : "";
}
