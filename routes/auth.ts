/** `POST /api/v1/auth/login`: email and password in, an access token out. */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { findUserByEmail } from "../db/users.ts";
import { ApiError } from "../lib/errors.ts";
import { ACCESS_TOKEN_TTL_S, signAccessToken } from "../lib/jwt.ts";
import { MAX_PASSWORD_LENGTH, PBKDF2_ITERATIONS, verifyPassword } from "../lib/password.ts";
import type { AuthEnv } from "./_auth.ts";
import { ErrorSchema, validationHook } from "./_openapi.ts";

// Verified when the email is unknown, so that case costs the same as a wrong password.
const DUMMY_HASH = `pbkdf2_sha256$${PBKDF2_ITERATIONS}$c2FsdHNhbHRzYWx0c2FsdA==$` +
  "ZHVtbXlkdW1teWR1bW15ZHVtbXlkdW1teWR1bW15ZHU=";

const WRONG_CREDENTIALS = "Cannot log in: the email or password is wrong";

const LoginBody = z.object({
  email: z.string().trim().min(3).max(254).openapi({ example: "trader@example.com" }),
  password: z.string().min(1).max(MAX_PASSWORD_LENGTH * 2),
}).openapi("LoginRequest");

const TokenResponse = z.object({
  access_token: z.string(),
  token_type: z.literal("Bearer"),
  expires_in: z.number().int().openapi({ example: ACCESS_TOKEN_TTL_S }),
}).openapi("AccessToken");

/** The login route; mount with `app.route("/", auth)`. */
export const auth = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });

auth.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/auth/login",
    tags: ["auth"],
    summary: "Log in with email and password",
    request: {
      body: { required: true, content: { "application/json": { schema: LoginBody } } },
    },
    responses: {
      200: {
        description: "An access token",
        content: { "application/json": { schema: TokenResponse } },
      },
      400: {
        description: "Invalid body",
        content: { "application/json": { schema: ErrorSchema } },
      },
      401: {
        description: "Wrong email or password",
        content: { "application/json": { schema: ErrorSchema } },
      },
    },
  }),
  async (c) => {
    const { email, password } = c.req.valid("json");
    const { db, config, clock, log } = c.get("deps");
    const user = await findUserByEmail(db, email);
    const ok = await verifyPassword(password, user?.passwordHash ?? DUMMY_HASH);
    if (!user || !ok) {
      log.info("Login refused", { request_id: c.get("requestId") });
      throw new ApiError("AUTHENTICATION_REQUIRED", WRONG_CREDENTIALS);
    }
    c.set("userId", user.id);
    const token = await signAccessToken({ userId: user.id, role: user.role }, {
      secret: config.jwtSecret,
      now: clock.now(),
      ttlS: ACCESS_TOKEN_TTL_S,
    });
    c.header("Cache-Control", "no-store");
    return c.json(
      { access_token: token, token_type: "Bearer" as const, expires_in: ACCESS_TOKEN_TTL_S },
      200,
    );
  },
);
