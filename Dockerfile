# product-classifier: the service with the shipped models.
#
#   docker build -t product-classifier:0.1.0 .
#   docker build --build-arg WITH_TFJS_NODE=true -t product-classifier:0.1.0-tfjs-node .
#   docker run --rm -p 8080:8080 -p 50051:50051 -p 9464:9464 product-classifier:0.1.0
#
# test/e2e/container.test.ts replays these steps outside Docker (the machines
# this project is built on run no Docker engine): keep RUN steps relative to
# WORKDIR and the runtime stage free of RUN, so that replay stays faithful.

ARG NODE_VERSION=24

# ---- build: compile the TypeScript service -----------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
# onnxruntime-node's postinstall would otherwise download CUDA binaries; its
# CPU binaries ship inside the npm package. npm releases that honour
# package.json "allowScripts" skip that script (denied there); others run it,
# and this variable makes it exit at once.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run --silent build:service
# The browser pages (/docs, the try-it page at /): type-checked and bundled
# with esbuild; they share the pure preprocessing steps under src/.
COPY web ./web
COPY scripts/build-web.mjs ./scripts/build-web.mjs
RUN npm run --silent build:web

# ---- deps: production dependencies only ---------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
# true: also install @tensorflow/tfjs-node (native TensorFlow for RUNTIME=tfjs).
# Its install step downloads libtensorflow; where that fails the image is
# still built and TF.js runs on its wasm backend.
ARG WITH_TFJS_NODE=false
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error \
 && if [ "$WITH_TFJS_NODE" = "true" ]; then \
      npm install --no-save --no-audit --no-fund @tensorflow/tfjs-node@4.22.0 \
      || echo "@tensorflow/tfjs-node could not be installed; RUNTIME=tfjs will use the wasm backend"; \
    fi

# ---- runtime: node, production modules, compiled code, pages, protos, API document, models
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    HTTP_PORT=8080 \
    GRPC_PORT=50051 \
    METRICS_PORT=9464
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/web ./dist/web
COPY proto ./proto
COPY api ./api
COPY models ./models
# A numeric non-root user: nothing under /app is writable by it, and the
# Kubernetes manifests run the same uid with a read-only root filesystem.
USER 10001:10001
EXPOSE 8080 50051 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.HTTP_PORT || 8080) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node itself is PID 1 and handles SIGTERM: readiness turns 503, in-flight
# requests finish (DRAIN_TIMEOUT_MS), then it exits 0. Never `npm start`
# here: npm does not pass SIGTERM on to the service.
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/main.js"]
