/**
 * `deno task build`: bundles the islands into `static/build/` (content-hashed files and a
 * manifest). The server uses this build while the sources match it and bundles in memory
 * otherwise, so a build is an optimization (a faster start, no bundler in production), never a
 * requirement.
 */
import { writeBuild } from "../lib/assets.ts";
import { fail, print } from "../lib/cli.ts";

if (import.meta.main) {
  const started = performance.now();
  try {
    const manifest = await writeBuild();
    print(
      `Built ${manifest.files.length} files into static/build/ in ${
        Math.round(performance.now() - started)
      } ms (boot: ${manifest.boot}, sources ${manifest.sourceHash})`,
    );
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
}
