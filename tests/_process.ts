/** Runs trendedge as a real process, the way an operator does, and reads its JSON log. */
import type { LogFields } from "../lib/log.ts";

const ROOT = new URL("../", import.meta.url);

/** A trendedge process started by a test. */
export interface ServerProcess extends AsyncDisposable {
  url: string;
  child: Deno.ChildProcess;
  /** Every JSON log line written so far. */
  lines: LogFields[];
  /** Resolves with the exit status. */
  status: Promise<Deno.CommandStatus>;
}

/** Starts `main.ts` with `env` (on top of a clean environment) and waits for "Listening". */
export async function startServer(
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<ServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "main.ts"],
    cwd: ROOT,
    env: { HOST: "127.0.0.1", PORT: "0", APP_ENV: "test", NO_COLOR: "1", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: LogFields[] = [];
  const listening = Promise.withResolvers<string>();
  const status = child.status;
  const stderr = new Response(child.stderr).text();
  const reading = (async () => {
    let buffer = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        try {
          const record = JSON.parse(line) as LogFields;
          lines.push(record);
          if (record.message === "Listening") listening.resolve(String(record.url));
        } catch {
          lines.push({ message: "(not JSON)", raw: line });
        }
      }
    }
  })();
  const timer = setTimeout(
    () => listening.reject(new Error("server did not start in time")),
    timeoutMs,
  );
  status.then(async (s) =>
    listening.reject(
      new Error(
        `server exited with ${s.code} before listening: ${await stderr}\n${JSON.stringify(lines)}`,
      ),
    )
  );
  try {
    const url = await listening.promise;
    return {
      url,
      child,
      lines,
      status,
      async [Symbol.asyncDispose]() {
        try {
          child.kill("SIGKILL");
        } catch {
          // already exited
        }
        await status;
        await reading;
        await stderr;
      },
    };
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await status;
    await reading;
    await stderr;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** What a finished operator command printed, and its exit code. */
export interface TaskOutput {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno task <name> <args>` as an operator would, with `env` over a clean environment. */
export async function runTask(
  env: Record<string, string>,
  name: string,
  ...args: string[]
): Promise<TaskOutput> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", name, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}
