// Headless-browser test of the xaso web UI shell against the real server.
//
//   node tests/browser/shell.test.mjs
//
// Env: SERVER_BIN (default target/debug/xaso), CHROMIUM (default /usr/bin/chromium).
// Screenshots and the server log go to tests/output/browser/.
// Ends with "N passed, M failed"; exits non-zero on any failure or crash.

import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { expectText, freePort, runner, sleep, summary } from './lib.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = path.join(ROOT, 'tests', 'output', 'browser');
const WEB_UI = path.join(ROOT, 'web-ui');
const BIN = path.resolve(ROOT, process.env.SERVER_BIN || 'target/debug/xaso');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ADMIN = { username: 'admin', password: 'browser-test-Admin-7q2w' };
const OPERATOR = { username: 'vanhanh1', password: 'Vận-hành-mật-khẩu-1' };
const REVIEWER = { username: 'xemlai1', password: 'Xem-lại-mật-khẩu-1' };
const CAMERA = { name: 'Cổng UBND xã', url: 'rtsp://camuser:camsecret@127.0.0.1:1/stream1' };
// The camera the server records when started with no camera configured (src/serve.rs).
const SIMULATED_CAMERA = 'Camera mô phỏng (simulated)';

// The browser's time zone (newContext below) and its "HH:MM:SS" / "YYYY-MM-DD".
const TIME_ZONE = 'Asia/Ho_Chi_Minh';
const clockIn = (ms) => new Intl.DateTimeFormat('en-GB', {
  timeZone: TIME_ZONE, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
}).format(ms);
const dayIn = (ms) => new Intl.DateTimeFormat('en-CA', { timeZone: TIME_ZONE }).format(ms);

// ---- tiny test runner -------------------------------------------------------

const { test, results, setPage } = runner(OUT, ROOT);

// ---- the server ---------------------------------------------------------------

async function startServer() {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'xaso-browser-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const logPath = path.join(OUT, 'server.log');
  const log = createWriteStream(logPath);
  const child = spawn(BIN, ['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], {
    cwd: ROOT,
    // The server treats unknown XASO_* variables as configuration errors: pass none through.
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('XASO_'))), XASO_ADMIN_PASSWORD: ADMIN.password },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => { exited = { code, signal }; resolve(); });
    child.on('error', (error) => { exited = { error }; resolve(); });
  });
  // Never leave the server behind, even on a crash.
  const killNow = () => { if (!exited) child.kill('SIGKILL'); };
  process.on('exit', killNow);

  async function stop() {
    if (!exited) {
      child.kill('SIGTERM');
      await Promise.race([exitPromise, sleep(5_000)]);
      if (!exited) {
        child.kill('SIGKILL');
        await exitPromise;
      }
    }
    process.off('exit', killNow);
    log.end();
    await rm(dataDir, { recursive: true, force: true }).catch(() => {});
  }

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) {
      await stop();
      const why = exited.error ? exited.error.message : `code ${exited.code}, signal ${exited.signal}`;
      throw new Error(`server ${BIN} exited before answering /healthz (${why}); see ${path.relative(ROOT, logPath)}`);
    }
    try {
      const res = await fetch(`${base}/healthz`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error('server did not answer GET /healthz with 200 within 30 s');
    }
    await sleep(200);
  }
  return { base, stop, logPath };
}

// ---- static checks on the UI files ------------------------------------------------

async function catalogue(lang) {
  return JSON.parse(await readFile(path.join(WEB_UI, 'i18n', `${lang}.json`), 'utf8'));
}

async function checkCatalogues() {
  const vi = await catalogue('vi');
  const en = await catalogue('en');
  const viKeys = Object.keys(vi).sort();
  const enKeys = Object.keys(en).sort();
  assert.deepEqual(viKeys, enKeys, 'vi.json and en.json must have the same keys');
  // Every literal t('key') in the code must exist in the catalogue.
  const files = [...(await readdir(WEB_UI)).filter((f) => f.endsWith('.js')),
    ...(await readdir(path.join(WEB_UI, 'pages'))).filter((f) => f.endsWith('.js')).map((f) => `pages/${f}`)];
  const missing = [];
  for (const file of files) {
    const src = await readFile(path.join(WEB_UI, file), 'utf8');
    for (const m of src.matchAll(/\bt\('([a-zA-Z_.]+)'/g)) {
      if (!(m[1] in vi)) missing.push(`${file}: ${m[1]}`);
    }
  }
  assert.deepEqual(missing, [], 'keys used in code but missing from the catalogue');
}

// ---- browser steps ------------------------------------------------------------

async function login(page, user) {
  await page.getByTestId('login-username').fill(user.username);
  await page.getByTestId('login-password').fill(user.password);
  await page.getByTestId('login-submit').click();
}

async function main() {
  await mkdir(OUT, { recursive: true });
  await test('i18n catalogues have the same keys and cover the code', checkCatalogues);

  const vi = await catalogue('vi');
  const server = await startServer();
  let browser = null;
  const pageErrors = [];
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      chromiumSandbox: false,
      args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const context = await browser.newContext({
      baseURL: server.base,
      locale: 'vi-VN',
      timezoneId: TIME_ZONE,
      viewport: { width: 1280, height: 860 },
    });
    const page = await context.newPage();
    setPage(page);
    page.setDefaultTimeout(10_000);
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('dialog', (dialog) => dialog.accept());
    const shot = (name) => page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });

    await test('login page shows in Vietnamese', async () => {
      await page.goto('/');
      await page.getByTestId('login-username').waitFor();
      assert.equal(await page.locator('html').getAttribute('lang'), 'vi');
      await expectText(page.getByTestId('login-submit'), 'Đăng nhập');
      await expectText(page.getByTestId('lang-switch'), 'English');
      await expectText(page.locator('label[for=login-password]'), 'Mật khẩu');
      await shot('login');
    });

    await test('wrong password shows the error', async () => {
      await login(page, { username: ADMIN.username, password: 'not-the-password' });
      await expectText(page.getByTestId('login-error'), 'Sai tên đăng nhập hoặc mật khẩu');
    });

    await test('admin login shows the nav bar in Vietnamese', async () => {
      await login(page, ADMIN);
      const labels = {
        'nav-live': 'Trực tiếp', 'nav-recordings': 'Xem lại', 'nav-meetings': 'Cuộc họp',
        'nav-admin': 'Quản trị', 'nav-audit': 'Nhật ký', logout: 'Đăng xuất', 'lang-switch': 'English',
      };
      await page.getByTestId('nav-live').waitFor();
      for (const [id, text] of Object.entries(labels)) await expectText(page.getByTestId(id), text);
      await expectText(page.getByTestId('current-user'), ADMIN.username);
      await page.getByTestId('live-note').waitFor();
      await shot('nav-vi');
    });

    await test('language switch turns labels English and persists after reload', async () => {
      await page.getByTestId('lang-switch').click();
      await expectText(page.getByTestId('nav-live'), 'Live');
      await expectText(page.getByTestId('nav-audit'), 'Audit log');
      assert.equal(await page.locator('html').getAttribute('lang'), 'en');
      assert.equal(await page.evaluate(() => localStorage.getItem('xaso.lang')), 'en');
      await page.reload();
      await expectText(page.getByTestId('nav-live'), 'Live');
      await expectText(page.getByTestId('nav-recordings'), 'Recordings');
      await expectText(page.getByTestId('nav-meetings'), 'Meetings');
      await expectText(page.getByTestId('nav-admin'), 'Admin');
      await expectText(page.getByTestId('lang-switch'), 'Tiếng Việt');
      assert.equal(await page.locator('html').getAttribute('lang'), 'en');
      await shot('nav-en');
      // back to Vietnamese for the rest
      await page.getByTestId('lang-switch').click();
      await expectText(page.getByTestId('nav-live'), 'Trực tiếp');
      assert.equal(await page.evaluate(() => localStorage.getItem('xaso.lang')), 'vi');
    });

    await test('live page shows the built-in simulated camera recording', async () => {
      await page.goto('/#/live');
      await page.getByTestId('live-note').waitFor();
      const cameras = await (await page.request.get('/api/cameras')).json();
      const sim = cameras.find((c) => c.origin === 'builtin');
      assert.ok(sim, `no built-in camera in GET /api/cameras: ${JSON.stringify(cameras)}`);
      assert.equal(sim.id, 1, 'the built-in camera is the first camera of a fresh server');
      assert.equal(sim.name, SIMULATED_CAMERA);
      await expectText(page.getByTestId('camera-row-1'), SIMULATED_CAMERA);
      // statuses refresh every 5 s: the recorder needs a moment to connect
      await expectText(page.getByTestId('camera-status-1'), vi['camera.state.recording'], 15_000);
      assert.equal(await page.getByTestId('camera-status-1').getAttribute('data-state'), 'recording');
      await shot('live');
      // leaving the page stops the 5-second status refresh
      let polls = 0;
      const onRequest = (req) => { if (/\/api\/cameras\/\d+\/status$/.test(new URL(req.url()).pathname)) polls += 1; };
      await page.getByTestId('nav-meetings').click();
      await sleep(200);
      page.on('request', onRequest);
      await sleep(6_000);
      page.off('request', onRequest);
      assert.equal(polls, 0, 'camera statuses still polled after leaving the live page');
    });

    let cameraId = null;
    await test('admin page creates a camera and an operator, and grants the camera', async () => {
      await page.getByTestId('nav-admin').click();
      await page.getByTestId('users-table').waitFor();
      await page.getByTestId(`user-row-${ADMIN.username}`).waitFor();

      await page.getByTestId('camera-add-name').fill(CAMERA.name);
      await page.getByTestId('camera-add-url').fill(CAMERA.url);
      await page.getByTestId('camera-add-submit').click();
      await expectText(page.getByTestId('cameras-status'), 'Đã thêm camera');
      const cameras = await (await page.request.get('/api/cameras')).json();
      const camera = cameras.find((c) => c.name === CAMERA.name);
      assert.ok(camera, `camera ${CAMERA.name} not returned by GET /api/cameras`);
      cameraId = camera.id;
      await page.getByTestId(`camera-row-${cameraId}`).waitFor();
      assert.ok(!String(camera.url).includes('camsecret'), `camera url still has credentials: ${camera.url}`);

      await page.getByTestId('user-add-username').fill(OPERATOR.username);
      await page.getByTestId('user-add-password').fill(OPERATOR.password);
      await page.getByTestId('user-add-role').selectOption('operator');
      await page.getByTestId('user-add-email').fill('can.bo@xa.test');
      await page.getByTestId('user-add-submit').click();
      await expectText(page.getByTestId('users-status'), `Đã tạo người dùng ${OPERATOR.username}`);
      await page.getByTestId(`user-row-${OPERATOR.username}`).waitFor();
      assert.equal(await page.getByTestId(`user-role-${OPERATOR.username}`).inputValue(), 'operator');
      // the address for meeting reminders: shown in the row, changed there (saved when
      // the field is left), refused on the page when it is not one
      const email = page.getByTestId(`user-email-${OPERATOR.username}`);
      assert.equal(await email.inputValue(), 'can.bo@xa.test');
      await email.fill('khong-phai-email');
      await email.press('Enter');
      await expectText(page.getByTestId('users-status'), 'Địa chỉ e-mail không hợp lệ');
      await page.getByTestId(`user-email-${OPERATOR.username}`).fill('truong.ca@xa.test');
      await page.getByTestId(`user-email-${OPERATOR.username}`).press('Enter');
      await expectText(page.getByTestId('users-status'), `Đã cập nhật người dùng ${OPERATOR.username}`);
      assert.equal(await page.getByTestId(`user-email-${OPERATOR.username}`).inputValue(), 'truong.ca@xa.test');

      const grant = page.getByTestId(`grant-${OPERATOR.username}-${cameraId}`);
      assert.equal(await grant.isChecked(), false);
      await grant.check();
      await page.getByTestId(`grants-save-${OPERATOR.username}`).click();
      await expectText(page.getByTestId('users-status'), 'Đã lưu quyền xem camera');
      // the table was reloaded from the server: the grant must be shown as saved
      assert.equal(await page.getByTestId(`grant-${OPERATOR.username}-${cameraId}`).isChecked(), true);
      const users = await (await page.request.get('/api/users')).json();
      const op = users.find((u) => u.username === OPERATOR.username);
      assert.ok(op, 'operator not returned by GET /api/users');
      assert.equal(op.role, 'operator');
      assert.equal(op.email, 'truong.ca@xa.test');
      assert.deepEqual(op.camera_ids, [cameraId]);
      await shot('admin');
    });

    await test('admin camera table shows origin and status, and edits an API camera', async () => {
      // the built-in camera: origin badge and a hint instead of edit/delete
      assert.equal(await page.getByTestId('camera-origin-1').getAttribute('data-origin'), 'builtin');
      await page.getByTestId('camera-locked-1').waitFor();
      assert.equal(await page.getByTestId('camera-edit-1').count(), 0);
      assert.equal(await page.getByTestId('camera-delete-1').count(), 0);
      await page.getByTestId('camera-status-1').waitFor();
      assert.ok(cameraId !== null, 'the camera of the previous case was not created');
      assert.equal(await page.getByTestId(`camera-origin-${cameraId}`).getAttribute('data-origin'), 'api');
      // edit: transport and retention; the URL (shown without credentials) is left alone
      await page.getByTestId(`camera-edit-${cameraId}`).click();
      await page.getByTestId(`camera-edit-${cameraId}-transport`).selectOption('udp');
      await page.getByTestId(`camera-edit-${cameraId}-retention`).fill('7');
      const [res] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith(`/api/cameras/${cameraId}`) && r.request().method() === 'PATCH'),
        page.getByTestId(`camera-edit-${cameraId}-save`).click(),
      ]);
      assert.deepEqual(res.request().postDataJSON(), { transport: 'udp', retention_days: 7 });
      await expectText(page.getByTestId('cameras-status'), 'Đã cập nhật camera');
      assert.equal(await page.getByTestId(`camera-edit-${cameraId}-form`).count(), 0);
      await expectText(page.getByTestId(`camera-transport-${cameraId}`), 'UDP');
      const camera = (await (await page.request.get('/api/cameras')).json()).find((c) => c.id === cameraId);
      assert.equal(camera.transport, 'udp');
      assert.equal(camera.retention_days, 7);
      assert.equal(camera.name, CAMERA.name);
      await shot('admin-cameras');
    });

    await test('audit page lists the login and user.create entries', async () => {
      await page.getByTestId('nav-audit').click();
      const table = page.getByTestId('audit-table');
      await table.locator('tr[data-action="login"]').first().waitFor();
      await table.locator('tr[data-action="user.create"]').first().waitFor();
      await expectText(table.locator('tr[data-action="login"]').first(), ADMIN.username);
      await shot('audit');
      // the action filter narrows the list
      await page.getByTestId('audit-action').fill('user.create');
      await page.getByTestId('audit-apply').click();
      const deadline = Date.now() + 10_000;
      for (;;) {
        const actions = await table.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.action));
        if (actions.length > 0 && actions.every((a) => a === 'user.create')) break;
        if (Date.now() > deadline) throw new Error(`filter by action: rows are ${JSON.stringify(actions)}`);
        await sleep(100);
      }
    });

    await test('a reviewer plays footage on the recordings page', async () => {
      // As the issue asks, a reviewer (granted camera 1) does this, in a context of their own;
      // the admin's session checks the audit log.
      const reviewer = { username: 'xem.lai', password: 'reviewer-Pass-4k9' };
      let res = await page.request.post('/api/users', { data: { ...reviewer, role: 'reviewer' } });
      assert.equal(res.status(), 201, `create reviewer: ${res.status()} ${await res.text()}`);
      const rid = (await res.json()).id;
      res = await page.request.put(`/api/users/${rid}/grants`, { data: { camera_ids: [1] } });
      assert.equal(res.status(), 200, 'grant camera 1');
      const rctx = await browser.newContext({ baseURL: server.base, locale: 'vi-VN', timezoneId: TIME_ZONE, viewport: { width: 1280, height: 860 } });
      const rpage = await rctx.newPage();
      rpage.setDefaultTimeout(10_000);
      rpage.on('pageerror', (err) => pageErrors.push(err.message));
      setPage(rpage);
      await rpage.goto('/');
      await login(rpage, reviewer);
      await rpage.getByTestId('nav-recordings').waitFor();
      assert.equal(await rpage.getByTestId('nav-admin').count(), 0, 'a reviewer has no admin page');
      try {
        // the simulated camera records from the start: wait for a span of at least 10 s
        let span = null;
        const waitUntil = Date.now() + 30_000;
        for (;;) {
          const res = await rpage.request.get('/api/cameras/1/recordings');
          assert.equal(res.status(), 200, `GET /api/cameras/1/recordings: ${res.status()} ${await res.text()}`);
          const body = await res.json();
          span = body.spans.map((x) => ({ start: Date.parse(x.start), end: Date.parse(x.end) }))
            .find((x) => x.end - x.start >= 10_000);
          if (span) break;
          if (Date.now() > waitUntil) throw new Error(`no span of 10 s after 30 s: ${JSON.stringify(body)}`);
          await sleep(500);
        }
        const target = span.start + 5_000;

        await rpage.getByTestId('nav-recordings').click();
        await rpage.getByTestId('rec-camera').waitFor();
        await rpage.getByTestId('rec-camera').selectOption('1');
        const today = dayIn(Date.now());
        assert.equal(await rpage.getByTestId('rec-day').inputValue(), today, 'the day defaults to today');
        assert.equal(dayIn(target), today, 'the footage is from today');
        const timeline = rpage.getByTestId('rec-timeline');
        await timeline.getByTestId('rec-span').first().waitFor();
        // the 24-hour view labels the hours
        await expectText(timeline, '12:00');
        // zoom to one hour (around the newest footage) so that a pixel is a few seconds
        await rpage.getByTestId('rec-zoom').click();
        assert.equal(await rpage.getByTestId('rec-zoom').getAttribute('aria-pressed'), 'true');
        const viewStart = Number(await timeline.getAttribute('data-view-start'));
        const viewEnd = Number(await timeline.getAttribute('data-view-end'));
        assert.equal(viewEnd - viewStart, 3_600_000, 'the zoomed timeline shows one hour');
        assert.ok(target > viewStart && target < viewEnd, `target ${target} outside the zoomed view ${viewStart}..${viewEnd}`);
        const box = await timeline.boundingBox();
        const x = ((target - viewStart) / (viewEnd - viewStart)) * box.width;
        // hovering shows the time under the pointer
        const snapshotRequests = [];
        const onRequest = (req) => { if (req.url().includes('/snapshot.jpg')) snapshotRequests.push(req.url()); };
        rpage.on('request', onRequest);
        await timeline.hover({ position: { x, y: 12 } });
        const hoverText = await rpage.getByTestId('rec-hover').innerText();
        assert.ok(Math.abs(Date.parse(`${today}T${hoverText}+07:00`) - target) <= 5_000, `hover shows ${hoverText}`);
        // resting on footage shows a thumbnail of that moment (snapshot.jpg, 160 px wide), time under it
        await rpage.waitForFunction(() => {
          const img = document.querySelector('[data-testid=rec-thumb]');
          return img && !img.hidden && img.complete && img.naturalWidth === 160;
        }, null, { timeout: 5_000 }).catch(async () => {
          const state = await rpage.evaluate(() => {
            const img = document.querySelector('[data-testid=rec-thumb]');
            return img && { hidden: img.hidden, complete: img.complete, naturalWidth: img.naturalWidth, key: img.dataset.key };
          });
          throw new Error(`no 160 px thumbnail within 5 s: ${JSON.stringify(state)}, requests ${JSON.stringify(snapshotRequests)}`);
        });
        assert.equal(await rpage.getByTestId('rec-thumb').isVisible(), true, 'the thumbnail is shown');
        assert.equal(await rpage.getByTestId('rec-hover').innerText(), hoverText, 'the hover time stays under the thumbnail');
        rpage.off('request', onRequest);
        assert.equal(snapshotRequests.length, 1, `one snapshot request for one resting point: ${JSON.stringify(snapshotRequests)}`);
        const thumbAt = Date.parse(new URL(snapshotRequests[0]).searchParams.get('at'));
        assert.equal(thumbAt % 10_000, 0, 'the thumbnail time is rounded to 10 s');
        assert.ok(thumbAt >= span.start && thumbAt < span.end, 'the thumbnail is asked for inside the footage');
        assert.equal(new URL(snapshotRequests[0]).searchParams.get('width'), '160');
        await shot('recordings-thumbnail');
        const audit = await page.request.get('/api/audit?action=footage.snapshot');
        assert.equal(audit.status(), 200, `GET /api/audit: ${audit.status()}`);
        const snapshots = (await audit.json()).entries;
        assert.ok(snapshots.length >= 1, 'the snapshot is in the audit log');
        assert.equal(snapshots[0].action, 'footage.snapshot');
        assert.equal(snapshots[0].camera_id, 1);

        await rpage.evaluate(() => {
          const video = document.querySelector('[data-testid=rec-video]');
          window.recTest = { click: null, playing: null };
          document.querySelector('[data-testid=rec-timeline]').addEventListener('pointerdown', () => {
            window.recTest.click = performance.now();
          }, { capture: true });
          video.addEventListener('playing', () => {
            if (window.recTest.playing === null) window.recTest.playing = performance.now();
          });
        });
        await timeline.click({ position: { x, y: 12 } });
        const picked = Number(await timeline.getAttribute('data-picked'));
        assert.ok(Math.abs(picked - target) <= 5_000, `clicked ${picked}, meant ${target}`);
        assert.ok(picked >= span.start && picked < span.end, 'the clicked time is inside the span');
        assert.equal(Number(await timeline.getAttribute('data-window-start')), picked, 'playback starts at the clicked second');

        const sample = () => rpage.evaluate(() => {
          const video = document.querySelector('[data-testid=rec-video]');
          const clock = document.querySelector('[data-testid=rec-clock]');
          return {
            time: video.currentTime, frames: video.getVideoPlaybackQuality().totalVideoFrames,
            paused: video.paused, error: video.error && `${video.error.code} ${video.error.message}`,
            src: video.currentSrc, clock: clock.textContent, clockAt: Number(clock.dataset.time),
            click: window.recTest.click, playing: window.recTest.playing,
          };
        });
        const playDeadline = Date.now() + 5_000;
        let first = null;
        let last = null;
        for (;;) {
          last = await sample();
          assert.equal(last.error, null, `video error on ${last.src}`);
          if (!first && last.playing !== null && last.frames > 0) first = last;
          else if (first && last.time > first.time + 0.3 && last.frames > first.frames) break;
          if (Date.now() > playDeadline) throw new Error(`the video did not play within 5 s: ${JSON.stringify(last)}`);
          await sleep(100);
        }
        console.log(`playback start: ${Math.round(first.playing - first.click)} ms`);
        assert.ok(first.src.includes('/api/cameras/1/playback.mp4?'), `video src ${first.src}`);
        // the clock shows the clicked wall time, then advances from it
        assert.ok(first.clockAt >= picked - 1_000 && first.clockAt <= picked + first.time * 1000 + 1_000,
          `clock ${first.clock} (${first.clockAt}) at currentTime ${first.time}, clicked ${picked}`);
        assert.equal(first.clock, clockIn(first.clockAt));
        assert.ok(Math.abs(last.clockAt - (picked + last.time * 1000)) < 1_000, `clock ${last.clockAt} vs ${picked} + ${last.time} s`);
        assert.ok(last.clockAt > first.clockAt, 'the clock advances');
        assert.equal(last.clock, clockIn(last.clockAt));
        assert.equal(await rpage.getByTestId('rec-playhead').isVisible(), true, 'the playback marker is shown');
        await shot('recordings');

        // pause and step one frame
        await rpage.getByTestId('rec-play').click();
        await rpage.waitForFunction(() => document.querySelector('[data-testid=rec-video]').paused);
        const before = (await sample()).time;
        await rpage.getByTestId('rec-step-forward').click();
        await rpage.waitForFunction((t) => document.querySelector('[data-testid=rec-video]').currentTime > t, before);
        await rpage.getByTestId('rec-speed').selectOption('4');
        assert.equal(await rpage.evaluate(() => document.querySelector('[data-testid=rec-video]').playbackRate), 4);

        // export: a refused range shows the server's message; a good one downloads at once
        const exportStart = rpage.getByTestId('rec-export-start');
        const exportEnd = rpage.getByTestId('rec-export-end');
        const local = (ms) => `${dayIn(ms)}T${clockIn(ms)}`;
        await exportStart.fill(local(span.start - 30 * 3_600_000));
        await exportEnd.fill(local(span.start + 2_000));
        await rpage.getByTestId('rec-export').click();
        await expectText(rpage.getByTestId('rec-export-status'), vi['error.code.invalid_argument']);
        await expectText(rpage.getByTestId('rec-export-status'), '24');
        await exportStart.fill(local(span.start + 2_000));
        await exportEnd.fill(local(span.start + 6_000));
        const [download] = await Promise.all([
          rpage.waitForEvent('download', { timeout: 10_000 }),
          rpage.getByTestId('rec-export').click(),
        ]);
        assert.match(download.suggestedFilename(), /\.mp4$/);
        await download.cancel().catch(() => {});
        await expectText(rpage.getByTestId('rec-export-status'), vi['recordings.export.started'].split(' ')[0]);
      } finally {
        setPage(page);
        await rctx.close();
      }
    });

    await test('admin adds a reviewer without camera grants', async () => {
      const res = await page.request.post('/api/users', { data: { ...REVIEWER, role: 'reviewer' } });
      assert.equal(res.status(), 201, `POST /api/users: ${await res.text()}`);
    });

    await test('logout returns to the login page', async () => {
      await page.getByTestId('logout').click();
      await page.getByTestId('login-username').waitFor();
      assert.equal(await page.getByTestId('nav-live').count(), 0);
      const me = await page.request.get('/api/me');
      assert.equal(me.status(), 401, 'GET /api/me after logout');
    });

    await test('operator logs in and does not see the admin pages', async () => {
      await login(page, OPERATOR);
      await page.getByTestId('nav-live').waitFor();
      await expectText(page.getByTestId('current-user'), OPERATOR.username);
      assert.equal(await page.getByTestId('nav-admin').count(), 0);
      assert.equal(await page.getByTestId('nav-audit').count(), 0);
      await expectText(page.getByTestId('camera-list'), CAMERA.name);
      await page.goto('/#/admin');
      await page.getByTestId('live-note').waitFor();
      assert.equal(await page.getByTestId('users-table').count(), 0);
    });

    await test('reviewer without a camera granted sees no camera on the recordings page', async () => {
      await page.getByTestId('logout').click();
      await login(page, REVIEWER);
      await page.getByTestId('nav-recordings').click();
      await expectText(page.getByTestId('rec-no-cameras'), vi['recordings.noCameras']);
      assert.equal(await page.getByTestId('rec-video').count(), 0);
      const res = await page.request.get('/api/cameras/1/recordings');
      assert.equal(res.status(), 403, 'GET /api/cameras/1/recordings without a grant');
      // a link to that camera: the server's refusal is shown, translated
      await page.goto('/#/recordings?camera=1');
      await expectText(page.getByTestId('rec-footage-status'), vi['error.code.permission_denied']);
      await shot('recordings-denied');
    });

    // Last of the browser steps: it may lock this address out of logging in for a while.
    await test('repeated wrong passwords show the too-many-attempts message', async () => {
      await page.getByTestId('logout').click();
      await page.getByTestId('login-username').waitFor();
      const error = page.getByTestId('login-error');
      for (let i = 0; ; i += 1) {
        assert.ok(i < 12, 'no 429 after 12 wrong passwords');
        const [res] = await Promise.all([
          page.waitForResponse((r) => r.url().endsWith('/api/login')),
          login(page, { username: OPERATOR.username, password: `wrong-${i}` }),
        ]);
        assert.ok([401, 429].includes(res.status()), `POST /api/login answered ${res.status()}`);
        if (res.status() === 401) {
          await expectText(error, 'Sai tên đăng nhập hoặc mật khẩu');
          continue;
        }
        await expectText(error, 'Quá nhiều lần thử');
        break;
      }
    });

    await test('no JavaScript errors in the page', async () => {
      assert.deepEqual(pageErrors, []);
    });
  } finally {
    setPage(null);
    if (browser) await browser.close().catch(() => {});
    await server.stop();
  }
  if (results.failed > 0) console.log(`server log: ${path.relative(ROOT, server.logPath)}`);
}

let crashed = false;
try {
  await main();
} catch (err) {
  crashed = true;
  results.failed += 1;
  results.failures.push(`crash: ${String((err && err.message) || err).split('\n')[0]}`);
  console.log(`CRASH ${(err && err.stack) || err}`);
}
summary(results);
process.exit(results.failed > 0 || crashed ? 1 : 0);
