/** Output for operator commands: plain lines for people, on stdout and stderr. */

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
