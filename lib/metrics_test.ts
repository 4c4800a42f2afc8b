import assert from "node:assert/strict";
import { Registry } from "./metrics.ts";

Deno.test("registry renders counters, histograms and gauges in the Prometheus text format", async () => {
  const registry = new Registry();
  const requests = registry.counter("app_requests_total", "Requests");
  const latency = registry.histogram("app_latency_seconds", "Latency", [0.1, 1]);
  registry.gauge("app_queue", "Queue", () => [{ labels: { state: "pending" }, value: 3 }]);
  requests.inc({ route: "/a", status: "200" });
  requests.inc({ status: "200", route: "/a" }); // label order does not matter
  requests.inc({ route: '/b"\\\n', status: "500" }, 2);
  latency.observe({ route: "/a" }, 0.05);
  latency.observe({ route: "/a" }, 0.5);
  latency.observe({ route: "/a" }, 5);
  const text = await registry.render();
  assert.match(text, /# TYPE app_requests_total counter/);
  assert.match(text, /^app_requests_total\{route="\/a",status="200"\} 2$/m);
  assert.match(text, /^app_requests_total\{route="\/b\\"\\\\\\n",status="500"\} 2$/m);
  assert.match(text, /^app_latency_seconds_bucket\{route="\/a",le="0.1"\} 1$/m);
  assert.match(text, /^app_latency_seconds_bucket\{route="\/a",le="1"\} 2$/m);
  assert.match(text, /^app_latency_seconds_bucket\{route="\/a",le="\+Inf"\} 3$/m);
  assert.match(text, /^app_latency_seconds_sum\{route="\/a"\} 5.55$/m);
  assert.match(text, /^app_latency_seconds_count\{route="\/a"\} 3$/m);
  assert.match(text, /# TYPE app_queue gauge\napp_queue\{state="pending"\} 3/);
  assert.match(text, /^trendedge_metrics_collect_errors 0$/m);
  assert.ok(text.endsWith("\n"));
});

Deno.test("a failing gauge is left out of the scrape and counted, the rest still render", async () => {
  const registry = new Registry();
  registry.gauge("broken", "Broken", () => Promise.reject(new Error("database down")));
  registry.gauge("fine", "Fine", () => [{ value: 1 }]);
  const text = await registry.render();
  assert.doesNotMatch(text, /^broken/m);
  assert.match(text, /^fine 1$/m);
  assert.match(text, /^trendedge_metrics_collect_errors 1$/m);
});

Deno.test("registry refuses duplicate and invalid metric names", () => {
  const registry = new Registry();
  registry.counter("a_total", "A");
  assert.throws(() => registry.counter("a_total", "again"), /exists already/);
  assert.throws(() => registry.gauge("a_total", "again", () => []), /exists already/);
  assert.throws(() => registry.counter("bad-name", "B"), /not a valid metric name/);
});
