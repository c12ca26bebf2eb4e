/**
 * Signed upload links (a "reverse share", what presigned URLs give elsewhere):
 * an admin mints a link good for `max_files` files until `expires_in` seconds
 * from now, and whoever holds it can upload through it without any token:
 * `POST /upload?link=<token>`, `PUT /upload/<name>?link=<token>`, or the page
 * at `GET /u/<token>`.
 *
 * The token itself is stateless (upload-link-token.ts); the number of files
 * it uploaded is a Redis counter per link, shared by every gateway of the
 * cluster and changed only by Lua scripts, so two gateways cannot both take
 * the last file. A slot is taken before a file's bytes are stored, and given
 * back when the request does not end in a 201 (it stores all its files or none).
 * Each file records the link it came through, so when Redis loses a counter
 * (a restart without persistence) it is rebuilt from the metadata, not reset.
 */
import type { HttpBindings } from '@hono/node-server';
import type { Context } from 'hono';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import {
  BadRequestError,
  ForbiddenError,
  TroveError,
  UnavailableError,
} from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { MetadataStore } from '../../shared/metadata-store.js';
import { PAGE_HEADERS } from '../http/html.js';
import { baseUrl, type PublicUrlConfig } from '../http/public-url.js';
import { errorPageHtml } from '../download/share-page.js';
import {
  newUploadLink,
  signUploadLink,
  verifyUploadLink,
  type UploadLink,
} from './upload-link-token.js';
import type { UploadLimits } from './upload-options.js';

/** The longest an upload link may live: 30 days. */
export const MAX_LINK_SECONDS = 30 * 86400;
/** The most files one link may upload. */
export const MAX_LINK_FILES = 10_000;

/** Body of `POST /admin/upload-links`. */
export const uploadLinkRequest = z
  .object({
    expires_in: z
      .number()
      .int()
      .min(1)
      .max(MAX_LINK_SECONDS)
      .meta({ description: 'Seconds the link works for.', example: 86400 }),
    max_files: z
      .number()
      .int()
      .min(1)
      .max(MAX_LINK_FILES)
      .meta({ description: 'Files the link may upload in all.', example: 5 }),
    max_downloads: z.number().int().min(0).optional().meta({
      description:
        'max_downloads of every file uploaded through the link (0 = unlimited); else the uploader chooses.',
      example: 3,
    }),
    ttl_seconds: z.number().int().min(1).optional().meta({
      description: 'Lifetime of every file uploaded through the link; else the uploader chooses.',
      example: 3600,
    }),
  })
  .strict()
  .meta({ id: 'UploadLinkRequest' });
export type UploadLinkRequest = z.infer<typeof uploadLinkRequest>;

/** Answer of `POST /admin/upload-links`. */
export const uploadLinkAnswer = z
  .object({
    url: z.string().meta({ description: 'The page to hand out: uploads from a browser.' }),
    upload_url: z.string().meta({
      description: 'POST multipart here (curl -F file=@…), or PUT /upload/<name>?link=<token>.',
    }),
    token: z.string().meta({ description: 'The signed token, the `link` query parameter.' }),
    expires_at: z.string().meta({ description: 'ISO 8601.' }),
    max_files: z.number().int(),
    max_downloads: z.number().int().nullable(),
    ttl_seconds: z.number().int().nullable(),
  })
  .meta({ id: 'UploadLink' });

/**
 * take(): ARGV max, expiry (Unix ms). Returns the files used now, -1 when none
 * is left, or -2 when the counter is not there (a link's first use, or Redis
 * lost it): it must be seeded from the metadata first, never restarted at 0.
 */
const TAKE_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if not current then return -2 end
local used = tonumber(current)
if used >= tonumber(ARGV[1]) then return -1 end
used = redis.call('INCR', KEYS[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return used`;

/** giveBack(): ARGV count; never below zero (the key may have expired meanwhile). */
const GIVE_BACK_SCRIPT = `
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local back = math.min(used, tonumber(ARGV[1]))
if back > 0 then redis.call('DECRBY', KEYS[1], back) end
return back`;

/** The cluster's upload links: minting, verifying, and their shared file counters. */
export class UploadLinks {
  constructor(
    private readonly opts: {
      /** uploadLinkKey(cluster secret). */
      key: Buffer;
      redis: Redis;
      /** Where a counter Redis does not have is rebuilt from: the files recorded with the link. */
      store: Pick<MetadataStore, 'countLinkUploads'>;
      /** The cluster's name: prefix of its shared Redis keys. */
      clusterName: string;
      log: Logger;
    },
  ) {}

  mint(req: UploadLinkRequest, now = Date.now()): { token: string; link: UploadLink } {
    // Rounded up to the second: a link never works for less than it was minted for.
    const exp = Math.ceil(now / 1000 + req.expires_in);
    const link = newUploadLink(exp, req.max_files, {
      ...(req.max_downloads !== undefined && { max_downloads: req.max_downloads }),
      ...(req.ttl_seconds !== undefined && { ttl: req.ttl_seconds }),
    });
    return { token: signUploadLink(this.opts.key, link), link };
  }

  /** The link a token carries; 403 when it is not a valid, unexpired upload link. */
  verify(token: string): UploadLink {
    return verifyUploadLink(this.opts.key, token);
  }

  /** A request's use of a link; 403 as verify(). */
  open(token: string): LinkUpload {
    return new LinkUpload(this, this.verify(token));
  }

  private counterKey(link: UploadLink): string {
    return `${this.opts.clusterName}:upload-link:${link.id}:files`;
  }

  /** Takes one file of the link; 403 UPLOAD_LINK_USED_UP when every file is taken. */
  async take(link: UploadLink): Promise<void> {
    const key = this.counterKey(link);
    let used = await this.redisCall(() =>
      this.opts.redis.eval(TAKE_SCRIPT, 1, key, link.files, link.exp * 1000),
    );
    if (used === -2) {
      // Rebuilt from the files recorded with the link. NX: of gateways doing this at once, one
      // sets it. Uploads between their slot and their row (still receiving) are not seen.
      const recorded = await this.opts.store.countLinkUploads(link.id);
      await this.redisCall(() => this.opts.redis.set(key, recorded, 'PXAT', link.exp * 1000, 'NX'));
      used = await this.redisCall(() =>
        this.opts.redis.eval(TAKE_SCRIPT, 1, key, link.files, link.exp * 1000),
      );
    }
    if (used === -1)
      throw new ForbiddenError(
        `this upload link has uploaded all the ${link.files} files it allows`,
        'UPLOAD_LINK_USED_UP',
      );
  }

  private redisCall<T>(call: () => Promise<T>): Promise<T> {
    return call().catch((err: Error) => {
      throw new UnavailableError(`upload links are unavailable (Redis: ${err.message})`);
    });
  }

  /** Returns `count` files to the link (a request that stored nothing). Best effort: logged on failure. */
  async giveBack(link: UploadLink, count: number): Promise<void> {
    await this.opts.redis.eval(GIVE_BACK_SCRIPT, 1, this.counterKey(link), count).catch((err) => {
      this.opts.log.warn(
        { link: link.id, count, err: (err as Error).message },
        'file not given back to upload link',
      );
    });
  }
}

/** One request's use of a link: the files it took, given back if it stores nothing. */
export class LinkUpload {
  private taken = 0;

  constructor(
    private readonly links: UploadLinks,
    readonly link: UploadLink,
  ) {}

  /** The upload options the link fixes (they win over the uploader's). */
  get options(): { max_downloads?: number; ttl?: number } {
    return this.link.options;
  }

  /** Takes a file slot; call before the file's bytes are stored. */
  async take(): Promise<void> {
    await this.links.take(this.link);
    this.taken++;
  }

  /** Gives back every slot this request took. */
  async giveBack(): Promise<void> {
    const count = this.taken;
    this.taken = 0;
    if (count > 0) await this.links.giveBack(this.link, count);
  }
}

declare module 'hono' {
  interface ContextVariableMap {
    /** Set by the upload auth middleware when an upload came through a signed link. */
    uploadLink: LinkUpload | undefined;
  }
}

export interface MintDeps {
  links: UploadLinks;
  limits: UploadLimits;
  urls: PublicUrlConfig;
}

/** POST /admin/upload-links: 201 with the link's URLs (see uploadLinkAnswer). */
export function handleMintUploadLink(
  deps: MintDeps,
  c: Context<{ Bindings: HttpBindings }>,
  req: UploadLinkRequest,
) {
  // The same bounds an upload's own options have (they depend on the configuration).
  if (req.max_downloads !== undefined && req.max_downloads > deps.limits.maxDownloadsLimit)
    throw new BadRequestError(
      `max_downloads must be from 0 (unlimited) to ${deps.limits.maxDownloadsLimit}`,
      'INVALID_PARAMETER',
    );
  if (req.ttl_seconds !== undefined && req.ttl_seconds > deps.limits.maxTtlSeconds)
    throw new BadRequestError(
      `ttl_seconds must be from 1 to ${deps.limits.maxTtlSeconds}`,
      'INVALID_PARAMETER',
    );
  const { token, link } = deps.links.mint(req);
  const base = baseUrl((n) => c.req.header(n), c.req.url, deps.urls);
  const answer: z.infer<typeof uploadLinkAnswer> = {
    url: `${base}/u/${token}`,
    upload_url: `${base}/upload?link=${token}`,
    token,
    expires_at: new Date(link.exp * 1000).toISOString(),
    max_files: link.files,
    max_downloads: link.options.max_downloads ?? null,
    ttl_seconds: link.options.ttl ?? null,
  };
  return c.json(answer, 201);
}

/**
 * GET /u/:token: the upload page, in link mode (app.js uploads through the
 * token in its URL); a link that is not valid gets an error page instead.
 */
export function handleUploadLinkPage(
  links: UploadLinks,
  c: Context,
  servePage: () => Response | Promise<Response>,
) {
  try {
    links.verify(c.req.param('token') ?? '');
  } catch (err) {
    if (!(err instanceof TroveError) || err.status !== 403) throw err;
    return c.html(errorPageHtml(err), 403, PAGE_HEADERS);
  }
  return servePage();
}
