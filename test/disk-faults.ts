/** Damage done to files on disk the way a failing disk would, for tests of checksums. */
import { open } from 'node:fs/promises';

/** Flips one bit of the byte at offset `at` of the file at `path`, in place. */
export async function flipByte(path: string, at: number): Promise<void> {
  const file = await open(path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, at);
    byte[0]! ^= 0x01;
    await file.write(byte, 0, 1, at);
  } finally {
    await file.close();
  }
}
