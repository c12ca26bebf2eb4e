/**
 * Who a request comes from, as the per-IP rate limits see it.
 *
 * The address is the socket's peer. With TRUST_PROXY on (ngrok, nginx in
 * front), it is the right-most X-Forwarded-For entry that is not a loopback
 * address: each proxy appends the address it received the request from, so
 * the right-most entries are the ones our own proxies wrote, and a client's
 * forged entries sit to their left. Loopback hops are proxies on this machine
 * (the ngrok agent, a local nginx), so they are skipped. As in public-url.ts,
 * TRUST_PROXY means "whoever connects to the gateway is a proxy we trust".
 *
 * An IPv6 client is keyed by its /64: one home or phone usually gets a whole
 * /64 and can pick any address in it, so a per-address key would not hold.
 */
import { isIP } from 'node:net';

export interface ClientAddress {
  /** What limits are counted under: an IPv4 address, or an IPv6 network such as `2001:db8:0:1::/64`. */
  key: string;
  /** 127.0.0.0/8 or ::1: the machine itself (or a proxy on it whose forwarded address was not trusted). */
  loopback: boolean;
}

/**
 * The client behind a request, or undefined when the address is unknown
 * (no socket, as in `app.request()` tests) or not an IP address.
 */
export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | undefined,
  trustProxy: boolean,
): ClientAddress | undefined {
  const direct = peer === undefined ? undefined : parseAddress(peer);
  if (!trustProxy || !direct || !forwardedFor) return direct;
  const hops = forwardedFor.split(',').map((h) => h.trim());
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = parseAddress(hops[i]!);
    // Our proxy wrote this entry, so garbage here is its fault: count the proxy itself.
    if (!hop) return direct;
    if (!hop.loopback) return hop;
  }
  return direct; // every hop is on this machine
}

/**
 * Why the listen address undoes TRUST_PROXY's premise, or undefined: on an
 * address other machines reach, anyone can skip the proxy and write their own
 * X-Forwarded-For (a client address that dodges rate limits) and
 * X-Forwarded-Host (the host written into share links).
 */
export function trustProxyHazard(host: string, trustProxy: boolean): string | undefined {
  if (!trustProxy || parseAddress(host)?.loopback || host === 'localhost') return undefined;
  return (
    `TRUST_PROXY is on while the gateway listens on ${host}: clients that reach it directly, ` +
    'not through the proxy, choose their own address and the host in share links. ' +
    'Listen on 127.0.0.1 (HOST) behind a proxy on this machine, or firewall the port.'
  );
}

/** Parses `1.2.3.4`, `::ffff:1.2.3.4`, `[2001:db8::1]:443`, `fe80::1%eth0`, `1.2.3.4:80`. */
export function parseAddress(text: string): ClientAddress | undefined {
  const ip = stripPortAndZone(text.trim());
  switch (isIP(ip)) {
    case 4:
      return ipv4(ip);
    case 6: {
      const groups = ipv6Groups(ip);
      // IPv4-mapped (::ffff:a.b.c.d): the IPv4 client a dual-stack socket reports.
      if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff)
        return ipv4(
          `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`,
        );
      const loopback = groups.slice(0, 7).every((g) => g === 0) && groups[7] === 1;
      return {
        key: `${groups
          .slice(0, 4)
          .map((g) => g.toString(16))
          .join(':')}::/64`,
        loopback,
      };
    }
    default:
      return undefined;
  }
}

function ipv4(ip: string): ClientAddress {
  // Dotted quads have no leading zeros once isIP accepted them, so the text is canonical.
  return { key: ip, loopback: ip.startsWith('127.') };
}

function stripPortAndZone(text: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  if (bracketed) return bracketed[1]!.replace(/%.*$/, '');
  const v4WithPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(text);
  if (v4WithPort) return v4WithPort[1]!;
  return text.replace(/%.*$/, '');
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, an IPv4 tail turned into two groups). */
function ipv6Groups(ip: string): number[] {
  const hex = ip
    .toLowerCase()
    .replace(
      /(\d+)\.(\d+)\.(\d+)\.(\d+)$/,
      (_, a, b, c, d) => `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`,
    );
  const [head, tail] = hex.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((g) => parseInt(g, 16));
}
