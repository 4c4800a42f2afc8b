/**
 * `/system` (admins only; a trader gets the 404 page): the readiness probes (re-checked every
 * 10 s), this instance (version, environment, uptime, cluster mode, memory), the supervised
 * actors and their mailboxes, the durable queue, the dashboard's WebSockets, and the circuit
 * breaker and kill switch of every broker account.
 */
import { Hono } from "hono";
import { Island } from "../../components/Island.tsx";
import PageRefresh from "../../islands/PageRefresh.tsx";
import { PageHeader } from "../../components/Layout.tsx";
import { getGlobalKillSwitch } from "../../db/accounts.ts";
import { allAccounts } from "../../db/system.ts";
import type { HubStats } from "../../actors/hub.ts";
import SystemHealth from "../../islands/SystemHealth.tsx";
import { accountKind, formatNumber } from "../../islands/_client/format.ts";
import { checkReadiness } from "../../lib/health.ts";
import type { AppEnv } from "../_env.ts";
import { renderPage, userPage } from "./_page.tsx";

/** How long a probe may take here (as on /health/ready). */
const PROBE_TIMEOUT_MS = 2_000;

/** The system page. */
export const systemPage = new Hono<AppEnv>();

/** "3 d 4 h", "5 h 2 min", "42 s". */
export function formatUptime(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3_600);
  const m = Math.floor((seconds % 3_600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${Math.floor(seconds % 60)} s`;
  return `${Math.floor(seconds)} s`;
}

function mib(bytes: number): string {
  return `${(bytes / 1_048_576).toFixed(1)} MiB`;
}

interface ActorRow {
  id: string;
  state: string;
  restarts: number;
  lastError?: string;
  startedAt?: number;
}

interface ExecutorRow {
  accountId: string;
  alias: string;
  broker: string;
  breaker: string;
  openOrders: number;
}

/** A `details()` field as an array of objects, or empty when it is not one. */
function rows<T>(value: unknown): T[] {
  return Array.isArray(value) ? value as T[] : [];
}

/** Seconds between refreshes of the page's figures: `?refresh=N` (2–300), else 10. */
export function refreshSeconds(query: string | undefined): number {
  const n = Number(query);
  return Number.isInteger(n) && n >= 2 && n <= 300 ? n : 10;
}

systemPage.get(
  "/system",
  userPage(async (c, { viewer }) => {
    const deps = c.get("deps");
    const { db, config, clock } = deps;
    const [report, details, accounts, global, hub] = await Promise.all([
      checkReadiness(deps.probes, PROBE_TIMEOUT_MS),
      (deps.details?.() ?? Promise.resolve<Record<string, unknown>>({})).catch((
        e,
      ): Record<string, unknown> => ({
        error: String(e),
      })),
      allAccounts(db),
      getGlobalKillSwitch(db),
      deps.hub
        ? deps.hub.ask<HubStats>((reply) => ({ type: "stats", reply }), { timeoutMs: 1_000 })
          .catch(() => null)
        : Promise.resolve(null),
    ]);
    const breakers = await Promise.all(accounts.map((a) => deps.breakerState(a.id)));
    const actors = rows<ActorRow>(details.actors);
    const executors = rows<ExecutorRow>(details.executors);
    const mailboxes = (details.mailboxes ?? {}) as Record<string, number>;
    const queue = details.queue as
      | { pending?: number; deadLetters?: number; error?: string }
      | undefined;
    const aliasOf = new Map(accounts.map((a) => [a.id, `${a.owner} / ${a.alias}`]));
    const memory = Deno.memoryUsage();
    const uptime = Math.round((clock.now() - deps.startedAt) / 1000);
    const openBreakers = accounts.filter((_, i) => breakers[i] !== "closed").length;

    return renderPage(c, {
      title: "System",
      active: "system",
      viewer,
      body: (
        <>
          <PageHeader
            title="System"
            lead="This instance: its probes, actors, queue, live connections and every account's breaker."
          />
          <Island
            of={PageRefresh}
            props={{
              region: "system",
              everySeconds: refreshSeconds(c.req.query("refresh")),
              zone: viewer.zone,
              renderedAt: new Date(clock.now()).toISOString(),
            }}
          />
          {global && (
            <p class="banner danger" role="alert">
              The global kill switch is on: every signal of every user is rejected.
            </p>
          )}
          <Island
            of={SystemHealth}
            props={{
              status: report.status,
              checks: report.checks,
              checkedAt: new Date(clock.now()).toISOString(),
              zone: viewer.zone,
              everySeconds: 10,
            }}
          />
          <div data-refresh-region="system">
            <div class="grid accounts">
              <section class="card stat" aria-labelledby="instance">
                <h2 id="instance">Instance</h2>
                <dl>
                  <div>
                    <dt>Version</dt>
                    <dd data-version>{config.version}</dd>
                  </div>
                  <div>
                    <dt>Environment</dt>
                    <dd data-environment>{config.env}</dd>
                  </div>
                  <div>
                    <dt>Uptime</dt>
                    <dd data-uptime={uptime}>{formatUptime(uptime)}</dd>
                  </div>
                  <div>
                    <dt>Database</dt>
                    <dd>{db.engine}</dd>
                  </div>
                  <div>
                    <dt>Cluster</dt>
                    <dd data-cluster={config.cluster ? "on" : "off"}>
                      {config.cluster ? `on · ${config.instanceId}` : "single instance"}
                    </dd>
                  </div>
                  <div>
                    <dt>Memory (RSS)</dt>
                    <dd>{mib(memory.rss)}</dd>
                  </div>
                </dl>
              </section>
              <section class="card stat" aria-labelledby="queue">
                <h2 id="queue">Queue</h2>
                {queue?.error
                  ? <p class="banner danger" role="alert">Cannot read the queue: {queue.error}</p>
                  : (
                    <dl>
                      <div>
                        <dt>Pending</dt>
                        <dd data-queue-pending={queue?.pending ?? ""}>
                          {formatNumber(queue?.pending ?? null)}
                        </dd>
                      </div>
                      <div>
                        <dt>Dead letters</dt>
                        <dd
                          data-queue-dead={queue?.deadLetters ?? ""}
                          class={queue?.deadLetters ? "down" : ""}
                        >
                          {formatNumber(queue?.deadLetters ?? null)}
                        </dd>
                      </div>
                    </dl>
                  )}
              </section>
              <section class="card stat" aria-labelledby="sockets">
                <h2 id="sockets">Live connections</h2>
                {hub
                  ? (
                    <dl>
                      <div>
                        <dt>WebSockets</dt>
                        <dd data-websockets={hub.connections}>{hub.connections}</dd>
                      </div>
                      <div>
                        <dt>Users</dt>
                        <dd>{hub.users}</dd>
                      </div>
                      <div>
                        <dt>Upgrading</dt>
                        <dd>{hub.reserved}</dd>
                      </div>
                    </dl>
                  )
                  : <p class="empty-inline">The WebSocket hub is not running on this instance.</p>}
              </section>
            </div>
            <div class="grid system-tables">
              <section class="card" aria-labelledby="actors">
                <h2 id="actors">Actors</h2>
                {actors.length === 0
                  ? <p class="empty-inline">No supervised actors reported (tests, or a worker).</p>
                  : (
                    <div class="table-wrap">
                      <table class="table">
                        <thead>
                          <tr>
                            <th scope="col">Actor</th>
                            <th scope="col">State</th>
                            <th scope="col" class="num">Restarts</th>
                            <th scope="col" class="num">Mailbox</th>
                            <th scope="col">Last error</th>
                          </tr>
                        </thead>
                        <tbody>
                          {actors.map((a) => (
                            <tr key={a.id} data-actor={a.id} data-state={a.state}>
                              <td>{a.id}</td>
                              <td>
                                <span class={`badge ${a.state === "running" ? "ok" : "failed"}`}>
                                  {a.state}
                                </span>
                              </td>
                              <td class="num">{a.restarts}</td>
                              <td class="num">{mailboxes[a.id] ?? "—"}</td>
                              <td class="reason">{a.lastError ?? ""}</td>
                            </tr>
                          ))}
                        </tbody>
                      </table>
                    </div>
                  )}
                {executors.length > 0 && (
                  <>
                    <h3>Executors</h3>
                    <div class="table-wrap">
                      <table class="table">
                        <thead>
                          <tr>
                            <th scope="col">Account</th>
                            <th scope="col">Broker</th>
                            <th scope="col">Breaker</th>
                            <th scope="col" class="num">Open orders</th>
                            <th scope="col" class="num">Mailbox</th>
                          </tr>
                        </thead>
                        <tbody>
                          {executors.map((e) => (
                            <tr key={e.accountId} data-executor={e.accountId}>
                              <td>{aliasOf.get(e.accountId) ?? e.alias}</td>
                              <td>{e.broker}</td>
                              <td>
                                <span class={`badge breaker-${e.breaker}`}>{e.breaker}</span>
                              </td>
                              <td class="num">{e.openOrders}</td>
                              <td class="num">{mailboxes[e.accountId] ?? "—"}</td>
                            </tr>
                          ))}
                        </tbody>
                      </table>
                    </div>
                  </>
                )}
              </section>
              <section class="card" aria-labelledby="breakers">
                <div class="card-title">
                  <h2 id="breakers">Circuit breakers</h2>
                  <span class={`badge ${openBreakers ? "failed" : "ok"}`}>
                    {openBreakers ? `${openBreakers} not closed` : "all closed"}
                  </span>
                </div>
                {accounts.length === 0
                  ? <p class="empty-inline">No broker accounts yet.</p>
                  : (
                    <div class="table-wrap">
                      <table class="table">
                        <thead>
                          <tr>
                            <th scope="col">Owner</th>
                            <th scope="col">Account</th>
                            <th scope="col">Breaker</th>
                            <th scope="col">Kill switch</th>
                          </tr>
                        </thead>
                        <tbody>
                          {accounts.map((a, i) => (
                            <tr key={a.id} data-breaker-account={a.id} data-breaker={breakers[i]}>
                              <td>{a.owner}</td>
                              <td>
                                {a.alias} <span class="muted">{accountKind(a)}</span>
                              </td>
                              <td>
                                <span class={`badge breaker-${breakers[i]}`}>
                                  {breakers[i] === "closed"
                                    ? "closed"
                                    : breakers[i]?.replace("_", " ")}
                                </span>
                              </td>
                              <td>
                                {a.kill_switch
                                  ? <span class="badge rejected">on</span>
                                  : <span class="muted">off</span>}
                              </td>
                            </tr>
                          ))}
                        </tbody>
                      </table>
                    </div>
                  )}
              </section>
            </div>
          </div>
        </>
      ),
    });
  }, { admin: true }),
);
