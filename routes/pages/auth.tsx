/** `/login` and `/setup`: the pages before a session exists. */
import { Hono } from "hono";
import { Island } from "../../components/Island.tsx";
import { setupRequired } from "../../db/users.ts";
import LoginForm from "../../islands/LoginForm.tsx";
import SetupForm from "../../islands/SetupForm.tsx";
import { MIN_PASSWORD_LENGTH } from "../../lib/password.ts";
import type { AppEnv } from "../_env.ts";
import { pageUser, renderPage, safeNext } from "./_page.tsx";

/** The login and first-run setup pages. */
export const authPages = new Hono<AppEnv>();

authPages.get("/login", async (c) => {
  const { db } = c.get("deps");
  if (await setupRequired(db)) return c.redirect("/setup", 303);
  const next = safeNext(c.req.query("next"));
  if (await pageUser(c)) return c.redirect(next, 303);
  return renderPage(c, {
    title: "Sign in",
    body: (
      <div class="center">
        <Island of={LoginForm} props={{ next }} />
      </div>
    ),
  });
});

authPages.get("/setup", async (c) => {
  if (!await setupRequired(c.get("deps").db)) return c.redirect("/login", 303);
  return renderPage(c, {
    title: "Set up",
    body: (
      <div class="center">
        <Island of={SetupForm} props={{ minPassword: MIN_PASSWORD_LENGTH }} />
      </div>
    ),
  });
});
