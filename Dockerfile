# syntax=docker/dockerfile:1
#
# Switchboard node image.
#
#   docker build -t switchboard .
#   docker run --rm -p 8080:8080 -e JWT_SECRET=... switchboard            # one node, in-memory bus
#   docker run --rm switchboard token --user alice                          # any CLI command (needs JWT_SECRET)
#
# node:20-bookworm-slim, not Alpine: the uWebSockets.js binary is built
# against glibc. test/unit/deploy-files.test.ts keeps the points below in
# step (Debian 12 has no hadolint; that test is the check).

# ---- build: every dependency, the TypeScript compiler, `npm run build` ----
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# What the build reads (.dockerignore keeps out node_modules, dist, tests,
# deploy files and anything secret).
COPY . .
RUN npm run build

# ---- runtime: production dependencies, the compiled code, nothing else ----
FROM node:20-bookworm-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# uWebSockets.js ships its binary for every platform and Node ABI (~110 MB):
# keep this image's one, and fail the build unless it loads natively
# (Switchboard refuses the package's slow JavaScript fallback).
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force \
 && keep="$(node -p '`uws_${process.platform}_${process.arch}_${process.versions.modules}.node`')" \
 && find node_modules/uWebSockets.js -name 'uws_*.node' ! -name "$keep" -delete \
 && node -e "process.exit(require('uWebSockets.js').App.toString().includes('[native code]') ? 0 : 1)"
# dist/ holds the compiled code and the Lua scripts it reads (scripts/copy-assets.mjs),
# and nothing else (test/ and bench/ are not in the build context); public/
# holds the demo page (read from ../../public relative to dist/src).
COPY --from=build /app/dist ./dist
COPY --from=build /app/public ./public

# --max-semi-space-size=8: the young-generation cap of src/cli/node-flags.ts
# (~1.7 KB instead of ~2.7 KB per idle connection).
ENV NODE_OPTIONS=--max-semi-space-size=8
# PORT (default 8080) and every other setting come from the environment; set
# PORT rather than `serve --port`, so that the health check below follows.
EXPOSE 8080

# The files stay root-owned and read-only to the process; it writes nothing
# (logs go to stdout), so the container also runs with a read-only root.
USER node

# /live answers 200 while the event loop runs. No curl in the slim image:
# Node itself asks 127.0.0.1 (which the default HOST, 0.0.0.0, covers), over
# https when TLS_CERT_FILE is set; the node's own certificate is not checked
# (it names the service, not 127.0.0.1), as this only asks whether it is alive.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["node", "-e", "const s=!!process.env.TLS_CERT_FILE;require(s?'https':'http').get({host:'127.0.0.1',port:process.env.PORT||8080,path:'/live',rejectUnauthorized:false,timeout:2500},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]

ENTRYPOINT ["node", "dist/src/cli/index.js"]
CMD ["serve"]
