/**
 * The dashboard: server-rendered pages (one file each) and the static assets they load —
 * content-hashed, so they are cached for a year and a new build is a new URL.
 */
import { Hono } from "hono";
import { sharedAssets } from "../../lib/assets.ts";
import { ApiError } from "../../lib/errors.ts";
import type { AppEnv } from "../_env.ts";
import { authPages } from "./auth.tsx";
import { chartPage } from "./chart.tsx";
import { overviewPage } from "./overview.tsx";
import { ordersPage } from "./orders.tsx";
import { settingsPage } from "./settings.tsx";
import { signalsPage } from "./signals.tsx";
import { systemPage } from "./system.tsx";

/** Every page and the static assets. */
export const pages = new Hono<AppEnv>();

pages.get("/static/*", async (c) => {
  const assets = await sharedAssets();
  const file = assets.files.get(c.req.path);
  if (!file) throw new ApiError("NOT_FOUND", `Cannot find ${c.req.path}`);
  c.header("Cache-Control", "public, max-age=31536000, immutable");
  c.header("ETag", file.etag);
  if (c.req.header("if-none-match") === file.etag) return c.body(null, 304);
  c.header("Content-Type", file.contentType);
  return c.body(file.body);
});

pages.route("/", authPages);
pages.route("/", overviewPage);
pages.route("/", settingsPage);
pages.route("/", signalsPage);
pages.route("/", ordersPage);
pages.route("/", chartPage);
pages.route("/", systemPage);
