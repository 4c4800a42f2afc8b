# syntax=docker/dockerfile:1
#
# trendedge: one Deno process serving http://0.0.0.0:8000, its data under /app/data.
#
#   docker build -t trendedge .
#   docker run -p 8000:8000 -v trendedge-data:/app/data --env-file .env trendedge
#
# The base is Deno's official image, Debian flavour, pinned to the Deno release that CI and
# development use (2.9.6). Keep it on the 2.9 line that CI installs (npm i -g deno@2.9).
ARG DENO_IMAGE=denoland/deno:debian-2.9.6

# 1. Dependencies: this layer changes only when deno.json or deno.lock do. --frozen fails the
#    build when the lockfile is out of date instead of resolving new versions.
FROM ${DENO_IMAGE} AS deps
WORKDIR /app
COPY deno.json deno.lock ./
RUN deno install --frozen

# 2. The application, with every module the service, the migrations and the operator tasks
#    load cached — still against the frozen lockfile.
FROM deps AS build
COPY . .
RUN deno install --frozen --entrypoint main.ts db/migrate_cli.ts tasks/*.ts
# The dashboard's islands, bundled once here (static/build/): the server uses this build, whose
# manifest matches the sources, instead of bundling at every start.
RUN deno task build

# 3. Runtime: the cache and the source, read-only to the app; only /app/data is writable, by the
#    image's unprivileged `deno` user (uid 1993). Defaults to production: it refuses to start
#    without JWT_SECRET, ENCRYPTION_KEY and OPERATOR_API_KEY, and does not migrate on start
#    (run `deno task migrate up` first, or set MIGRATE_ON_START=true on a single instance).
FROM ${DENO_IMAGE} AS runtime
ENV APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/app/data \
    DENO_NO_UPDATE_CHECK=1
WORKDIR /app
COPY --from=build --chown=deno:deno /deno-dir/ /deno-dir/
COPY --from=build /app/ /app/
RUN mkdir -p /app/data && chown deno:deno /app/data
USER deno
EXPOSE 8000

# Liveness, without curl: a small Deno script fetches /health on PORT (tasks/healthcheck.ts).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["deno", "run", "--frozen", "--cached-only", "--allow-net", "--allow-env", "--allow-read=.env", "tasks/healthcheck.ts"]

# SIGTERM starts the graceful shutdown (within SHUTDOWN_TIMEOUT_MS); the base image's tini
# forwards it. The same command and permissions as `deno task start`, never fetching code.
STOPSIGNAL SIGTERM
CMD ["deno", "run", "--frozen", "--cached-only", "--allow-net", "--allow-env", "--allow-read", "--allow-write", "--allow-sys", "main.ts"]
