/**
 * Names of things: blob keys on storage nodes and public file ids.
 * Keys are the only user-influenced strings that reach a node's file system,
 * so the charset is closed and "." / ".." are refused outright.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';

const KEY = /^[A-Za-z0-9._-]{1,160}$/;

export function isValidKey(key: string): boolean {
  return KEY.test(key) && key !== '.' && key !== '..';
}

/** 128 random bits, base64url: 22 characters, unguessable, valid as a blob key. */
export function newFileId(): string {
  return randomBytes(16).toString('base64url');
}

/** A public file id: what requests are checked with and what /openapi.json documents. */
export const FILE_ID_SCHEMA = z
  .string()
  .regex(/^[A-Za-z0-9_-]{22}$/)
  .meta({
    description: 'A file id: 22 characters of base64url.',
    example: 'JrJ3b1Z0RkqY0cY3Gq5mNw',
  });

export function isValidFileId(id: string): boolean {
  return FILE_ID_SCHEMA.safeParse(id).success;
}

/** The blob key of a file's original bytes, or of one of its variants (`<id>.thumb`). */
export function blobKey(fileId: string, variant?: string): string {
  return variant ? `${fileId}.${variant}` : fileId;
}

export const SHA256_HEX = /^[0-9a-f]{64}$/;

/** The file a blob key belongs to (`<id>` or `<id>.<variant>`). */
export function fileIdOf(key: string): string {
  return key.split('.')[0]!;
}
