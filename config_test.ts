import assert from "node:assert/strict";
import { ConfigError, ENV_VARS, loadConfig } from "./config.ts";

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  assert.fail("loadConfig accepted a bad configuration");
}

Deno.test("config with no variables at all runs on PGlite under ./data with development defaults", () => {
  const config = loadConfig({});
  assert.equal(config.env, "development");
  assert.equal(config.port, 8000);
  assert.equal(config.database.url, undefined);
  assert.equal(config.dataDir, "./data");
  assert.equal(config.migrateOnStart, true);
  assert.equal(config.encryptionKey.length, 32);
  assert.deepEqual(config.corsOrigins, ["http://localhost:3000", "http://127.0.0.1:3000"]);
});

Deno.test("config lists every bad variable in one error and names each", () => {
  const found = problems({
    PORT: "eighty",
    LOG_LEVEL: "loud",
    DATABASE_URL: "mysql://x",
    DATABASE_POOL_SIZE: "0",
    DATABASE_PREPARE: "maybe",
    ENCRYPTION_KEY: "short",
    CORS_ORIGINS: "not a url",
  });
  const names = found.map((p) => /^"([A-Z_]+)"/.exec(p)?.[1]);
  assert.deepEqual(names.sort(), [
    "CORS_ORIGINS",
    "DATABASE_POOL_SIZE",
    "DATABASE_PREPARE",
    "DATABASE_URL",
    "ENCRYPTION_KEY",
    "LOG_LEVEL",
    "PORT",
  ]);
  assert.ok(
    found.includes(`"DATABASE_URL" must be a postgres:// or postgresql:// URL`),
    found.join("\n"),
  );
});

Deno.test("config error message never echoes a secret value", () => {
  const secret = "sup3r-secret-but-too-short";
  try {
    loadConfig({ ENCRYPTION_KEY: secret, JWT_SECRET: "tiny-secret" });
    assert.fail("accepted");
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    assert.ok(!error.message.includes(secret));
    assert.ok(!error.message.includes("tiny-secret"));
    assert.match(error.message, /"JWT_SECRET" must be at least 32 characters/);
  }
});

Deno.test("config in production refuses missing secrets and development defaults", () => {
  assert.deepEqual(problems({ APP_ENV: "production" }).sort(), [
    `"ENCRYPTION_KEY" must be set in production`,
    `"JWT_SECRET" must be set in production`,
    `"OPERATOR_API_KEY" must be set in production`,
  ]);
  const defaults = problems({
    APP_ENV: "production",
    JWT_SECRET: "dev-only-jwt-secret-change-me-0000000000000000",
    ENCRYPTION_KEY: "ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM=",
    OPERATOR_API_KEY: "dev-only-operator-key",
    CORS_ORIGINS: "http://localhost:3000",
  });
  assert.equal(defaults.length, 4, defaults.join("\n"));
  assert.ok(defaults.every((p) => /development default|localhost/.test(p)));
});

Deno.test("config in production with real secrets does not migrate on start and allows no origins by default", () => {
  const config = loadConfig({
    APP_ENV: "production",
    JWT_SECRET: "x".repeat(48),
    ENCRYPTION_KEY: "a1".repeat(32),
    OPERATOR_API_KEY: "op-" + "k".repeat(30),
    DATABASE_URL: "postgres://u:p@db:5432/app",
    DATABASE_PREPARE: "false",
  });
  assert.equal(config.migrateOnStart, false);
  assert.deepEqual(config.corsOrigins, []);
  assert.equal(config.database.prepare, false);
  assert.deepEqual([...config.encryptionKey.slice(0, 2)], [0xa1, 0xa1]);
});

Deno.test("config treats an empty variable as unset", () => {
  assert.equal(loadConfig({ PORT: "", DATABASE_URL: "" }).port, 8000);
});

Deno.test(".env.example documents exactly the variables the config schema reads", async () => {
  const text = await Deno.readTextFile(new URL("./.env.example", import.meta.url));
  const documented = [...text.matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!);
  assert.equal(new Set(documented).size, documented.length, "a variable is documented twice");
  assert.deepEqual([...documented].sort(), [...ENV_VARS].sort());
});

Deno.test(".env.example as written is a valid configuration", async () => {
  const text = await Deno.readTextFile(new URL("./.env.example", import.meta.url));
  const env = Object.fromEntries(
    [...text.matchAll(/^([A-Z][A-Z0-9_]+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]),
  );
  assert.equal(loadConfig(env).env, "development");
});

Deno.test("parseDotEnv reads KEY=value lines with quotes, export and comments", async () => {
  const { parseDotEnv } = await import("./config.ts");
  assert.deepEqual(
    parseDotEnv(
      `# comment\nexport PORT=9000\nLOG_LEVEL = debug # trailing\nJWT_SECRET="a b#c"\nEMPTY=\nnot a line\nQ='x'`,
    ),
    { PORT: "9000", LOG_LEVEL: "debug", JWT_SECRET: "a b#c", EMPTY: "", Q: "x" },
  );
});

Deno.test("environment lets the process environment win over .env", async () => {
  const { environment } = await import("./config.ts");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/.env`, "PORT=9000\nLOG_LEVEL=debug\n");
    assert.deepEqual(environment(`${dir}/.env`, { PORT: "7000" }), {
      PORT: "7000",
      LOG_LEVEL: "debug",
    });
    assert.deepEqual(environment(`${dir}/missing.env`, { PORT: "7000" }), { PORT: "7000" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config reads an identity provider and refuses a half or unsafe one", () => {
  const oidc = loadConfig({
    OIDC_ISSUER: "https://idp.example.com/",
    OIDC_AUDIENCE: "trendedge",
    OIDC_JWKS_URL: "https://idp.example.com/.well-known/jwks.json",
  }).auth.oidc;
  assert.deepEqual(oidc?.algorithms, ["RS256", "ES256"]);
  assert.equal(oidc?.autoProvision, false);
  assert.equal(loadConfig({}).auth.oidc, undefined);
  assert.ok(
    problems({ OIDC_ISSUER: "https://idp.example.com/" }).some((p) => /OIDC_AUDIENCE/.test(p)),
  );
  assert.ok(
    problems({
      OIDC_ISSUER: "https://idp.example.com/",
      OIDC_AUDIENCE: "a",
      OIDC_JWKS_URL: "http://idp.example.com/jwks.json",
    }).some((p) => /https/.test(p)),
  );
  assert.ok(
    problems({
      OIDC_ISSUER: "https://idp.example.com/",
      OIDC_AUDIENCE: "a",
      OIDC_JWKS_URL: "https://idp.example.com/jwks.json",
      OIDC_ALGORITHMS: "HS256",
    }).some((p) => /OIDC_SECRET/.test(p)),
  );
  assert.ok(problems({ OIDC_ALGORITHMS: "none" }).some((p) => /OIDC_ALGORITHMS/.test(p)));
  assert.ok(
    problems({ ENCRYPTION_KEY_PREVIOUS: "ab".repeat(32) }).some((p) =>
      /ENCRYPTION_KEY_VERSION/.test(p)
    ),
  );
});

Deno.test("config reads Upstash for shared rate limits, both variables or neither", () => {
  assert.equal(loadConfig({}).upstash, undefined);
  assert.deepEqual(
    loadConfig({
      UPSTASH_REDIS_REST_URL: "https://eu1-example.upstash.io",
      UPSTASH_REDIS_REST_TOKEN: "AXXXtoken",
    }).upstash,
    { url: "https://eu1-example.upstash.io", token: "AXXXtoken" },
  );
  assert.deepEqual(
    loadConfig({ UPSTASH_REDIS_REST_URL: "http://127.0.0.1:8079", UPSTASH_REDIS_REST_TOKEN: "t" })
      .upstash?.url,
    "http://127.0.0.1:8079",
    "http:// on localhost, for a local stand-in",
  );
  assert.deepEqual(problems({ UPSTASH_REDIS_REST_URL: "https://eu1-example.upstash.io" }), [
    `"UPSTASH_REDIS_REST_TOKEN" is required when "UPSTASH_REDIS_REST_URL" is set`,
  ]);
  assert.deepEqual(problems({ UPSTASH_REDIS_REST_TOKEN: "AXXXtoken" }), [
    `"UPSTASH_REDIS_REST_URL" is required when "UPSTASH_REDIS_REST_TOKEN" is set`,
  ]);
  for (const url of ["http://eu1-example.upstash.io", "redis://127.0.0.1:6379", "not a url"]) {
    assert.deepEqual(
      problems({ UPSTASH_REDIS_REST_URL: url, UPSTASH_REDIS_REST_TOKEN: "AXXXtoken" }),
      [`"UPSTASH_REDIS_REST_URL" must be an https:// URL (http:// only on localhost)`],
      url,
    );
  }
  const message = problems({
    UPSTASH_REDIS_REST_URL: "ftp://x",
    UPSTASH_REDIS_REST_TOKEN: "AXXXtoken",
  })
    .join("\n");
  assert.equal(message.includes("AXXXtoken"), false, "the token is never echoed");
});

Deno.test("developmentSecrets names the secrets left unset, empty or at a development value", async () => {
  const { developmentSecrets } = await import("./config.ts");
  assert.deepEqual(developmentSecrets({}), ["JWT_SECRET", "ENCRYPTION_KEY", "OPERATOR_API_KEY"]);
  assert.deepEqual(
    developmentSecrets({
      JWT_SECRET: "a-real-secret-of-at-least-32-characters!",
      ENCRYPTION_KEY: "",
      OPERATOR_API_KEY: "please-change-me-now",
    }),
    ["ENCRYPTION_KEY", "OPERATOR_API_KEY"],
  );
  assert.deepEqual(
    developmentSecrets({
      JWT_SECRET: "a-real-secret-of-at-least-32-characters!",
      ENCRYPTION_KEY: "0".repeat(64),
      OPERATOR_API_KEY: "a-real-operator-key",
    }),
    [],
  );
});

Deno.test("on Deno Deploy the database URL is required and isolates share work as a cluster", () => {
  assert.ok(problems({ DENO_DEPLOYMENT_ID: "abc123" }).some((p) => /DATABASE_URL/.test(p)));
  const config = loadConfig({
    DENO_DEPLOYMENT_ID: "abc123",
    DATABASE_URL: "postgres://app@db.example.com:5432/trendedge",
  });
  assert.equal(config.denoDeploy, true);
  assert.equal(config.cluster, true);
  assert.equal(loadConfig({}).denoDeploy, false);
});
