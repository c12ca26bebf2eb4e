/**
 * GET /files/:id and DELETE /files/:id, on the gateway app in this process
 * (test/in-process-gateway.ts): the file's JSON view, which never counts, and
 * deletion by the upload's delete token (403 without it, 204, then 410).
 */
import { describe, expect, it } from 'vitest';
import { PHOTO, expectError, gatewaysPerTest } from '../../test/in-process-gateway.js';

const gateway = gatewaysPerTest();

describe('GET /files/:id', () => {
  it('answers the file as the upload did, without its delete token, and never counts', async () => {
    const gw = await gateway();
    const { delete_token, ...uploaded } = await gw.upload(PHOTO, { query: 'max_downloads=2' });
    expect(delete_token).toEqual(expect.any(String));
    // The same replicas, listed by node rather than in chain order.
    const byNode = (r: { node: string }[]) => [...r].sort((a, b) => a.node.localeCompare(b.node));
    for (let i = 0; i < 3; i++) {
      const res = await gw.request(`/files/${uploaded.id}`);
      expect(res.status).toBe(200);
      const view = (await res.json()) as typeof uploaded;
      expect({ ...view, replicas: byNode(view.replicas) }).toEqual({
        ...uploaded,
        replicas: byNode(uploaded.replicas),
      });
    }
    expect(gw.counter.takes).toBe(0);
    expect((await gw.store.getFile(uploaded.id))?.downloadsUsed).toBe(0);
  });

  it('follows the downloads used', async () => {
    const gw = await gateway();
    const file = await gw.upload(PHOTO, { query: 'max_downloads=2' });
    await (await gw.request(`/download/${file.id}`)).arrayBuffer();
    const view = await (await gw.request(`/files/${file.id}`)).json();
    expect(view).toMatchObject({ status: 'active', downloads_used: 1, downloads_left: 1 });
  });

  it('answers 404 FILE_NOT_FOUND for an unknown or malformed id', async () => {
    const gw = await gateway();
    for (const id of ['AAAAAAAAAAAAAAAAAAAAAA', 'nope'])
      await expectError(await gw.request(`/files/${id}`), 404, 'FILE_NOT_FOUND');
  });
});

describe('DELETE /files/:id', () => {
  it('answers 403 without the delete token or with another, and deletes nothing', async () => {
    const gw = await gateway();
    const file = await gw.upload();
    const other = await gw.upload();
    const url = `/files/${file.id}`;
    await expectError(await gw.request(url, { method: 'DELETE' }), 403, 'DELETE_TOKEN_REQUIRED');
    const wrong = await gw.request(url, {
      method: 'DELETE',
      headers: { 'x-delete-token': other.delete_token },
    });
    await expectError(wrong, 403, 'WRONG_DELETE_TOKEN');
    expect((await gw.request(`/download/${file.id}`, { method: 'HEAD' })).status).toBe(200);
  });

  it('deletes with the token (header or query): 204, at once 410 FILE_DELETED, and again 204', async () => {
    const gw = await gateway();
    const file = await gw.upload();
    const before = Date.now();
    const res = await gw.request(`/files/${file.id}`, {
      method: 'DELETE',
      headers: { 'x-delete-token': file.delete_token },
    });
    expect(res.status).toBe(204);
    expect(await res.text()).toBe('');
    await expectError(await gw.request(`/download/${file.id}`), 410, 'FILE_DELETED');
    const view = await (await gw.request(`/files/${file.id}`)).json();
    expect(view).toMatchObject({ status: 'deleted', deleted_at: expect.any(String) });
    // The blobs go through the worker, at once (it keeps its grace for downloads under way).
    const deletes = gw.jobs.published.filter((p) => p.queue === gw.jobs.names.fileDelete);
    expect(deletes.at(-1)).toMatchObject({ body: { fileId: file.id } });
    expect(deletes.at(-1)!.due).toBeGreaterThanOrEqual(before);
    expect(deletes.at(-1)!.due).toBeLessThanOrEqual(Date.now());

    const again = await gw.request(`/files/${file.id}?delete_token=${file.delete_token}`, {
      method: 'DELETE',
    });
    expect(again.status).toBe(204);
  });

  it('answers 404 FILE_NOT_FOUND for an unknown id', async () => {
    const gw = await gateway();
    const res = await gw.request('/files/AAAAAAAAAAAAAAAAAAAAAA', {
      method: 'DELETE',
      headers: { 'x-delete-token': 'anything' },
    });
    await expectError(res, 404, 'FILE_NOT_FOUND');
  });
});
