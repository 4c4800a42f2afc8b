/** Shared pieces of the OpenAPI description: the error schema and the validation hook. */
import { z } from "@hono/zod-openapi";
import { ApiError } from "../lib/errors.ts";
import { zodDetails } from "./_errors.ts";
import type { ZodError } from "zod";

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
