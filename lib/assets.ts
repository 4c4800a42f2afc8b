/**
 * The dashboard's static assets: the islands bundle (built by `deno bundle` from
 * `islands/_boot.ts`, split into one chunk per island) and the files in `static/`, each served
 * under a content-hashed name so browsers may cache them for a year.
 *
 * `deno task build` writes the bundle to `static/build/` with a manifest that records a hash of
 * the sources it came from. At start the server uses that build when the sources still match it,
 * and otherwise bundles in memory (a few hundred milliseconds) — a stale build is never served.
 */

/** One servable file. */
export interface Asset {
  body: Uint8Array<ArrayBuffer>;
  contentType: string;
  /** Quoted strong ETag (the content hash). */
  etag: string;
}

/** The built assets: files by URL path, and the URLs the pages link to. */
export interface Assets {
  /** Files by URL path (`/static/build/boot-1a2b3c4d5e.js`, `/static/app-….css`). */
  files: Map<string, Asset>;
  /** The URL of the boot script. */
  bootUrl: string;
  /** The URL of the stylesheet. */
  cssUrl: string;
  /** The URL of the icon. */
  iconUrl: string;
  /** Where the bundle came from. */
  origin: "build" | "memory";
  /** Hash of the sources the bundle was built from. */
  sourceHash: string;
}

/** What `deno task build` writes beside the files. */
interface Manifest {
  sourceHash: string;
  boot: string;
  files: string[];
}

const ROOT = new URL("../", import.meta.url);
const ISLANDS_DIR = new URL("islands/", ROOT);
const STATIC_DIR = new URL("static/", ROOT);
const BUILD_DIR = new URL("static/build/", ROOT);
const BUILD_PREFIX = "/static/build/";
/** Files of `static/` served (besides the build), by name. */
const STATIC_FILES = ["app.css", "favicon.svg"];

const CONTENT_TYPES: Record<string, string> = {
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  map: "application/json; charset=utf-8",
  svg: "image/svg+xml",
};

/** The error of a bundle that does not build. */
export class BundleError extends Error {
  override name = "BundleError";
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function* walk(dir: URL): AsyncGenerator<URL> {
  const entries = [];
  for await (const entry of Deno.readDir(dir)) entries.push(entry);
  entries.sort((a, b) => a.name < b.name ? -1 : 1);
  for (const entry of entries) {
    if (entry.isDirectory) yield* walk(new URL(`${entry.name}/`, dir));
    else if (entry.isFile && !entry.name.endsWith("_test.ts")) yield new URL(entry.name, dir);
  }
}

/**
 * A hash of everything the bundle is built from: every file under `islands/` (which imports
 * only types from the server, so nothing else of ours reaches the browser) and the lock file.
 */
export async function islandSourceHash(): Promise<string> {
  const parts: Uint8Array[] = [];
  const encoder = new TextEncoder();
  const files = [...await Array.fromAsync(walk(ISLANDS_DIR)), new URL("deno.lock", ROOT)];
  for (const file of files) {
    parts.push(encoder.encode(file.href.slice(ROOT.href.length) + "\0"));
    parts.push(await Deno.readFile(file));
  }
  const total = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    total.set(part, at);
    at += part.length;
  }
  return (await sha256Hex(total)).slice(0, 16);
}

/** Bundles the islands: file names (the entry renamed `boot-<hash>.js`) → contents. */
export async function bundleIslands(): Promise<
  { boot: string; files: Map<string, Uint8Array<ArrayBuffer>> }
> {
  // deno-lint-ignore no-explicit-any
  const bundle = (Deno as any).bundle as
    | ((options: Record<string, unknown>) => Promise<BundleResult>)
    | undefined;
  if (!bundle) {
    throw new BundleError(
      "Cannot bundle the islands: Deno.bundle is not available (run with --unstable-bundle, " +
        'or "bundle" in deno.json "unstable"), or build them first with `deno task build`',
    );
  }
  const result = await bundle({
    entrypoints: [new URL("_boot.ts", ISLANDS_DIR).pathname],
    outputDir: BUILD_DIR.pathname,
    platform: "browser",
    format: "esm",
    codeSplitting: true,
    minify: true,
    write: false,
  });
  if (!result.success || !result.outputFiles) {
    const messages = result.errors.map((e) => e.text ?? JSON.stringify(e)).join("; ");
    throw new BundleError(`Cannot bundle the islands: ${messages || "no output"}`);
  }
  const files = new Map<string, Uint8Array<ArrayBuffer>>();
  let entry: Uint8Array<ArrayBuffer> | undefined;
  for (const file of result.outputFiles) {
    const name = file.path.slice(file.path.lastIndexOf("/") + 1);
    const contents = new Uint8Array(file.contents ?? new TextEncoder().encode(file.text()));
    if (name === "_boot.js") entry = contents;
    else files.set(name, contents);
  }
  if (!entry) throw new BundleError("Cannot bundle the islands: no _boot.js in the output");
  const boot = `boot-${(await sha256Hex(entry)).slice(0, 10)}.js`;
  files.set(boot, entry);
  return { boot, files };
}

interface BundleResult {
  success: boolean;
  errors: Array<{ text?: string }>;
  outputFiles?: Array<{ path: string; contents?: Uint8Array; text(): string }>;
}

/** Where a build is written and read; `static/build/` unless a test says otherwise. */
export interface BuildOptions {
  buildDir?: URL;
}

/** Writes a fresh build to `static/build/` (what `deno task build` runs). */
export async function writeBuild(options: BuildOptions = {}): Promise<Manifest> {
  const dir = options.buildDir ?? BUILD_DIR;
  const sourceHash = await islandSourceHash();
  const { boot, files } = await bundleIslands();
  await Deno.remove(dir, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, contents] of files) await Deno.writeFile(new URL(name, dir), contents);
  const manifest: Manifest = { sourceHash, boot, files: [...files.keys()].sort() };
  await Deno.writeTextFile(new URL("manifest.json", dir), JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}

/** The build in `dir` if it was made from the current sources, else null. */
async function readBuild(dir: URL, sourceHash: string): Promise<Manifest | null> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await Deno.readTextFile(new URL("manifest.json", dir)));
  } catch {
    return null;
  }
  return manifest.sourceHash === sourceHash ? manifest : null;
}

async function asset(body: Uint8Array<ArrayBuffer>, name: string): Promise<Asset> {
  const ext = name.slice(name.lastIndexOf(".") + 1);
  return {
    body,
    contentType: CONTENT_TYPES[ext] ?? "application/octet-stream",
    etag: `"${(await sha256Hex(body)).slice(0, 20)}"`,
  };
}

/** Loads the assets: the current build from disk, or a bundle made now in memory. */
export async function loadAssets(options: BuildOptions = {}): Promise<Assets> {
  const dir = options.buildDir ?? BUILD_DIR;
  const sourceHash = await islandSourceHash();
  const files = new Map<string, Asset>();
  const manifest = await readBuild(dir, sourceHash);
  let boot: string;
  if (manifest) {
    for (const name of manifest.files) {
      files.set(
        BUILD_PREFIX + name,
        await asset(await Deno.readFile(new URL(name, dir)), name),
      );
    }
    boot = manifest.boot;
  } else {
    const bundled = await bundleIslands();
    for (const [name, contents] of bundled.files) {
      files.set(BUILD_PREFIX + name, await asset(contents, name));
    }
    boot = bundled.boot;
  }
  const urls: Record<string, string> = {};
  for (const name of STATIC_FILES) {
    const body = await Deno.readFile(new URL(name, STATIC_DIR));
    const dot = name.lastIndexOf(".");
    const hashed = `/static/${name.slice(0, dot)}-${(await sha256Hex(body)).slice(0, 10)}${
      name.slice(dot)
    }`;
    files.set(hashed, await asset(body, name));
    urls[name] = hashed;
  }
  return {
    files,
    bootUrl: BUILD_PREFIX + boot,
    cssUrl: urls["app.css"]!,
    iconUrl: urls["favicon.svg"]!,
    origin: manifest ? "build" : "memory",
    sourceHash,
  };
}

let loading: Promise<Assets> | undefined;

/** The process's assets, loaded once (a failed load is retried by the next call). */
export function sharedAssets(): Promise<Assets> {
  loading ??= loadAssets().catch((error) => {
    loading = undefined;
    throw error;
  });
  return loading;
}
