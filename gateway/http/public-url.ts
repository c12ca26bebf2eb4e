/**
 * The absolute base URL clients should use for links we hand out: PUBLIC_URL
 * when set; else X-Forwarded-Proto/Host when TRUST_PROXY is on (ngrok,
 * nginx); else the request's own Host.
 */
import type { GatewayConfig } from '../../shared/config.js';

/** PUBLIC_URL and TRUST_PROXY: the `urls` section of the configuration. */
export type PublicUrlConfig = GatewayConfig['urls'];

const HOST = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

export function baseUrl(
  headers: (name: string) => string | undefined,
  requestUrl: string,
  config: PublicUrlConfig,
): string {
  if (config.publicUrl) return config.publicUrl;
  const own = new URL(requestUrl);
  let proto = own.protocol.replace(':', '');
  let host = headers('host') ?? own.host;
  if (config.trustProxy) {
    const fProto = headers('x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase();
    const fHost = headers('x-forwarded-host')?.split(',')[0]?.trim();
    if (fProto === 'http' || fProto === 'https') proto = fProto;
    if (fHost) host = fHost;
  }
  // A Host header is client input: refuse anything that is not a plain host[:port].
  if (!HOST.test(host)) host = own.host;
  return `${proto}://${host}`;
}
