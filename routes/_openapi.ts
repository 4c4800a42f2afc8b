/** Shared pieces of the OpenAPI description: the error schema and the validation hook. */
import { z } from "@hono/zod-openapi";
import { ApiError } from "../lib/errors.ts";
import { zodDetails } from "./_errors.ts";
import type { ZodError } from "zod";
import { requireUser } from "./_auth.ts";

/** The standard error body, as documented. */
export const ErrorSchema = z.object({
  error: z.object({
    code: z.string().openapi({ example: "VALIDATION_ERROR" }),
    message: z.string(),
    details: z.array(z.object({ field: z.string().optional(), message: z.string() })),
    request_id: z.string(),
    timestamp: z.string(),
  }),
}).openapi("Error");

/**
 * Route validation failures become VALIDATION_ERROR with a detail per bad field, rendered by
 * the one error handler.
 */
export function validationHook(result: { success: boolean; error?: unknown; target?: string }) {
  if (!result.success) {
    throw new ApiError(
      "VALIDATION_ERROR",
      `Cannot accept the request: invalid ${result.target ?? "input"}`,
      {
        details: zodDetails(result.error as ZodError),
      },
    );
  }
}

/** A JSON response of the OpenAPI description. */
export function json<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

/** A required JSON request body of the OpenAPI description. */
export function jsonBody<T extends z.ZodType>(schema: T) {
  return { body: { required: true, content: { "application/json": { schema } } } };
}

/** The errors every authenticated route can answer. */
export const ERRORS = {
  400: json(ErrorSchema, "Invalid request"),
  401: json(ErrorSchema, "Missing or invalid access token"),
};

/** A 404, which is also the answer for another user's resource (no enumeration). */
export const NOT_FOUND = { 404: json(ErrorSchema, "Not found (or not yours)") };

/** Route settings for an authenticated route: the middleware and its documented scheme. */
export const SECURED = {
  middleware: [requireUser],
  security: [{ Bearer: [] }],
};

/** The `{id}` path parameter of a resource route. */
export const IdParam = z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) });

/** A broker account alias, as a query or body field. */
export const Alias = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,39}$/, "Must be an account alias");
