/**
 * The one place that reads the environment. Every variable is validated by one zod schema at
 * boot; a bad configuration stops start-up with one message naming every bad variable.
 */
import { z } from "zod";
import denoJson from "./deno.json" with { type: "json" };
import { LOG_LEVELS, type LogLevel } from "./lib/log.ts";
import { validateDiscordWebhookUrl } from "./lib/notify.ts";

/** The deployment environments. */
export const APP_ENVS = ["development", "test", "staging", "production"] as const;
/** A deployment environment. */
export type AppEnv = typeof APP_ENVS[number];

/** The version of this build, from deno.json. */
export const VERSION: string = denoJson.version;

// Development defaults: fine on a laptop, refused in production.
/** Alpaca's market data API, the default of ALPACA_DATA_URL. */
export const ALPACA_DATA_URL = "https://data.alpaca.markets";

const DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0000000000000000";
const DEV_ENCRYPTION_KEY = "ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM="; // "dev-only-encryption-key-32-bytes"
const DEV_OPERATOR_API_KEY = "dev-only-operator-key";
const DEV_CORS_ORIGINS = "http://localhost:3000,http://127.0.0.1:3000";

const OIDC_ALGS = ["HS256", "RS256", "ES256", "PS256", "EdDSA"];

const bool = (name: string) =>
  z.enum(["true", "false", "1", "0", "yes", "no"], {
    error: `"${name}" must be true or false`,
  }).transform((v) => v === "true" || v === "1" || v === "yes");

const int = (name: string, min: number, max: number) =>
  z.string().regex(/^\d+$/, `"${name}" must be an integer between ${min} and ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `"${name}" must be an integer between ${min} and ${max}`);

const url = (name: string, protocols: string[]) =>
  z.string().refine((v) => {
    try {
      return protocols.includes(new URL(v).protocol);
    } catch {
      return false;
    }
  }, `"${name}" must be a ${protocols.map((p) => p.replace(":", "://")).join(" or ")} URL`);

/** An https:// URL, or http:// on this machine (a local stand-in in development and tests). */
const httpsUrl = (name: string) =>
  z.string().refine((v) => {
    try {
      const u = new URL(v);
      return u.protocol === "https:" ||
        (u.protocol === "http:" && ["localhost", "127.0.0.1", "[::1]"].includes(u.hostname));
    } catch {
      return false;
    }
  }, `"${name}" must be an https:// URL (http:// only on localhost)`);

/** The environment variables, as strings, exactly as `.env.example` documents them. */
const EnvSchema = z.object({
  APP_ENV: z.enum(APP_ENVS, { error: `"APP_ENV" must be one of ${APP_ENVS.join(", ")}` })
    .default("development"),
  HOST: z.string().min(1).default("0.0.0.0"),
  PORT: int("PORT", 0, 65535).default(8000),
  PUBLIC_URL: url("PUBLIC_URL", ["http:", "https:"]).optional(),
  LOG_LEVEL: z.string().transform((v) => v.toLowerCase()).pipe(
    z.enum(LOG_LEVELS, { error: `"LOG_LEVEL" must be one of ${LOG_LEVELS.join(", ")}` }),
  ).default("info"),
  DATA_DIR: z.string().min(1).default("./data"),
  DATABASE_URL: url("DATABASE_URL", ["postgres:", "postgresql:"]).optional(),
  DATABASE_POOL_SIZE: int("DATABASE_POOL_SIZE", 1, 200).default(10),
  DATABASE_PREPARE: bool("DATABASE_PREPARE").default(true),
  DATABASE_STATEMENT_TIMEOUT_MS: int("DATABASE_STATEMENT_TIMEOUT_MS", 100, 600_000).default(30_000),
  MIGRATE_ON_START: bool("MIGRATE_ON_START").optional(),
  JWT_SECRET: z.string().min(32, `"JWT_SECRET" must be at least 32 characters`).optional(),
  ENCRYPTION_KEY: z.string().refine(
    (v) => decodeKey(v)?.length === 32,
    `"ENCRYPTION_KEY" must be 32 bytes, base64 (44 characters) or hex (64 characters)`,
  ).optional(),
  OPERATOR_API_KEY: z.string().min(16, `"OPERATOR_API_KEY" must be at least 16 characters`)
    .optional(),
  CORS_ORIGINS: z.string().refine(
    (v) => v.split(",").map((s) => s.trim()).filter(Boolean).every(isOrigin),
    `"CORS_ORIGINS" must be a comma-separated list of origins like https://app.example.com`,
  ).optional(),
  SENTRY_DSN: url("SENTRY_DSN", ["http:", "https:"]).optional(),
  TRUST_PROXY: bool("TRUST_PROXY").default(false),
  RATE_LIMIT_PER_MINUTE: int("RATE_LIMIT_PER_MINUTE", 1, 1_000_000).default(300),
  UPSTASH_REDIS_REST_URL: httpsUrl("UPSTASH_REDIS_REST_URL").optional(),
  UPSTASH_REDIS_REST_TOKEN: z.string().min(1).optional(),
  MAX_BODY_BYTES: int("MAX_BODY_BYTES", 1024, 64 * 1024 * 1024).default(1024 * 1024),
  SHUTDOWN_TIMEOUT_MS: int("SHUTDOWN_TIMEOUT_MS", 100, 120_000).default(10_000),
  DEDUP_WINDOW_SECONDS: int("DEDUP_WINDOW_SECONDS", 1, 86_400).default(60),
  WEBHOOK_RATE_LIMIT_PER_MINUTE: int("WEBHOOK_RATE_LIMIT_PER_MINUTE", 1, 1_000_000).default(30),
  WEBHOOK_ALLOWED_IPS: z.string().refine(
    (v) =>
      v.split(",").map((s) => s.trim()).filter(Boolean).every((s) =>
        s === "tradingview" || isIp(s)
      ),
    `"WEBHOOK_ALLOWED_IPS" must be "tradingview" or a comma-separated list of IP addresses`,
  ).optional(),
  ALPACA_BASE_URL: url("ALPACA_BASE_URL", ["http:", "https:"]).optional(),
  ALPACA_DATA_URL: url("ALPACA_DATA_URL", ["http:", "https:"]).optional(),
  TELEGRAM_API_URL: url("TELEGRAM_API_URL", ["http:", "https:"]).default(
    "https://api.telegram.org",
  ),
  DISCORD_API_URL: url("DISCORD_API_URL", ["http:", "https:"]).optional(),
  OPERATOR_TELEGRAM_BOT_TOKEN: z.string().regex(
    /^\d{1,20}:[A-Za-z0-9_-]{20,100}$/,
    `"OPERATOR_TELEGRAM_BOT_TOKEN" must be a bot token like 123456:ABC-DEF…`,
  ).optional(),
  OPERATOR_TELEGRAM_CHAT_ID: z.string().regex(
    /^-?\d{1,20}$|^@[A-Za-z0-9_]{5,64}$/,
    `"OPERATOR_TELEGRAM_CHAT_ID" must be a numeric chat id or @channelname`,
  ).optional(),
  OPERATOR_DISCORD_WEBHOOK_URL: z.string().refine((v) => {
    try {
      validateDiscordWebhookUrl(v);
      return true;
    } catch {
      return false;
    }
  }, `"OPERATOR_DISCORD_WEBHOOK_URL" must be https://discord.com/api/webhooks/{id}/{token}`)
    .optional(),
  ENCRYPTION_KEY_VERSION: int("ENCRYPTION_KEY_VERSION", 1, 255).default(1),
  ENCRYPTION_KEY_PREVIOUS: z.string().refine(
    (v) => decodeKey(v)?.length === 32,
    `"ENCRYPTION_KEY_PREVIOUS" must be 32 bytes, base64 (44 characters) or hex (64 characters)`,
  ).optional(),
  CLUSTER: bool("CLUSTER").default(false),
  DENO_DEPLOYMENT_ID: z.string().min(1).optional(),
  INSTANCE_ID: z.string().regex(
    /^[A-Za-z0-9._:-]{1,64}$/,
    `"INSTANCE_ID" must be 1 to 64 letters, digits, dots, dashes, colons or underscores`,
  ).optional(),
  AUTH_RATE_LIMIT_PER_MINUTE: int("AUTH_RATE_LIMIT_PER_MINUTE", 1, 1_000_000).default(10),
  WEBHOOK_KEY_EXPIRES_DAYS: int("WEBHOOK_KEY_EXPIRES_DAYS", 1, 3650).default(180),
  OIDC_ISSUER: z.string().min(1).optional(),
  OIDC_AUDIENCE: z.string().min(1).optional(),
  OIDC_JWKS_URL: httpsUrl("OIDC_JWKS_URL").optional(),
  OIDC_SECRET: z.string().min(32, `"OIDC_SECRET" must be at least 32 characters`).optional(),
  OIDC_ALGORITHMS: z.string().refine(
    (v) => v.split(",").map((s) => s.trim()).filter(Boolean).every((a) => OIDC_ALGS.includes(a)),
    `"OIDC_ALGORITHMS" must be a comma-separated list of ${OIDC_ALGS.join(", ")}`,
  ).optional(),
  OIDC_CLOCK_TOLERANCE_S: int("OIDC_CLOCK_TOLERANCE_S", 0, 600).default(30),
  OIDC_AUTO_PROVISION: bool("OIDC_AUTO_PROVISION").default(false),
}).superRefine((e, ctx) => {
  if (e.DENO_DEPLOYMENT_ID && !e.DATABASE_URL) {
    ctx.addIssue({
      code: "custom",
      path: ["DATABASE_URL"],
      message: `"DATABASE_URL" is required on Deno Deploy: the embedded database needs files`,
    });
  }
  if (e.CLUSTER && !e.DATABASE_URL) {
    ctx.addIssue({
      code: "custom",
      path: ["CLUSTER"],
      message: `"CLUSTER" needs "DATABASE_URL": instances share one PostgreSQL`,
    });
  }
  if (e.ENCRYPTION_KEY_PREVIOUS && e.ENCRYPTION_KEY_PREVIOUS === e.ENCRYPTION_KEY) {
    ctx.addIssue({
      code: "custom",
      path: ["ENCRYPTION_KEY_PREVIOUS"],
      message: `"ENCRYPTION_KEY_PREVIOUS" must differ from "ENCRYPTION_KEY"`,
    });
  }
  if (e.ENCRYPTION_KEY_PREVIOUS && e.ENCRYPTION_KEY_VERSION < 2) {
    ctx.addIssue({
      code: "custom",
      path: ["ENCRYPTION_KEY_VERSION"],
      message: `"ENCRYPTION_KEY_VERSION" must be 2 or more when "ENCRYPTION_KEY_PREVIOUS" is set`,
    });
  }
  if (Boolean(e.OPERATOR_TELEGRAM_BOT_TOKEN) !== Boolean(e.OPERATOR_TELEGRAM_CHAT_ID)) {
    ctx.addIssue({
      code: "custom",
      path: [
        e.OPERATOR_TELEGRAM_BOT_TOKEN ? "OPERATOR_TELEGRAM_CHAT_ID" : "OPERATOR_TELEGRAM_BOT_TOKEN",
      ],
      message: '"OPERATOR_TELEGRAM_BOT_TOKEN" and "OPERATOR_TELEGRAM_CHAT_ID" must be set together',
    });
  }
  if (e.UPSTASH_REDIS_REST_URL && !e.UPSTASH_REDIS_REST_TOKEN) {
    ctx.addIssue({
      code: "custom",
      path: ["UPSTASH_REDIS_REST_TOKEN"],
      message: 'is required when "UPSTASH_REDIS_REST_URL" is set',
    });
  }
  if (e.UPSTASH_REDIS_REST_TOKEN && !e.UPSTASH_REDIS_REST_URL) {
    ctx.addIssue({
      code: "custom",
      path: ["UPSTASH_REDIS_REST_URL"],
      message: 'is required when "UPSTASH_REDIS_REST_TOKEN" is set',
    });
  }
  const oidc = [e.OIDC_ISSUER, e.OIDC_AUDIENCE, e.OIDC_JWKS_URL, e.OIDC_SECRET];
  if (oidc.every((v) => v === undefined)) return;
  if (!e.OIDC_ISSUER) {
    ctx.addIssue({
      code: "custom",
      path: ["OIDC_ISSUER"],
      message: "is required when an identity provider is configured",
    });
  }
  if (!e.OIDC_AUDIENCE) {
    ctx.addIssue({
      code: "custom",
      path: ["OIDC_AUDIENCE"],
      message: "is required when an identity provider is configured",
    });
  }
  if (!e.OIDC_JWKS_URL && !e.OIDC_SECRET) {
    ctx.addIssue({
      code: "custom",
      path: ["OIDC_JWKS_URL"],
      message: 'or "OIDC_SECRET" is required when an identity provider is configured',
    });
  }
  const algs = oidcAlgorithms(e.OIDC_ALGORITHMS, e.OIDC_JWKS_URL, e.OIDC_SECRET);
  if (algs.some((a) => a.startsWith("HS")) && !e.OIDC_SECRET) {
    ctx.addIssue({
      code: "custom",
      path: ["OIDC_SECRET"],
      message: "is required for HS256 tokens",
    });
  }
  if (algs.some((a) => !a.startsWith("HS")) && !e.OIDC_JWKS_URL) {
    ctx.addIssue({
      code: "custom",
      path: ["OIDC_JWKS_URL"],
      message: "is required for RS256/ES256 tokens",
    });
  }
});

/** The algorithms accepted from the identity provider: as configured, else by key source. */
function oidcAlgorithms(configured: string | undefined, jwksUrl?: string, secret?: string) {
  if (configured) return configured.split(",").map((s) => s.trim()).filter(Boolean);
  return [...(jwksUrl ? ["RS256", "ES256"] : []), ...(secret ? ["HS256"] : [])];
}

/** The names of every variable the schema reads. */
export const ENV_VARS: readonly string[] = Object.keys(EnvSchema.shape);

/** The validated configuration every module receives. */
export interface Config {
  env: AppEnv;
  version: string;
  host: string;
  port: number;
  publicUrl?: string;
  logLevel: LogLevel;
  dataDir: string;
  database: {
    /** Unset: embedded PGlite under `dataDir`. */
    url?: string;
    poolSize: number;
    prepare: boolean;
    statementTimeoutMs: number;
  };
  migrateOnStart: boolean;
  jwtSecret: string;
  /** 32 raw bytes for AES-256-GCM. */
  encryptionKey: Uint8Array;
  operatorApiKey: string;
  corsOrigins: string[];
  sentryDsn?: string;
  trustProxy: boolean;
  rateLimitPerMinute: number;
  /** Upstash Redis REST endpoint for rate limits shared by every instance; unset: per instance. */
  upstash?: { url: string; token: string };
  maxBodyBytes: number;
  shutdownTimeoutMs: number;
  webhook: {
    dedupWindowMs: number;
    ratePerMinute: number;
    /** Empty: any address may post. */
    allowedIps: string[];
  };
  /** Overrides Alpaca's trading API base URL for every account (staging, tests). */
  alpacaBaseUrl?: string;
  /** Alpaca's market data API base URL (bars:fetch); Alpaca's own unless set. */
  alpacaDataUrl: string;
  notify: {
    /** Telegram's Bot API base URL. */
    telegramApiUrl: string;
    /** Replaces the origin of Discord webhook URLs (staging, tests); unset: discord.com. */
    discordApiUrl?: string;
    /** The operator's channels for operational alerts; secrets in clear, never logged. */
    operator: {
      telegram?: { token: string; chatId: string };
      discord?: { webhookUrl: string };
    };
  };
  /** Version byte of `encryptionKey`; `encryptionKeyPrevious` is version − 1, during a rotation. */
  encryptionKeyVersion: number;
  encryptionKeyPrevious?: Uint8Array;
  /**
   * Several instances on one PostgreSQL: executors owned through leases, the PostgreSQL queue,
   * events and dispatches shared over LISTEN/NOTIFY.
   */
  cluster: boolean;
  /** Running on Deno Deploy (DENO_DEPLOYMENT_ID is set): no file system, its own KV. */
  denoDeploy: boolean;
  /** This instance's name among several (leases, queue workers, logs). */
  instanceId: string;
  auth: {
    /** Requests per minute per client address on `/api/v1/auth/*`. */
    ratePerMinute: number;
    /** Default lifetime of a new webhook key. */
    webhookKeyExpiresDays: number;
    /** An external identity provider whose JWTs are accepted, when configured. */
    oidc?: {
      issuer: string;
      audience: string;
      jwksUrl?: string;
      secret?: string;
      algorithms: string[];
      clockToleranceS: number;
      /** Create a local trader for a verified email no user has yet. */
      autoProvision: boolean;
    };
  };
}

/** TradingView's webhook source addresses, from its documentation. */
export const TRADINGVIEW_IPS: readonly string[] = [
  "52.89.214.238",
  "34.212.75.30",
  "54.218.53.128",
  "52.32.178.7",
];

/** The configuration is invalid; the message lists every bad variable. */
export class ConfigError extends Error {
  override name = "ConfigError";
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Cannot start: invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.problems = problems;
  }
}

/**
 * Validates `env` (the process environment by default) into a {@linkcode Config}.
 * Throws {@linkcode ConfigError} naming every bad variable, never echoing a secret value.
 */
export function loadConfig(env: Record<string, string | undefined> = Deno.env.toObject()): Config {
  // An empty variable counts as unset, as in most .env tooling.
  const present = Object.fromEntries(
    ENV_VARS.map((k) => [k, env[k] === "" ? undefined : env[k]]),
  );
  const parsed = EnvSchema.safeParse(present);
  const problems = parsed.success ? [] : parsed.error.issues.map((issue) => {
    const name = String(issue.path[0] ?? "");
    return issue.message.startsWith(`"${name}"`) ? issue.message : `"${name}" ${issue.message}`;
  });
  // Production checks run even when other variables are bad, so one message lists everything.
  if (present.APP_ENV === "production") problems.push(...productionProblems(present));
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const e = parsed.data;
  const production = e.APP_ENV === "production";

  return {
    env: e.APP_ENV,
    version: VERSION,
    host: e.HOST,
    port: e.PORT,
    publicUrl: e.PUBLIC_URL,
    logLevel: e.LOG_LEVEL,
    dataDir: e.DATA_DIR,
    database: {
      url: e.DATABASE_URL,
      poolSize: e.DATABASE_POOL_SIZE,
      prepare: e.DATABASE_PREPARE,
      statementTimeoutMs: e.DATABASE_STATEMENT_TIMEOUT_MS,
    },
    migrateOnStart: e.MIGRATE_ON_START ?? !production,
    jwtSecret: e.JWT_SECRET ?? DEV_JWT_SECRET,
    encryptionKey: decodeKey(e.ENCRYPTION_KEY ?? DEV_ENCRYPTION_KEY)!,
    operatorApiKey: e.OPERATOR_API_KEY ?? DEV_OPERATOR_API_KEY,
    corsOrigins: (e.CORS_ORIGINS ?? (production ? "" : DEV_CORS_ORIGINS)).split(",")
      .map((s) => s.trim()).filter(Boolean),
    sentryDsn: e.SENTRY_DSN,
    trustProxy: e.TRUST_PROXY,
    rateLimitPerMinute: e.RATE_LIMIT_PER_MINUTE,
    upstash: e.UPSTASH_REDIS_REST_URL && e.UPSTASH_REDIS_REST_TOKEN
      ? { url: e.UPSTASH_REDIS_REST_URL, token: e.UPSTASH_REDIS_REST_TOKEN }
      : undefined,
    maxBodyBytes: e.MAX_BODY_BYTES,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    webhook: {
      dedupWindowMs: e.DEDUP_WINDOW_SECONDS * 1000,
      ratePerMinute: e.WEBHOOK_RATE_LIMIT_PER_MINUTE,
      allowedIps: (e.WEBHOOK_ALLOWED_IPS ?? "").split(",").map((s) => s.trim()).filter(Boolean)
        .flatMap((s) => s === "tradingview" ? TRADINGVIEW_IPS : [s]),
    },
    alpacaBaseUrl: e.ALPACA_BASE_URL,
    alpacaDataUrl: e.ALPACA_DATA_URL ?? ALPACA_DATA_URL,
    notify: {
      telegramApiUrl: e.TELEGRAM_API_URL,
      discordApiUrl: e.DISCORD_API_URL,
      operator: {
        telegram: e.OPERATOR_TELEGRAM_BOT_TOKEN && e.OPERATOR_TELEGRAM_CHAT_ID
          ? { token: e.OPERATOR_TELEGRAM_BOT_TOKEN, chatId: e.OPERATOR_TELEGRAM_CHAT_ID }
          : undefined,
        discord: e.OPERATOR_DISCORD_WEBHOOK_URL
          ? { webhookUrl: validateDiscordWebhookUrl(e.OPERATOR_DISCORD_WEBHOOK_URL) }
          : undefined,
      },
    },
    encryptionKeyVersion: e.ENCRYPTION_KEY_VERSION,
    encryptionKeyPrevious: e.ENCRYPTION_KEY_PREVIOUS
      ? decodeKey(e.ENCRYPTION_KEY_PREVIOUS)
      : undefined,
    // Deno Deploy runs several isolates at once: they must share work like instances do.
    cluster: e.CLUSTER || e.DENO_DEPLOYMENT_ID !== undefined,
    denoDeploy: e.DENO_DEPLOYMENT_ID !== undefined,
    instanceId: e.INSTANCE_ID ?? defaultInstanceId(),
    auth: {
      ratePerMinute: e.AUTH_RATE_LIMIT_PER_MINUTE,
      webhookKeyExpiresDays: e.WEBHOOK_KEY_EXPIRES_DAYS,
      oidc: e.OIDC_ISSUER && e.OIDC_AUDIENCE
        ? {
          issuer: e.OIDC_ISSUER,
          audience: e.OIDC_AUDIENCE,
          jwksUrl: e.OIDC_JWKS_URL,
          secret: e.OIDC_SECRET,
          algorithms: oidcAlgorithms(e.OIDC_ALGORITHMS, e.OIDC_JWKS_URL, e.OIDC_SECRET),
          clockToleranceS: e.OIDC_CLOCK_TOLERANCE_S,
          autoProvision: e.OIDC_AUTO_PROVISION,
        }
        : undefined,
    },
  };
}

const SECRETS = [
  ["JWT_SECRET", DEV_JWT_SECRET],
  ["ENCRYPTION_KEY", DEV_ENCRYPTION_KEY],
  ["OPERATOR_API_KEY", DEV_OPERATOR_API_KEY],
] as const;

function isDevelopmentValue(value: string, dev: string): boolean {
  return value === dev || /^dev-only|change-?me/i.test(value);
}

/**
 * The secrets of `env` left at their development defaults (unset, empty, or a development
 * value): fine on a laptop, refused in production, worth a warning anywhere else.
 */
export function developmentSecrets(env: Record<string, string | undefined>): string[] {
  return SECRETS.filter(([name, dev]) => {
    const value = env[name];
    return value === undefined || value === "" || isDevelopmentValue(value, dev);
  }).map(([name]) => name);
}

/** Secrets that production must set, to something other than the development defaults. */
function productionProblems(env: Record<string, string | undefined>): string[] {
  const problems: string[] = [];
  for (const [name, dev] of SECRETS) {
    const value = env[name];
    if (value === undefined) problems.push(`"${name}" must be set in production`);
    else if (isDevelopmentValue(value, dev)) {
      problems.push(`"${name}" must not be the development default in production`);
    }
  }
  if (env.CORS_ORIGINS?.split(",").some((o) => /localhost|127\.0\.0\.1/.test(o))) {
    problems.push(`"CORS_ORIGINS" must not allow localhost in production`);
  }
  return problems;
}

/** Host name, process id and a random suffix: unique per process, readable in logs. */
function defaultInstanceId(): string {
  let host = "host";
  try {
    host = Deno.hostname().replace(/[^A-Za-z0-9.-]/g, "").slice(0, 40) || host;
  } catch {
    // no --allow-sys: fine
  }
  return `${host}-${Deno.pid}-${crypto.randomUUID().slice(0, 4)}`;
}

function isIp(value: string): boolean {
  if (/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(value)) {
    return value.split(".").every((n) => Number(n) <= 255);
  }
  return /^[0-9a-fA-F:]+$/.test(value) && value.includes(":");
}

function isOrigin(value: string): boolean {
  try {
    const u = new URL(value);
    return (u.protocol === "http:" || u.protocol === "https:") && u.origin === value;
  } catch {
    return false;
  }
}

/** Decodes a 32-byte key given as 64 hex characters or base64; undefined when malformed. */
function decodeKey(value: string): Uint8Array | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(value)) {
    return Uint8Array.from(value.match(/../g)!, (h) => parseInt(h, 16));
  }
  try {
    const bin = atob(value);
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

/**
 * Reads a `.env` file (KEY=value lines, `#` comments, optional quotes) if it exists; variables
 * already in the process environment win over it. Returns the merged environment.
 */
export function environment(
  path = ".env",
  processEnv: Record<string, string> = Deno.env.toObject(),
): Record<string, string> {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return processEnv;
    throw new ConfigError([`Cannot read "${path}": ${(error as Error).message}`]);
  }
  return { ...parseDotEnv(text), ...processEnv };
}

/** Parses `.env` text: KEY=value per line, `export` prefix, quotes and `#` comments allowed. */
export function parseDotEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(raw);
    if (!match) continue;
    const [, key, rawValue] = match as unknown as [string, string, string];
    let value = rawValue;
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.endsWith(quote) && value.length >= 2) {
      value = value.slice(1, -1);
      if (quote === '"') value = value.replaceAll("\\n", "\n").replaceAll('\\"', '"');
    } else {
      value = value.replace(/\s+#.*$/, "");
    }
    out[key] = value;
  }
  return out;
}
