import { describe, expect, it } from 'vitest';
import { afterMarkers, grouped } from './s3-multipart-list.js';

const upload = (key: string, uploadId: string) => ({ key, uploadId, bucket: 'b', createdAt: 0 });
const open = [upload('a', 'u1'), upload('a', 'u2'), upload('b/1', 'u3'), upload('b/2', 'u4')];

describe('afterMarkers', () => {
  it('lists everything without a key-marker', () => {
    expect(afterMarkers(open, '', '')).toEqual(open);
  });

  it('skips the key-marker and what comes before it', () => {
    expect(afterMarkers(open, 'a', '').map((u) => u.uploadId)).toEqual(['u3', 'u4']);
  });

  it('continues after the upload-id-marker within its key', () => {
    expect(afterMarkers(open, 'a', 'u1').map((u) => u.uploadId)).toEqual(['u2', 'u3', 'u4']);
  });
});

describe('grouped', () => {
  it('rolls keys with the delimiter past the prefix into one common prefix each', () => {
    expect(grouped(open, '', '/')).toEqual([
      { upload: open[0] },
      { upload: open[1] },
      { prefix: 'b/' },
    ]);
  });

  it('leaves every upload alone without a delimiter', () => {
    expect(grouped(open, 'b/', undefined)).toEqual(open.map((u) => ({ upload: u })));
  });
});
