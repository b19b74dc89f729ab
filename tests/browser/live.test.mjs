// Headless Chromium plays live cameras over WebRTC (WHEP) from the real server, fed by real
// RTSP cameras (GStreamer's RTSP server, tests/support/rtsp_camera.py), not xaso's own
// simulator; and, in a Chromium whose WebRTC may not use UDP, over the MSE fallback.
//
//   node tests/browser/live.test.mjs
//
// Env: SERVER_BIN (default target/debug/xaso), CHROMIUM (default /usr/bin/chromium).
// Output (screenshots, logs, measured times) goes to tests/output/browser/.
// Ends with "N passed, M failed"; exits non-zero on any failure.

import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { freePort, runner, sleep, startCamera as startCamera_, summary } from './lib.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = path.join(ROOT, 'tests', 'output', 'browser');
const BIN = path.resolve(ROOT, process.env.SERVER_BIN || 'target/debug/xaso');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ADMIN = { username: 'admin', password: 'live-test-Admin-7q2w' };
const { test, results, setPage } = runner(OUT, ROOT, 'live-');

const children = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

/** Starts a GStreamer RTSP camera; resolves with its URL. */
async function startCamera(args) {
  const cam = await startCamera_(ROOT, OUT, args);
  children.push(cam.child);
  return cam.url;
}

// An nftables table of this run's own, dropping what goes to some of the server's ports
// (`rules`: e.g. ['udp dport 40000']; needs root, scripts/test installs nftables). Removed
// after each test and at exit.
const NFT_TABLE = `xaso_live_test_${process.pid}`;

function block(rules) {
  unblock();
  const lines = rules.map((r) => `  ${r} drop\n`).join('');
  execFileSync('nft', ['-f', '-'], {
    input: `table inet ${NFT_TABLE} {\n chain input {\n  type filter hook input priority 0; policy accept;\n${lines} }\n}\n`,
  });
}

function unblock() {
  try {
    execFileSync('nft', ['delete', 'table', 'inet', NFT_TABLE], { stdio: 'ignore' });
  } catch {
    // not there
  }
}
process.on('exit', unblock);

async function startServer(cameras) {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'xaso-live-'));
  const port = await freePort();
  const udpPort = await freePort();
  const tcpPort = await freePort();
  const cfg = path.join(dataDir, 'xaso.toml');
  let toml = `[recording]\nsimulated_camera = false\n\n[webrtc]\nudp_port = ${udpPort}\ntcp_port = ${tcpPort}\n`;
  for (const c of cameras) toml += `\n[[camera]]\nname = "${c.name}"\nurl = "${c.url}"\n`;
  await writeFile(cfg, toml);
  const child = spawn(BIN, ['--config', cfg, 'serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], {
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('XASO_'))), XASO_ADMIN_PASSWORD: ADMIN.password },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const log = createWriteStream(path.join(OUT, 'live-server.log'));
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try { if ((await fetch(`${base}/healthz`)).status === 200) break; } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error('server did not start');
    await sleep(200);
  }
  return {
    base,
    udpPort,
    tcpPort,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => { child.on('exit', r); setTimeout(r, 5_000); });
      await rm(dataDir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/** An API client with the admin's cookie (Node's fetch). */
async function apiLogin(base) {
  const res = await fetch(`${base}/api/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ADMIN),
  });
  assert.equal(res.status, 200);
  const cookie = res.headers.get('set-cookie').split(';')[0];
  return (p, init = {}) => fetch(`${base}${p}`, { ...init, headers: { cookie, ...(init.headers || {}) } });
}

async function waitStreaming(api, ids) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const st = await Promise.all(ids.map(async (id) => (await (await api(`/api/cameras/${id}/status`)).json()).state));
    if (st.every((s) => s === 'streaming')) return;
    if (Date.now() > deadline) throw new Error(`cameras not streaming: ${st}`);
    await sleep(300);
  }
}

/** Signs in as the admin and opens the Live page; returns when it was opened. */
async function openLive(page) {
  await page.goto('/');
  await page.getByTestId('login-username').fill(ADMIN.username);
  await page.getByTestId('login-password').fill(ADMIN.password);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('nav-live').waitFor();
  const t0 = Date.now();
  await page.goto('/#/live');
  return t0;
}

// A WHEP player that is not xaso's UI: plain WebRTC and fetch, a Bearer token, no cookies.
const PLAIN_PAGE = `<!doctype html><meta charset="utf-8"><title>plain WHEP</title>
<video id="v" muted autoplay playsinline></video>
<script>
window.play = async (url, token) => {
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.ontrack = (e) => { document.getElementById('v').srcObject = e.streams[0] || new MediaStream([e.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => { if (pc.iceGatheringState === 'complete') r(); pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); setTimeout(r, 1000); });
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp', authorization: 'Bearer ' + token }, body: pc.localDescription.sdp, credentials: 'omit' });
  if (res.status !== 201) throw new Error('WHEP answered ' + res.status + ': ' + await res.text());
  window.location_ = res.headers.get('location');
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  window.pc = pc;
  return window.location_;
};
window.frames_ = async () => {
  let n = 0;
  (await window.pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n = s.framesDecoded || 0; });
  return n;
};
</script>`;

async function main() {
  await mkdir(OUT, { recursive: true });
  const camA = await startCamera(['--path', 'a', '--video', 'h264', '--audio', 'pcmu', '--gop', '50', '--bitrate', '800']);
  const camB = await startCamera(['--path', 'b', '--video', 'h264', '--gop', '50', '--bitrate', '800']);
  const server = await startServer([{ name: 'Cổng trước', url: camA }, { name: 'Sân sau', url: camB }]);
  const api = await apiLogin(server.base);
  const timings = {};
  let browser = null;
  try {
    await waitStreaming(api, [1, 2]);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      chromiumSandbox: false,
      args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required'],
    });
    const context = await browser.newContext({ baseURL: server.base, locale: 'vi-VN', viewport: { width: 1280, height: 860 } });
    const page = await context.newPage();
    setPage(page);
    page.setDefaultTimeout(10_000);

    await test('the Live page plays every camera within 3 s', async () => {
      const t0 = await openLive(page);
      const first = {};
      for (;;) {
        const tiles = await page.evaluate(() => (window.xasoLive ? window.xasoLive.tiles() : []));
        for (const t of tiles) if (t.framesDecoded > 0 && !(t.cameraId in first)) first[t.cameraId] = Date.now() - t0;
        if (Object.keys(first).length === 2) break;
        if (Date.now() - t0 > 3_000) throw new Error(`not every tile played within 3 s: ${JSON.stringify(tiles)}`);
        await sleep(50);
      }
      timings.live_page_first_frame_ms = first;
      // Frames keep coming, and the tile says live.
      const before = await page.evaluate(() => window.xasoLive.tiles().map((t) => t.framesDecoded));
      await sleep(2_500);
      const after = await page.evaluate(() => window.xasoLive.tiles().map((t) => t.framesDecoded));
      assert.ok(after.every((n, i) => n > before[i] + 20), `frames grow: ${before} -> ${after}`);
      assert.equal(await page.getByTestId('tile-state-1').getAttribute('data-state'), 'live');
      const tiles = await page.evaluate(() => window.xasoLive.tiles());
      assert.ok(tiles.every((t) => t.transport === 'webrtc' && t.ice === 'udp'), JSON.stringify(tiles));
      await page.screenshot({ path: path.join(OUT, 'live-grid.png') });
    });

    await test('leaving the page ends the sessions, and each is audited with its bytes', async () => {
      await page.goto('/#/recordings');
      const deadline = Date.now() + 10_000;
      let ends = [];
      for (;;) {
        const audit = await (await api('/api/audit?action=live.end')).json();
        ends = audit.entries;
        if (ends.length >= 2) break;
        if (Date.now() > deadline) throw new Error(`live.end entries: ${JSON.stringify(ends)}`);
        await sleep(300);
      }
      assert.ok(ends.every((e) => e.detail.bytes_sent > 10_000), JSON.stringify(ends.map((e) => e.detail)));
      const starts = (await (await api('/api/audit?action=live.start')).json()).entries;
      assert.ok(starts.length >= 2);
    });

    await test('a plain WHEP page (not the xaso UI) plays with a Bearer token, and DELETE ends it', async () => {
      const tok = await (await api('/api/tokens', {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'whep-test', user_id: 1 }),
      })).json();
      const token = tok.token || tok.secret;
      assert.ok(token, JSON.stringify(tok));
      const plain = await browser.newPage();
      setPage(plain);
      await plain.route(`${server.base}/plain-whep.html`, (r) => r.fulfill({ contentType: 'text/html', body: PLAIN_PAGE }));
      await plain.goto(`${server.base}/plain-whep.html`);
      const t0 = Date.now();
      const location = await plain.evaluate(([u, t]) => window.play(u, t), [`${server.base}/api/cameras/1/whep`, token]);
      assert.match(location, /^\/api\/cameras\/1\/whep\/\d+$/);
      for (;;) {
        if ((await plain.evaluate(() => window.frames_())) > 0) break;
        if (Date.now() - t0 > 3_000) throw new Error('the plain page decoded no frame within 3 s');
        await sleep(20);
      }
      timings.plain_whep_first_frame_ms = Date.now() - t0;
      const del = await fetch(`${server.base}${location}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
      assert.equal(del.status, 204);
      const again = await fetch(`${server.base}${location}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
      assert.equal(again.status, 404);
      await plain.close();
      setPage(page);
    });

    await test('bad WHEP requests get a 4xx and the server keeps serving', async () => {
      const post = (p, body, type = 'application/sdp') => api(p, { method: 'POST', headers: { 'content-type': type }, body });
      assert.equal((await post('/api/cameras/1/whep', 'v=0 garbage')).status, 400);
      assert.equal((await post('/api/cameras/1/whep', '')).status, 400);
      assert.equal((await post('/api/cameras/1/whep', 'v=0', 'application/json')).status, 415);
      assert.equal((await post('/api/cameras/999/whep', 'v=0')).status, 404);
      const res = await post('/api/cameras/1/whep', 'v=0');
      assert.equal((await res.json()).error !== undefined, true);
      assert.equal((await api('/api/cameras/1/whep/123456', { method: 'DELETE' })).status, 404);
      assert.equal((await api('/api/cameras/1/whep/123456', {
        method: 'PATCH', headers: { 'content-type': 'application/trickle-ice-sdpfrag' }, body: 'a=ice-ufrag:x',
      })).status, 404);
      assert.equal((await fetch(`${server.base}/api/cameras/1/whep`, { method: 'POST', body: 'v=0' })).status, 401);
      // Still serving: the page plays again.
      await page.goto('/#/live');
      const t0 = Date.now();
      for (;;) {
        const tiles = await page.evaluate(() => (window.xasoLive ? window.xasoLive.tiles() : []));
        if (tiles.length === 2 && tiles.every((t) => t.framesDecoded > 0)) break;
        if (Date.now() - t0 > 5_000) throw new Error(`no playback after bad requests: ${JSON.stringify(tiles)}`);
        await sleep(50);
      }
    });

    /** Logs in a new browser context and opens the Live page; returns the page and when it opened. */
    async function freshLivePage() {
      const ctx = await browser.newContext({ baseURL: server.base, locale: 'vi-VN', viewport: { width: 1280, height: 860 } });
      const p = await ctx.newPage();
      setPage(p);
      p.setDefaultTimeout(10_000);
      return { ctx, p, t0: await openLive(p) };
    }

    /** Waits until both tiles play as `want(tile)` says; then checks frames keep coming. */
    async function bothTilesPlay(p, t0, want, limitMs) {
      let tiles = [];
      for (;;) {
        tiles = await p.evaluate(() => (window.xasoLive ? window.xasoLive.tiles() : []));
        if (tiles.length === 2 && tiles.every((t) => want(t) && t.framesDecoded > 0)) break;
        if (Date.now() - t0 > limitMs) throw new Error(`not playing as wanted within ${limitMs} ms: ${JSON.stringify(tiles)}`);
        await sleep(100);
      }
      const firstFrameMs = Date.now() - t0;
      const before = tiles.map((t) => t.framesDecoded);
      await sleep(3_000);
      const after = await p.evaluate(() => window.xasoLive.tiles().map((t) => t.framesDecoded));
      assert.ok(after.every((n, i) => n > before[i] + 40), `frames grow: ${before} -> ${after}`);
      return firstFrameMs;
    }

    await test('with UDP blocked, WebRTC goes over TCP (ICE-TCP) and plays', async () => {
      await page.goto('/#/recordings'); // the first page's WebRTC sessions end first
      // The firewall drops every datagram to the server's WebRTC port: ICE must use TCP.
      block([`udp dport ${server.udpPort}`]);
      let ctx = null;
      try {
        const open = await freshLivePage();
        ctx = open.ctx;
        timings.ice_tcp_first_frame_ms = await bothTilesPlay(open.p, open.t0,
          (t) => t.transport === 'webrtc' && t.ice === 'tcp', 8_000);
        assert.equal(await open.p.getByTestId('tile-transport-1').isVisible(), false);
      } finally {
        setPage(page);
        unblock();
        if (ctx) await ctx.close();
      }
    });

    await test('with UDP and ICE-TCP blocked, every tile falls back to MP4 over WebSocket and plays', async () => {
      // As on a network that lets only the web port through.
      block([`udp dport ${server.udpPort}`, `tcp dport ${server.tcpPort}`]);
      let ctx = null;
      try {
        const open = await freshLivePage();
        ctx = open.ctx;
        const p = open.p;
        timings.mse_fallback_first_frame_ms = await bothTilesPlay(p, open.t0, (t) => t.transport === 'mse', 12_000);
        // Near the live edge: less than a second behind what is buffered.
        const lag = await p.evaluate(() => [...document.querySelectorAll('video')].map((v) => {
          const b = v.buffered;
          return b.length ? b.end(b.length - 1) - v.currentTime : null;
        }));
        assert.ok(lag.every((l) => l !== null && l < 1.0), `behind the live edge: ${lag}`);
        assert.equal(await p.getByTestId('tile-state-1').getAttribute('data-state'), 'live');
        assert.equal(await p.getByTestId('tile-transport-1').isVisible(), true);
        assert.equal(await p.getByTestId('tile-transport-1').textContent(), 'Dự phòng');
        await p.screenshot({ path: path.join(OUT, 'live-fallback.png') });
        await p.goto('/#/recordings');
        const deadline = Date.now() + 10_000;
        for (;;) {
          const ends = (await (await api('/api/audit?action=live.end')).json()).entries
            .filter((e) => e.detail.transport === 'mse');
          if (ends.length >= 2) {
            assert.ok(ends.every((e) => e.detail.bytes_sent > 10_000), JSON.stringify(ends.map((e) => e.detail)));
            break;
          }
          if (Date.now() > deadline) throw new Error(`MSE live.end entries: ${JSON.stringify(ends)}`);
          await sleep(300);
        }
      } finally {
        setPage(page);
        unblock();
        if (ctx) await ctx.close();
      }
    });
  } finally {
    console.log(`timings: ${JSON.stringify(timings)}`);
    await writeFile(path.join(OUT, 'live-timings.json'), JSON.stringify(timings, null, 2));
    if (browser) await browser.close();
    await server.stop();
    children.forEach((c) => c.kill('SIGTERM'));
  }
  summary(results);
  process.exit(results.failed ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
