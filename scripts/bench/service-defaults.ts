/**
 * The settings Trove's services run with when none are given, read from
 * shared/config.ts rather than copied: the gateway's port, the node layout,
 * the limits a figure or an in-process reference must match.
 */
import { loadGatewayConfig, loadWorkerConfig } from '../../shared/config.js';

export const GATEWAY_DEFAULTS = loadGatewayConfig({});
export const WORKER_DEFAULTS = loadWorkerConfig({});
