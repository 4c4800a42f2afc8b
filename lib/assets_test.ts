import assert from "node:assert/strict";
import { islandSourceHash, loadAssets, writeBuild } from "./assets.ts";
import { createTestDb } from "../tests/_db.ts";
import { createTestApp } from "../tests/_app.ts";

Deno.test("the islands bundle: a boot script, one chunk per island, content-hashed names", async () => {
  const assets = await loadAssets({ buildDir: new URL(`file://${await Deno.makeTempDir()}/`) });
  assert.equal(assets.origin, "memory");
  assert.match(assets.bootUrl, /^\/static\/build\/boot-[0-9a-f]{10}\.js$/);
  assert.match(assets.cssUrl, /^\/static\/app-[0-9a-f]{10}\.css$/);
  const boot = new TextDecoder().decode(assets.files.get(assets.bootUrl)!.body);
  // The boot script imports the islands lazily, as chunks of their own next to it.
  const chunks = [...boot.matchAll(/import\("\.\/([^"]+\.js)"\)/g)].map((m) => m[1]!);
  assert.ok(chunks.length >= 5, `lazy island chunks: ${chunks.join(", ")}`);
  for (const chunk of chunks) assert.ok(assets.files.has(`/static/build/${chunk}`), chunk);
  // No server code in the browser: nothing of postgres.js, PGlite, hono or Deno's APIs.
  for (const [path, file] of assets.files) {
    if (!path.endsWith(".js")) continue;
    const text = new TextDecoder().decode(file.body);
    for (const marker of ["Deno.env", "postgres", "electric-sql", "hono", "JWT_SECRET"]) {
      assert.ok(!text.includes(marker), `${path} holds "${marker}"`);
    }
  }
});

Deno.test("a build is used while its sources match, and a stale one is ignored", async () => {
  const dir = new URL(`file://${await Deno.makeTempDir()}/`);
  const manifest = await writeBuild({ buildDir: dir });
  assert.equal(manifest.sourceHash, await islandSourceHash());
  const built = await loadAssets({ buildDir: dir });
  assert.equal(built.origin, "build");
  assert.equal(built.bootUrl, `/static/build/${manifest.boot}`);

  // Sources changed since the build (here: the manifest says another hash): bundle afresh.
  const path = new URL("manifest.json", dir);
  const stale = { ...JSON.parse(await Deno.readTextFile(path)), sourceHash: "0000000000000000" };
  await Deno.writeTextFile(path, JSON.stringify(stale));
  assert.equal((await loadAssets({ buildDir: dir })).origin, "memory");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("static assets: long-lived caching, ETag revalidation, nothing outside the asset list", async () => {
  await using t = await createTestDb("pglite");
  await using test = createTestApp({ db: t.db });
  const page = await (await test.app.request("/setup")).text();
  const css = /href="(\/static\/app-[0-9a-f]+\.css)"/.exec(page)![1]!;
  const boot = /src="(\/static\/build\/boot-[0-9a-f]+\.js)"/.exec(page)![1]!;
  for (const path of [css, boot]) {
    const res = await test.app.request(path);
    assert.equal(res.status, 200, path);
    assert.equal(res.headers.get("cache-control"), "public, max-age=31536000, immutable");
    const etag = res.headers.get("etag")!;
    await res.arrayBuffer();
    const again = await test.app.request(path, { headers: { "If-None-Match": etag } });
    assert.equal(again.status, 304);
  }
  assert.match((await test.app.request(boot)).headers.get("content-type")!, /^text\/javascript/);
  for (const path of ["/static/app.css", "/static/../deno.json", "/static/build/manifest.json"]) {
    const res = await test.app.request(path);
    assert.equal(res.status, 404, path);
    await res.body?.cancel();
  }
});
