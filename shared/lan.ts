/** The URLs a listener bound to `host` can be reached at from the LAN. */
import { networkInterfaces } from 'node:os';

export function lanUrls(host: string, port: number): string[] {
  if (host !== '0.0.0.0' && host !== '::') return [`http://${host}:${port}`];
  const addresses = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && a.family === 'IPv4' && !a.internal)
    .map((a) => `http://${a!.address}:${port}`);
  return [`http://localhost:${port}`, ...addresses];
}
