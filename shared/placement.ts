/**
 * Where an object's replicas go: rendezvous (highest-random-weight) hashing.
 * Every node gets a score from hash(key, node) and the object lives on the
 * highest-scoring ones. Adding or removing a node moves only the objects
 * whose top scores change, and readers rank nodes the same way writers did,
 * so the first node tried is the one most likely to hold the object in its
 * page cache.
 */
import type { NodeAddress } from './config.js';

/**
 * A 32-bit score for (key, node): FNV-1a over both, then murmur3's finalizer
 * so that keys differing in one character get unrelated scores. Not
 * cryptographic, and needs not be: ids are already random; it runs on every
 * request, three times.
 */
export function score(key: string, nodeId: string): number {
  let h = 0x811c9dc5;
  const mix = (text: string) => {
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
  };
  mix(key);
  mix('\0');
  mix(nodeId);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** All nodes, best first, for `key`. */
export function rankNodes<T extends { id: string }>(key: string, nodes: readonly T[]): T[] {
  return nodes
    .map((node) => ({ node, s: score(key, node.id) }))
    .sort((a, b) => b.s - a.s || (a.node.id < b.node.id ? -1 : 1))
    .map((x) => x.node);
}

/** The write chain for `key`: the `copies` best-ranked nodes among `usable`. */
export function writeChain(
  key: string,
  usable: readonly NodeAddress[],
  copies: number,
): NodeAddress[] {
  return rankNodes(key, usable).slice(0, copies);
}
