/** Operator commands: flags in, plain lines for people out (stdout and stderr). */
import { parseArgs } from "node:util";

const encoder = new TextEncoder();

/** Prints one line to stdout. */
export function print(line = ""): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}

/** Prints one line to stderr. */
export function printError(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

/** Prints `message` to stderr and exits with `code`. */
export function fail(message: string, code = 1): never {
  printError(message);
  Deno.exit(code);
}

/**
 * Flags of an operator command: `--name value`, or a bare `--name` switch with `boolean: true`
 * (`--help` is added).
 */
export type FlagSpec = Record<string, { default?: string; boolean?: true }>;

/**
 * Parses `--flag value` arguments strictly: an unknown flag or a stray argument prints the
 * error and `usage` and exits 64; `--help` / `-h` prints `usage` and exits 0.
 */
export function parseFlags<F extends FlagSpec>(
  args: string[],
  flags: F,
  usage: string,
): {
  [K in keyof F]: F[K]["boolean"] extends true ? boolean
    : F[K]["default"] extends string ? string
    : string | undefined;
} {
  const options: Record<
    string,
    { type: "string"; default?: string } | { type: "boolean"; short?: string }
  > = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, spec] of Object.entries(flags)) {
    options[name] = spec.boolean ? { type: "boolean" } : {
      type: "string",
      ...(spec.default === undefined ? {} : { default: spec.default }),
    };
  }
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args, options, strict: true, allowPositionals: false }));
  } catch (error) {
    fail(`${(error as Error).message}\n${usage}`, 64);
  }
  if (values.help) {
    print(usage);
    Deno.exit(0);
  }
  delete values.help;
  for (const [name, spec] of Object.entries(flags)) {
    if (spec.boolean) values[name] = values[name] === true;
  }
  return values as never;
}
