# One image for every Trove service; docker-compose.yml picks the service by its command.
#   docker build -t trove .
#   docker run --rm trove node dist/storage-node/main.js --id node1

# Build: all dependencies (native better-sqlite3 and sharp included), then dist/.
FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# Runtime: production dependencies and dist/ only, as the unprivileged `node` user.
FROM node:20-bookworm-slim
ENV NODE_ENV=production STORAGE_DIR=/cluster
WORKDIR /app
COPY --from=build --chown=root:root /app/package.json ./
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
# Owned by node so fresh named volumes mounted here are writable: /cluster is STORAGE_DIR
# (secret, pid files, spool; SQLite metadata only without DATABASE_URL), /data is one
# storage node's disk.
RUN mkdir -p /cluster /data && chown node:node /cluster /data
USER node
EXPOSE 8080
CMD ["node", "dist/gateway/main.js"]
