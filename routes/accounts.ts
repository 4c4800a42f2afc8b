/**
 * Broker account management for an authenticated trader: list, read, create, change and delete
 * their accounts. Alpaca credentials are write-only: sealed with the keyring on the way in
 * (lib/credentials.ts), never returned (`has_credentials` says whether there are some), never
 * logged. Every change is one transaction with its audit entry, which names the changed fields,
 * never their values; a committed change restarts the account's executor so it trades with the
 * new settings. Everything is scoped by the caller: another user's account is 404.
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { PaperSettingsSchema } from "../brokers/paper.ts";
import {
  AccountAliasTakenError,
  type AccountChanges,
  AccountInUseError,
  type AccountRow,
  createAccount,
  deleteAccount,
  getAccountByAlias,
  listAccounts,
  updateAccount,
} from "../db/accounts.ts";
import { sealCredentials } from "../lib/credentials.ts";
import { ApiError, type ErrorDetail } from "../lib/errors.ts";
import { uuidv7 } from "../lib/ids.ts";
import { serializeError } from "../lib/log.ts";
import { RiskLimitsSchema } from "../lib/risk.ts";
import { auditActor } from "./_audit.ts";
import { type AuthEnv, authUser } from "./_auth.ts";
import type { AppEnv } from "./_env.ts";
import {
  ERRORS,
  ErrorSchema,
  json,
  jsonBody,
  NOT_FOUND,
  SECURED,
  validationHook,
} from "./_openapi.ts";

// ---- schemas ----------------------------------------------------------------------------

const ALIAS = /^[a-z0-9][a-z0-9_-]{0,39}$/;
const ALIAS_RULE =
  "Must be 1 to 40 characters: lowercase letters, digits, _ or -, starting with a letter or digit";
const MAX_SYMBOLS = 500;

const Alias = z.string().regex(ALIAS, ALIAS_RULE).openapi({ example: "alpaca-paper" });

const AliasParam = z.object({
  alias: z.string().regex(ALIAS, ALIAS_RULE).openapi({
    param: { name: "alias", in: "path" },
    example: "alpaca-paper",
  }),
});

// Key pairs are opaque tokens: any non-blank characters, within generous bounds. The messages
// never quote the value.
const Credentials = z.strictObject({
  key_id: z.string().regex(/^\S{1,128}$/, "Must be an API key id: 1 to 128 non-blank characters"),
  secret_key: z.string().regex(
    /^\S{1,256}$/,
    "Must be an API secret key: 1 to 256 non-blank characters",
  ),
}).openapi("BrokerCredentials", {
  description: "Alpaca API key pair. Write-only: stored encrypted, never returned or logged",
});

/** Validates with a lib schema but keeps the object as sent (no defaults filled in). */
function checkedRecord(schema: z.ZodType, description: string, example: Record<string, unknown>) {
  return z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
    const parsed = schema.safeParse(value);
    if (parsed.success) return;
    for (const issue of parsed.error.issues) {
      ctx.addIssue({ code: "custom", message: issue.message, path: issue.path });
    }
  }).openapi({ description, example });
}

const Risk = checkedRecord(
  RiskLimitsSchema,
  "Risk limits, all optional: max_order_quantity, max_position, max_daily_loss, " +
    "allowed_symbols, trading_session, max_signal_age_seconds (default 60). Unknown keys are " +
    "refused; {} removes every limit",
  { max_order_quantity: 10, max_daily_loss: 500, allowed_symbols: ["AAPL", "MNQ"] },
);

const PaperSettings = checkedRecord(
  PaperSettingsSchema,
  "Paper broker settings: slippage_bps, fee_per_unit, fee_bps, starting_cash",
  { slippage_bps: 2, fee_per_unit: 0.005 },
);

const SymbolMap = z.record(z.string().min(1).max(64), z.string().min(1).max(64)).refine(
  (map) => Object.keys(map).length <= MAX_SYMBOLS,
  `Must map at most ${MAX_SYMBOLS} symbols`,
).openapi({
  description: "Ticker → broker symbol overrides, tried before the built-in mapping",
  example: { "NQ1!": "MNQZ6", BTCUSD: "BTC/USD" },
});

const CreateBody = z.strictObject({
  alias: Alias,
  broker: z.enum(["alpaca", "paper"]),
  live: z.boolean().default(false).openapi({
    description: "Trade real money (Alpaca live). Only ever true when sent as true",
  }),
  credentials: Credentials.optional().openapi({ description: "Required for alpaca" }),
  risk: Risk.optional(),
  symbol_map: SymbolMap.optional(),
  micro_futures: z.boolean().optional(),
  paper: PaperSettings.optional().openapi({ description: "Paper broker only" }),
}).superRefine((body, ctx) => {
  if (body.broker === "alpaca" && body.credentials === undefined) {
    ctx.addIssue({ code: "custom", path: ["credentials"], message: "Required for alpaca" });
  }
  for (const problem of brokerProblems(body.broker, body)) {
    ctx.addIssue({ code: "custom", path: [problem.field!], message: problem.message });
  }
}).openapi("CreateAccountRequest");

const UpdateBody = z.strictObject({
  live: z.boolean().optional().openapi({
    description: "Switch between paper and live trading; needs the other account's credentials",
  }),
  credentials: Credentials.optional(),
  risk: Risk.optional(),
  symbol_map: SymbolMap.optional(),
  micro_futures: z.boolean().optional(),
  paper: PaperSettings.optional(),
}).openapi("UpdateAccountRequest");

const Account = z.object({
  alias: z.string(),
  broker: z.enum(["paper", "alpaca"]),
  live: z.boolean(),
  kill_switch: z.boolean(),
  breaker: z.enum(["closed", "open", "half_open"]).openapi({
    description: "Circuit breaker: open after 3 broker failures within 5 minutes, for 10 minutes",
  }),
  has_credentials: z.boolean().openapi({
    description: "Whether API credentials are stored; they are never returned",
  }),
  symbol_map: z.record(z.string(), z.string()),
  micro_futures: z.boolean(),
  risk: z.record(z.string(), z.unknown()),
  paper: z.record(z.string(), z.unknown()),
  created_at: z.string(),
}).openapi("Account");

const CONFLICT = { 409: json(ErrorSchema, "Conflict") };

// ---- routes -----------------------------------------------------------------------------

/** The broker account routes; mount with `app.route("/", accounts)`. */
export const accounts = new OpenAPIHono<AuthEnv>({ defaultHook: validationHook });

accounts.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/accounts",
    tags: ["accounts"],
    summary: "The caller's broker accounts with their kill switch and circuit breaker",
    ...SECURED,
    responses: {
      200: json(z.object({ data: z.array(Account) }).openapi("Accounts"), "Accounts"),
      ...ERRORS,
    },
  }),
  async (c) => {
    const rows = await listAccounts(c.get("deps").db, authUser(c).userId);
    return c.json({ data: await Promise.all(rows.map((a) => accountBody(c, a))) }, 200);
  },
);

accounts.openapi(
  createRoute({
    method: "get",
    path: "/api/v1/accounts/{alias}",
    tags: ["accounts"],
    summary: "One of the caller's broker accounts",
    ...SECURED,
    request: { params: AliasParam },
    responses: { 200: json(Account, "The account"), ...ERRORS, ...NOT_FOUND },
  }),
  async (c) => {
    const { alias } = c.req.valid("param");
    const row = await getAccountByAlias(c.get("deps").db, authUser(c).userId, alias);
    if (!row) throw notFound(alias);
    return c.json(await accountBody(c, row), 200);
  },
);

accounts.openapi(
  createRoute({
    method: "post",
    path: "/api/v1/accounts",
    tags: ["accounts"],
    summary: "Add a broker account (Alpaca with its API keys, or another paper account)",
    ...SECURED,
    request: jsonBody(CreateBody),
    responses: {
      201: json(Account, "The account, without its credentials"),
      ...ERRORS,
      ...CONFLICT,
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const { userId } = authUser(c);
    const deps = c.get("deps");
    const credentials = body.credentials
      ? await sealCredentials(deps.keyring, {
        keyId: body.credentials.key_id,
        secretKey: body.credentials.secret_key,
      })
      : null;
    let row: AccountRow;
    try {
      row = await createAccount(deps.db, {
        id: uuidv7(deps.clock.now()),
        userId,
        alias: body.alias,
        broker: body.broker,
        live: body.live,
        credentials,
        symbolMap: body.symbol_map ?? {},
        microFutures: body.micro_futures ?? false,
        risk: body.risk ?? {},
        paper: body.paper ?? {},
      }, auditActor(c));
    } catch (error) {
      if (error instanceof AccountAliasTakenError) throw new ApiError("CONFLICT", error.message);
      throw error;
    }
    deps.log[row.live ? "warning" : "info"]("Broker account created", {
      request_id: c.get("requestId"),
      user_id: userId,
      account_id: row.id,
      alias: row.alias,
      broker: row.broker,
      live: row.live,
    });
    c.header("Location", `/api/v1/accounts/${row.alias}`);
    return c.json(await accountBody(c, row), 201);
  },
);

accounts.openapi(
  createRoute({
    method: "patch",
    path: "/api/v1/accounts/{alias}",
    tags: ["accounts"],
    summary: "Change an account's credentials, risk limits, symbols, paper settings or live flag",
    ...SECURED,
    request: { params: AliasParam, ...jsonBody(UpdateBody) },
    responses: {
      200: json(Account, "The account after the change"),
      ...ERRORS,
      ...NOT_FOUND,
    },
  }),
  async (c) => {
    const { alias } = c.req.valid("param");
    const body = c.req.valid("json");
    const { userId } = authUser(c);
    const deps = c.get("deps");
    if (Object.keys(body).length === 0) {
      throw new ApiError("VALIDATION_ERROR", `Cannot update account "${alias}": nothing to change`);
    }
    const current = await getAccountByAlias(deps.db, userId, alias);
    if (!current) throw notFound(alias);
    const problems = brokerProblems(current.broker, body);
    if (current.broker === "alpaca" && body.live !== undefined && body.live !== current.live) {
      if (!body.credentials) {
        problems.push({
          field: "credentials",
          message: `Must be sent with "live": Alpaca's ${
            body.live ? "live" : "paper"
          } account has its own API keys`,
        });
      }
    }
    if (problems.length > 0) {
      throw new ApiError("VALIDATION_ERROR", `Cannot update account "${alias}": invalid body`, {
        details: problems,
      });
    }
    const changes: AccountChanges = {
      live: body.live,
      credentials: body.credentials
        ? await sealCredentials(deps.keyring, {
          keyId: body.credentials.key_id,
          secretKey: body.credentials.secret_key,
        })
        : undefined,
      symbolMap: body.symbol_map,
      microFutures: body.micro_futures,
      risk: body.risk,
      paper: body.paper,
    };
    const row = await updateAccount(deps.db, userId, alias, changes, auditActor(c));
    if (!row) throw notFound(alias);
    await restartExecutor(c, row.id);
    const wentLive = body.live === true && !current.live;
    deps.log[wentLive ? "warning" : "info"](
      wentLive ? "Broker account switched to live trading" : "Broker account updated",
      {
        request_id: c.get("requestId"),
        user_id: userId,
        account_id: row.id,
        alias,
        fields: Object.keys(body),
        live: row.live,
      },
    );
    return c.json(await accountBody(c, row), 200);
  },
);

accounts.openapi(
  createRoute({
    method: "delete",
    path: "/api/v1/accounts/{alias}",
    tags: ["accounts"],
    summary: "Delete an account that never traded (otherwise turn its kill switch on)",
    ...SECURED,
    request: { params: AliasParam },
    responses: {
      204: { description: "Deleted" },
      ...ERRORS,
      ...NOT_FOUND,
      409: json(
        ErrorSchema,
        "The account is `paper`, has orders or an open position: use the kill switch instead",
      ),
    },
  }),
  async (c) => {
    const { alias } = c.req.valid("param");
    const { userId } = authUser(c);
    const deps = c.get("deps");
    let id: string | null;
    try {
      id = await deleteAccount(deps.db, userId, alias, auditActor(c));
    } catch (error) {
      if (error instanceof AccountInUseError) throw new ApiError("CONFLICT", error.message);
      throw error;
    }
    if (!id) throw notFound(alias);
    await restartExecutor(c, id);
    deps.log.info("Broker account deleted", {
      request_id: c.get("requestId"),
      user_id: userId,
      account_id: id,
      alias,
    });
    return c.body(null, 204);
  },
);

// ---- helpers ----------------------------------------------------------------------------

/** What an account body may not hold for its broker, as error details. */
function brokerProblems(
  broker: "paper" | "alpaca",
  body: { live?: boolean; credentials?: unknown; paper?: unknown },
): ErrorDetail[] {
  const problems: ErrorDetail[] = [];
  if (broker === "alpaca" && body.paper !== undefined) {
    problems.push({ field: "paper", message: "Must be left out: it is for the paper broker" });
  }
  if (broker === "paper") {
    if (body.credentials !== undefined) {
      problems.push({
        field: "credentials",
        message: "Must be left out: the paper broker takes none",
      });
    }
    if (body.live === true) {
      problems.push({ field: "live", message: "Must be false: the paper broker is never live" });
    }
  }
  return problems;
}

/** Asks the account's executor to restart with the committed change; a failure is only logged. */
async function restartExecutor(c: Context<AppEnv>, accountId: string): Promise<void> {
  const deps = c.get("deps");
  try {
    await deps.accountChanged?.(accountId);
  } catch (error) {
    deps.log.error("Cannot restart the executor of a changed account", {
      request_id: c.get("requestId"),
      account_id: accountId,
      error: serializeError(error),
    });
  }
}

function notFound(alias: string): ApiError {
  return new ApiError("NOT_FOUND", `Cannot find account "${alias}"`);
}

async function accountBody(c: Context<AppEnv>, a: AccountRow) {
  return {
    alias: a.alias,
    broker: a.broker,
    live: a.live,
    kill_switch: a.killSwitch,
    breaker: await c.get("deps").breakerState(a.id),
    has_credentials: a.hasCredentials,
    symbol_map: a.symbolMap,
    micro_futures: a.microFutures,
    risk: a.risk,
    paper: a.paper,
    created_at: a.createdAt.toISOString(),
  };
}
