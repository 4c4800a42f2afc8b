/**
 * The deploy files, checked as far as this machine can without Docker or flyctl: the Dockerfile's
 * stages, user, lockfile and commands; its HEALTHCHECK run for real against a running server;
 * fly.toml's release command and health checks against the real tasks and routes; the workflows
 * as YAML.
 */
import assert from "node:assert/strict";
import { parse as parseToml } from "smol-toml";
import { parse as parseYaml } from "yaml";
import { ENV_VARS, loadConfig } from "../config.ts";
import { createPostgresDatabase } from "./_db.ts";
import { runTask, startServer } from "./_process.ts";

const ROOT = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, ROOT));
const exists = async (path: string) => {
  try {
    await Deno.stat(new URL(path, ROOT));
    return true;
  } catch {
    return false;
  }
};

/** Secrets a production configuration needs (test values). */
const SECRETS = {
  JWT_SECRET: "deploy-test-jwt-secret-0123456789abcdef",
  ENCRYPTION_KEY: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
  OPERATOR_API_KEY: "deploy-test-operator-key",
};

interface Instruction {
  op: string;
  args: string;
}

interface Stage {
  from: string;
  name?: string;
  steps: Instruction[];
}

/** The Dockerfile as stages of instructions (continuations joined, comments dropped). */
async function dockerfile(): Promise<{ args: Record<string, string>; stages: Stage[] }> {
  const text = (await read("Dockerfile")).replace(/\\\n/g, " ");
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const [, op, rest] = /^(\S+)\s*(.*)$/.exec(line)!;
    const instruction = { op: op!.toUpperCase(), args: rest!.replace(/\s+/g, " ").trim() };
    if (instruction.op === "FROM") {
      const [from, as, name] = instruction.args.split(" ");
      assert.ok(as === undefined || as.toUpperCase() === "AS", instruction.args);
      stages.push({ from: from!, name, steps: [] });
    } else if (stages.length === 0) {
      assert.equal(instruction.op, "ARG", "only ARG comes before the first FROM");
      const [key, value] = instruction.args.split("=");
      args[key!] = value!;
    } else {
      stages.at(-1)!.steps.push(instruction);
    }
  }
  return { args, stages };
}

/** The JSON array of an exec-form CMD. */
function execForm(args: string): string[] {
  const command = JSON.parse(args.slice(args.indexOf("[")));
  assert.ok(Array.isArray(command) && command.every((s) => typeof s === "string"), args);
  return command;
}

/** The ENV of a stage (`KEY=value` pairs). */
function stageEnv(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const step of stage.steps.filter((s) => s.op === "ENV")) {
    for (const pair of step.args.split(" ")) {
      const [key, value] = pair.split("=");
      env[key!] = value!;
    }
  }
  return env;
}

async function denoTasks(): Promise<Record<string, string>> {
  return JSON.parse(await read("deno.json")).tasks;
}

Deno.test("the Dockerfile builds in stages on a pinned Deno 2.9 image with a frozen lockfile", async () => {
  const { args, stages } = await dockerfile();
  assert.ok(stages.length >= 2, "multi-stage");
  const [major, minor] = Deno.version.deno.split(".");
  for (const stage of stages) {
    const image = stage.from.replace(/\$\{(\w+)\}/g, (_, name) => args[name] ?? `\${${name}}`);
    const named = stages.find((s) => s.name === image);
    if (named) continue; // FROM an earlier stage
    const match = /^denoland\/deno:(?:debian-)?(\d+)\.(\d+)\.(\d+)$/.exec(image);
    assert.ok(match, `"${image}" is the official image pinned to a full version`);
    assert.equal(`${match[1]}.${match[2]}`, `${major}.${minor}`, "the Deno line CI and dev use");
  }

  // Dependencies are installed from deno.json + deno.lock alone, before the source comes in.
  const deps = stages[0]!;
  const copies = deps.steps.filter((s) => s.op === "COPY").map((s) => s.args);
  assert.deepEqual(copies, ["deno.json deno.lock ./"]);
  assert.ok(deps.steps.some((s) => s.op === "RUN" && /^deno install --frozen\b/.test(s.args)));
  for (const stage of stages) {
    for (
      const step of stage.steps.filter((s) =>
        s.op === "RUN" && /\bdeno (install|cache)\b/.test(s.args)
      )
    ) {
      assert.match(step.args, /--frozen/, `"${step.args}" keeps the lockfile frozen`);
    }
  }
  const all = stages.flatMap((s) => s.steps.map((step) => `${step.op} ${step.args}`));
  assert.ok(
    all.findIndex((s) => s.startsWith("RUN deno install --frozen")) <
      all.findIndex((s) => s === "COPY . ."),
    "dependencies are cached in a layer before the source",
  );

  // The islands are bundled in the image, after the source is in (the server then never bundles).
  assert.ok(
    all.indexOf("RUN deno task build") > all.findIndex((s) => s === "COPY . ."),
    "the dashboard bundle is built in the image",
  );

  const final = stages.at(-1)!;
  const ops = final.steps.map((s) => s.op);
  const user = final.steps.filter((s) => s.op === "USER").map((s) => s.args);
  assert.deepEqual(user, ["deno"], "runs as the image's unprivileged deno user");
  assert.ok(
    final.steps.slice(ops.indexOf("USER")).every((s) => s.op !== "RUN"),
    "nothing runs as root after USER",
  );
  const env = stageEnv(final);
  assert.ok(
    final.steps.some((s) =>
      s.op === "RUN" && s.args.includes(`mkdir -p ${env.DATA_DIR}`) &&
      s.args.includes(`chown deno:deno ${env.DATA_DIR}`)
    ),
    "DATA_DIR exists and belongs to the deno user",
  );
  assert.deepEqual(final.steps.filter((s) => s.op === "EXPOSE").map((s) => s.args), [env.PORT]);
  assert.deepEqual(final.steps.filter((s) => s.op === "STOPSIGNAL").map((s) => s.args), [
    "SIGTERM",
  ]);
  for (const name of Object.keys(env).filter((k) => !k.startsWith("DENO_"))) {
    assert.ok(ENV_VARS.includes(name), `ENV ${name} is a variable config.ts reads`);
  }

  // CMD: the same program and permissions as `deno task start`, and never fetching code.
  const cmd = execForm(final.steps.find((s) => s.op === "CMD")!.args);
  const start = (await denoTasks()).start!.split(" ");
  assert.deepEqual(cmd.filter((a) => !["--frozen", "--cached-only"].includes(a)), start);
  assert.ok(cmd.includes("--frozen") && cmd.includes("--cached-only"));

  const healthcheck = final.steps.find((s) => s.op === "HEALTHCHECK")!;
  assert.match(healthcheck.args, /--interval=\d+s .*--timeout=\d+s/);
  const probe = execForm(healthcheck.args);
  assert.ok(await exists(probe.at(-1)!), `${probe.at(-1)} exists`);

  const ignore = (await read(".dockerignore")).split("\n").map((l) => l.trim());
  for (const pattern of [".git", ".env", "data/", "*.jsonl.gz", "test-artifacts/"]) {
    assert.ok(ignore.includes(pattern), `.dockerignore leaves out ${pattern}`);
  }
});

Deno.test("the Dockerfile's HEALTHCHECK command passes against a running server and fails without one", async () => {
  const { stages } = await dockerfile();
  const final = stages.at(-1)!;
  const [program, ...args] = execForm(final.steps.find((s) => s.op === "HEALTHCHECK")!.args);
  assert.equal(program, "deno");
  const probe = (env: Record<string, string>) =>
    new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      // The image's environment, with the secrets any production container has.
      env: { ...stageEnv(final), ...SECRETS, NO_COLOR: "1", ...env },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);

  const data = await Deno.makeTempDir({ prefix: "trendedge-deploy-" });
  let port: string;
  try {
    await using server = await startServer({ DATA_DIR: data });
    port = new URL(server.url).port;
    const healthy = await probe({ PORT: port, DATA_DIR: data });
    assert.equal(healthy.code, 0, decode(healthy.stderr));
    assert.match(decode(healthy.stdout), /^Healthy: http:\/\/127\.0\.0\.1:\d+\/health/);
  } finally {
    await Deno.remove(data, { recursive: true });
  }
  const down = await probe({ PORT: port, DATA_DIR: data });
  assert.equal(down.code, 1);
  assert.match(decode(down.stderr), /^Unhealthy: http:\/\/127\.0\.0\.1:\d+\/health: /);
});

Deno.test("fly.toml migrates with an existing task, checks real routes and outlives the shutdown", async () => {
  const fly = parseToml(await read("fly.toml")) as Record<string, unknown> & {
    app: string;
    kill_signal: string;
    kill_timeout: string;
    build: { dockerfile: string };
    deploy: { release_command: string };
    env: Record<string, string>;
    mounts: Array<{ source: string; destination: string }>;
    http_service: {
      internal_port: number;
      force_https: boolean;
      auto_stop_machines: string | boolean;
      min_machines_running: number;
      concurrency: { type: string; soft_limit: number; hard_limit: number };
      checks: Array<{ path: string; method: string; interval: string; timeout: string }>;
    };
  };
  assert.ok(await exists(fly.build.dockerfile));
  assert.equal(fly.kill_signal, "SIGTERM");
  const seconds = (d: string) => Number(/^(\d+)s$/.exec(d)?.[1] ?? NaN);
  const config = loadConfig({ ...fly.env, ...SECRETS });
  assert.equal(config.env, "production");
  assert.equal(config.trustProxy, true);
  assert.ok(
    seconds(fly.kill_timeout) * 1000 > config.shutdownTimeoutMs,
    "Fly waits longer than the graceful shutdown takes",
  );
  assert.equal(fly.http_service.internal_port, config.port);
  assert.equal(fly.http_service.force_https, true);
  assert.ok(
    [false, "off"].includes(fly.http_service.auto_stop_machines),
    "machines never stop by themselves",
  );
  assert.ok(fly.http_service.min_machines_running >= 1);
  assert.ok(fly.http_service.concurrency.soft_limit <= fly.http_service.concurrency.hard_limit);
  assert.deepEqual(fly.mounts.map((m) => m.destination), [config.dataDir]);
  const { stages } = await dockerfile();
  assert.deepEqual(
    stages.at(-1)!.steps.filter((s) => s.op === "EXPOSE").map((s) => Number(s.args)),
    [fly.http_service.internal_port],
  );

  // The release command is a real task that migrates a fresh database.
  const [program, verb, task, ...taskArgs] = fly.deploy.release_command.split(" ");
  assert.deepEqual([program, verb], ["deno", "task"]);
  assert.ok((await denoTasks())[task!], `deno.json has the task "${task}"`);
  const database = await createPostgresDatabase();
  try {
    const release = await runTask(
      { ...fly.env, ...SECRETS, DATABASE_URL: database.url },
      task!,
      ...taskArgs,
    );
    assert.equal(release.code, 0, release.stderr);
    assert.match(release.stdout, /Done: \d+ migration/);
  } finally {
    await database.drop();
  }

  // Each health check's path answers 200 on a running server.
  const paths = fly.http_service.checks.map((c) => c.path).sort();
  assert.deepEqual(paths, ["/health", "/health/ready"]);
  const data = await Deno.makeTempDir({ prefix: "trendedge-deploy-" });
  try {
    await using server = await startServer({ DATA_DIR: data });
    for (const check of fly.http_service.checks) {
      assert.ok(
        seconds(check.timeout) < seconds(check.interval),
        `${check.path}: timeout < interval`,
      );
      const res = await fetch(`${server.url}${check.path}`, { method: check.method ?? "GET" });
      await res.body?.cancel();
      assert.equal(res.status, 200, check.path);
    }
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("the workflows are valid YAML: CI tests with PostgreSQL and Redis, deploy follows a green CI", async () => {
  // deno-lint-ignore no-explicit-any
  const ci = parseYaml(await read(".github/workflows/ci.yml")) as any;
  // deno-lint-ignore no-explicit-any
  const deploy = parseYaml(await read(".github/workflows/deploy.yml")) as any;

  const test = ci.jobs.test;
  assert.deepEqual(Object.keys(test.services).sort(), ["postgres", "redis"]);
  const ciRuns = test.steps.map((s: { run?: string }) => s.run ?? "").join("\n");
  assert.match(ciRuns, /npm i -g deno@2\.9/);
  assert.match(ciRuns, /deno install --frozen/);
  assert.match(ciRuns, /apt-get install .*chromium/);
  assert.match(ciRuns, /deno task test/);
  assert.match(
    (await denoTasks()).test!,
    /deno task check/,
    "the test task checks fmt, lint, types",
  );

  assert.deepEqual(deploy.on.workflow_run.workflows, [ci.name]);
  assert.deepEqual(deploy.on.workflow_run.types, ["completed"]);
  assert.deepEqual(deploy.on.workflow_run.branches, ["main"]);
  const job = deploy.jobs.deploy;
  assert.match(job.if, /workflow_run\.conclusion == 'success'/);
  assert.equal(job.env.FLY_API_TOKEN, "${{ secrets.FLY_API_TOKEN }}");
  const steps = job.steps as Array<{ uses?: string; run?: string; if?: string; id?: string }>;
  assert.ok(steps.some((s) => s.uses?.startsWith("superfly/flyctl-actions/setup-flyctl")));
  const order = (pattern: RegExp) => steps.findIndex((s) => pattern.test(s.run ?? ""));
  const remember = order(/flyctl releases .*--json/);
  const ship = order(/flyctl deploy .*--remote-only/);
  const smoke = order(/curl --fail .*--retry .*\/health\/ready/s);
  const rollback = order(/flyctl deploy .*--image "\$PREVIOUS_IMAGE"/);
  assert.ok(remember >= 0 && remember < ship && ship < smoke && smoke < rollback, "step order");
  assert.match(steps[rollback]!.if!, /failure\(\)/);
  assert.match(steps[rollback]!.if!, /steps\.previous\.outputs\.image != ''/);
  assert.equal(steps[remember]!.id, "previous");
});
