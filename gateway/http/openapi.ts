/**
 * The OpenAPI 3.1 document of the gateway's public API (served at
 * /openapi.json, shown at /docs). Each room keeps the entries of its routes
 * beside its handlers, in <room>-openapi.ts, built from the zod schemas the
 * handlers validate requests with (upload options, image options, ids, names)
 * and the schemas of the JSON they answer, so the two cannot drift apart; what
 * several rooms share is in api-schemas.ts. This file only assembles them.
 * test/openapi.test.ts checks that every route the gateway serves is here and
 * that every example in it is accepted.
 */
import { createRoute, OpenAPIHono, type RouteConfig } from '@hono/zod-openapi';
import type { GatewayConfig } from '../../shared/config.js';
import { uploadLinkPageRoute, uploadRoutes } from '../upload/upload-openapi.js';
import { resumableRoutes } from '../resumable/resumable-openapi.js';
import { processingRoutes } from '../processing/processing-openapi.js';
import { downloadRoutes, sharePageRoute } from '../download/download-openapi.js';
import { fileRoutes } from '../files/files-openapi.js';
import { clusterRoutes } from '../cluster/cluster-openapi.js';
import { adminRoutes } from './admin-openapi.js';
import { pageHelperRoutes, pageRoutes } from './pages-openapi.js';

/** What the document states about this gateway (its limits show in the schemas). */
export interface ApiDocDeps {
  limits: GatewayConfig['limits'];
  uploads: GatewayConfig['uploads'];
}

/** The whole document, for this gateway's limits. */
export function openApiDocument(deps: ApiDocDeps) {
  const api = new OpenAPIHono();
  api.openAPIRegistry.registerComponent('securitySchemes', 'adminToken', {
    type: 'http',
    scheme: 'bearer',
    description: 'ADMIN_TOKEN: the admin API needs it; without it set, the admin API is off (401).',
  });
  api.openAPIRegistry.registerComponent('securitySchemes', 'metricsToken', {
    type: 'http',
    scheme: 'bearer',
    description: 'METRICS_TOKEN: when the gateway has one, GET /metrics needs it.',
  });
  api.openAPIRegistry.registerComponent('securitySchemes', 'uploadToken', {
    type: 'http',
    scheme: 'bearer',
    description:
      'UPLOAD_TOKEN: when the gateway has one, uploads, /process and /batch need it. Downloads, metadata and pages stay open.',
  });
  // In the order /docs shows them, tag by tag (the tags' order is below).
  const routes: RouteConfig[] = [
    ...uploadRoutes(deps),
    ...resumableRoutes(),
    ...processingRoutes(),
    ...downloadRoutes(),
    ...fileRoutes(),
    ...clusterRoutes(),
    ...adminRoutes(),
    ...pageRoutes(),
    sharePageRoute,
    uploadLinkPageRoute,
    ...pageHelperRoutes(),
  ];
  for (const route of routes) api.openAPIRegistry.registerPath(createRoute(route));
  return api.getOpenAPI31Document({
    openapi: '3.1.0',
    info: {
      title: 'Trove',
      version: '1',
      description:
        'A self-hosted image store. Every error is JSON: {"error":{"code","message"}}. The prose version, with curl commands, is docs/api.md.',
    },
    tags: [
      { name: 'Upload' },
      { name: 'Processing' },
      { name: 'Download' },
      { name: 'Files' },
      { name: 'Cluster' },
      { name: 'Admin' },
      { name: 'Pages' },
    ],
  });
}
