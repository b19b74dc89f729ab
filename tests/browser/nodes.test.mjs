// Headless-browser test of the Admin page's tree of nodes, with real servers: a parent on
// HTTPS (self-signed) whose admin adds a child node in the page and copies its join token,
// a child started with that token, both pages showing the link up, and the child removed
// in the page, after which the child's page shows its parent refusing it. A server on
// plain HTTP says in the page why it cannot take children.
//
//   node tests/browser/nodes.test.mjs
//
// Env: SERVER_BIN (default target/debug/xaso), CHROMIUM (default /usr/bin/chromium).

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { expectText, runner, signIn, sleep, startCamera, startXaso, summary } from './lib.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = path.join(ROOT, 'tests', 'output', 'browser');
const BIN = path.resolve(ROOT, process.env.SERVER_BIN || 'target/debug/xaso');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PASSWORD = 'browser-test-Admin-7q2w';

const { test, results, setPage } = runner(OUT, ROOT, 'nodes-');
const servers = [];

/** Starts `xaso serve` with `env` (XASO_* variables) and waits until it listens. */
async function startServer(name, env, tls) {
  const s = await startXaso({ bin: BIN, out: OUT, log: `nodes-${name}.log`, password: PASSWORD, env, tls });
  servers.push(s);
  return s;
}

async function adminPage(browser, base) {
  const page = await signIn(browser, base, PASSWORD, 'nav-admin');
  await page.getByTestId('nav-admin').click();
  await page.getByTestId('nodes-card').waitFor();
  return page;
}

async function main() {
  await mkdir(OUT, { recursive: true });
  let browser = null;
  let camera = null;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      chromiumSandbox: false,
      args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    camera = await startCamera(ROOT, OUT, ['--video', 'h264', '--gop', '25', '--bitrate', '600']);
    const parent = await startServer('parent', {}, true);
    const pp = await adminPage(browser, parent.base);
    setPage(pp);
    let token = null;

    await test('a parent admin adds a child node and is shown its join token once', async () => {
      await expectText(pp.getByTestId('nodes-no-parent'), 'không có cấp trên');
      await expectText(pp.getByTestId('nodes-empty'), 'Chưa có cấp dưới');
      await pp.getByTestId('node-add-name').fill('xa-tan-lap');
      await pp.getByTestId('node-add-level').fill('commune');
      await pp.getByTestId('node-add-submit').click();
      await expectText(pp.getByTestId('nodes-status'), 'Đã thêm cấp dưới xa-tan-lap');
      token = (await pp.getByTestId('node-token').innerText()).trim();
      assert.match(token, /^xn1\.[A-Za-z0-9_-]{86}$/);
      await expectText(pp.getByTestId('node-state-xa-tan-lap'), 'Mất kết nối');
      await pp.screenshot({ path: path.join(OUT, 'nodes-added.png'), fullPage: true });
    });

    const child = await startServer('child', {
      XASO_PARENT__URL: parent.base, XASO_PARENT__TOKEN: token || 'xn1.none', XASO_RECORDING__SEGMENT_SECS: '4',
    }, false);
    const cp = await adminPage(browser, child.base);

    await test('the child links up and both Admin pages show the link', async () => {
      // the parent's page refreshes itself every 5 s
      await expectText(pp.getByTestId('node-state-xa-tan-lap'), 'Đang nối', 15_000);
      await expectText(pp.getByTestId('node-row-xa-tan-lap'), 'trễ khứ hồi');
      await expectText(cp.getByTestId('nodes-parent-state'), 'Đang nối', 15_000);
      await expectText(cp.getByTestId('nodes-parent'), 'xa-tan-lap (cấp commune)');
      await pp.screenshot({ path: path.join(OUT, 'nodes-linked.png'), fullPage: true });
    });

    await test("the child's camera is listed on the parent's Admin page, managed at the child", async () => {
      const res = await cp.request.post('/api/cameras', { data: { name: 'Cổng UBND xã', url: camera.url, record: true } });
      assert.equal(res.status(), 201);
      // the parent's camera table is read when the page loads
      let remote = null;
      const deadline = Date.now() + 10_000;
      while (!remote) {
        remote = (await (await pp.request.get('/api/cameras')).json()).find((c) => c.origin === 'remote');
        if (!remote && Date.now() > deadline) throw new Error('the child\'s camera was not listed at the parent');
        if (!remote) await sleep(100);
      }
      assert.equal(remote.node, 'xa-tan-lap');
      await pp.reload();
      await pp.getByTestId('nodes-card').waitFor();
      await expectText(pp.getByTestId(`camera-origin-${remote.id}`), 'Cấp dưới: xa-tan-lap');
      await expectText(pp.getByTestId(`camera-locked-${remote.id}`), 'Quản lý tại xa-tan-lap');
      assert.equal(await pp.getByTestId(`camera-edit-${remote.id}`).count(), 0);
      // grants name it with its node
      await expectText(pp.locator('label', { has: pp.getByTestId(`grant-admin-${remote.id}`) }), 'xa-tan-lap / Cổng UBND xã');
      await pp.screenshot({ path: path.join(OUT, 'nodes-remote-camera.png'), fullPage: true });
    });

    await test('a whole child node is granted in the page, and its cameras are the operator\'s', async () => {
      const op = { username: 'cong-an-huyen', password: 'Operator-pass-9x3k' };
      let res = await pp.request.post('/api/users', { data: { ...op, role: 'operator' } });
      assert.equal(res.status(), 201);
      await pp.reload();
      await pp.getByTestId('nodes-card').waitFor();
      const grant = pp.getByTestId(`grant-${op.username}-node-xa-tan-lap`);
      await expectText(pp.locator('label', { has: grant }), 'Toàn bộ xa-tan-lap');
      assert.equal(await grant.isChecked(), false);
      await grant.check();
      await pp.getByTestId(`grants-save-${op.username}`).click();
      await expectText(pp.getByTestId('users-status'), op.username);
      // the table was drawn again from the server's answer
      assert.equal(await pp.getByTestId(`grant-${op.username}-node-xa-tan-lap`).isChecked(), true);
      const ctx = await browser.newContext({ baseURL: parent.base, ignoreHTTPSErrors: true });
      try {
        res = await ctx.request.post('/api/login', { data: op });
        assert.equal(res.status(), 200);
        const cams = await (await ctx.request.get('/api/cameras')).json();
        assert.deepEqual(cams.map((c) => [c.node, c.name]), [['xa-tan-lap', 'Cổng UBND xã']]);
      } finally {
        await ctx.close();
      }
    });

    await test("the child's camera plays on the parent's Live page, relayed over the link", async () => {
      const remote = (await (await pp.request.get('/api/cameras')).json()).find((c) => c.origin === 'remote');
      const t0 = Date.now();
      await pp.getByTestId('nav-live').click();
      await expectText(pp.getByTestId(`camera-row-${remote.id}`), 'xa-tan-lap / Cổng UBND xã');
      let tiles = [];
      for (;;) {
        tiles = await pp.evaluate(() => (window.xasoLive ? window.xasoLive.tiles() : []));
        const tile = tiles.find((t) => t.cameraId === remote.id);
        if (tile && tile.framesDecoded > 0) break;
        if (Date.now() - t0 > 20_000) throw new Error(`not playing within 20 s: ${JSON.stringify(tiles)}`);
        await sleep(100);
      }
      console.log(`     first frame of the child's camera on the parent's Live page ${Date.now() - t0} ms after the click`);
      const frames = async () => (await pp.evaluate(() => window.xasoLive.tiles()))
        .find((t) => t.cameraId === remote.id).framesDecoded;
      const before = await frames();
      await sleep(2_000);
      const after = await frames();
      assert.ok(after > before + 30, `frames keep coming: ${before} -> ${after}`);
      const nodes = await (await pp.request.get('/api/nodes')).json();
      assert.equal(nodes.children[0].streams_received, 1, JSON.stringify(nodes.children[0]));
      await pp.screenshot({ path: path.join(OUT, 'nodes-remote-live.png'), fullPage: true });
      await pp.getByTestId('nav-admin').click();
      await pp.getByTestId('nodes-card').waitFor();
    });

    await test("the child's recording plays on the parent's Recordings page, read over the link", async () => {
      const remote = (await (await pp.request.get('/api/cameras')).json()).find((c) => c.origin === 'remote');
      // footage of at least 6 s at the child, as the parent lists it
      let span = null;
      const deadline = Date.now() + 30_000;
      while (!span) {
        const end = new Date().toISOString();
        const start = new Date(Date.now() - 600_000).toISOString();
        const body = await (await pp.request.get(`/api/cameras/${remote.id}/recordings?start=${start}&end=${end}`)).json();
        const s = (body.spans || []).map((x) => ({ start: Date.parse(x.start), end: Date.parse(x.end) })).find((x) => x.end - x.start >= 6_000);
        if (s) span = s;
        else if (Date.now() > deadline) throw new Error(`no span of 6 s at the parent: ${JSON.stringify(body)}`);
        else await sleep(500);
      }
      await pp.getByTestId('nav-recordings').click();
      await pp.getByTestId('rec-camera').waitFor();
      await expectText(pp.getByTestId('rec-camera'), 'xa-tan-lap / Cổng UBND xã');
      await pp.getByTestId('rec-camera').selectOption(String(remote.id));
      const timeline = pp.getByTestId('rec-timeline');
      await timeline.getByTestId('rec-span').first().waitFor();
      await pp.getByTestId('rec-zoom').click();
      const viewStart = Number(await timeline.getAttribute('data-view-start'));
      const viewEnd = Number(await timeline.getAttribute('data-view-end'));
      const target = span.start + 2_000;
      const box = await timeline.boundingBox();
      await timeline.click({ position: { x: ((target - viewStart) / (viewEnd - viewStart)) * box.width, y: 12 } });
      const t0 = Date.now();
      let last = null;
      for (;;) {
        last = await pp.evaluate(() => {
          const v = document.querySelector('[data-testid=rec-video]');
          return { time: v.currentTime, src: v.currentSrc, error: v.error && `${v.error.code} ${v.error.message}` };
        });
        assert.equal(last.error, null, `video error on ${last.src}`);
        if (last.time > 1.0) break;
        if (Date.now() - t0 > 10_000) throw new Error(`the remote recording did not play within 10 s: ${JSON.stringify(last)}`);
        await sleep(100);
      }
      assert.ok(last.src.includes(`/api/cameras/${remote.id}/playback.mp4?`), last.src);
      await pp.screenshot({ path: path.join(OUT, 'nodes-remote-recording.png'), fullPage: true });
      const audit = await (await pp.request.get('/api/audit?action=footage.playback')).json();
      assert.ok(audit.entries.some((e) => e.camera_id === remote.id && e.detail && e.detail.node === 'xa-tan-lap'), JSON.stringify(audit.entries));
      await pp.getByTestId('nav-admin').click();
      await pp.getByTestId('nodes-card').waitFor();
    });

    await test('removing the child in the page cuts its link, and the child shows why', async () => {
      await pp.getByTestId('node-remove-xa-tan-lap').click();
      await expectText(pp.getByTestId('nodes-status'), 'Đã gỡ bỏ cấp dưới xa-tan-lap');
      await pp.getByTestId('nodes-empty').waitFor();
      await expectText(cp.getByTestId('nodes-parent-state'), 'Bị từ chối', 15_000);
      await expectText(cp.getByTestId('nodes-parent-error'), 'removed');
      await cp.screenshot({ path: path.join(OUT, 'nodes-child-refused.png'), fullPage: true });
    });

    await test('a server on plain HTTP says why it cannot take child nodes', async () => {
      setPage(cp);
      await cp.getByTestId('node-add-name').fill('thon-1');
      await cp.getByTestId('node-add-level').fill('village');
      await cp.getByTestId('node-add-submit').click();
      await expectText(cp.getByTestId('nodes-status'), 'tls = "self-signed"');
      assert.equal(await cp.getByTestId('nodes-table').count(), 0);
    });
  } catch (err) {
    results.failed += 1;
    results.failures.push(`CRASH ${err.message}`);
    console.log(`CRASH ${err.stack || err}`);
  } finally {
    if (browser) await browser.close().catch(() => {});
    for (const s of servers) await s.stop();
    if (camera) camera.child.kill('SIGTERM');
  }
  summary(results);
  process.exit(results.failed ? 1 : 0);
}

main();
