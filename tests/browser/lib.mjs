// Shared by the browser tests: a tiny test runner and helpers.

import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Wait until the locator's text contains `expected`. */
export async function expectText(locator, expected, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  let last = '';
  while (Date.now() < deadline) {
    last = (await locator.innerText({ timeout: 1_000 }).catch(() => '')) || '';
    if (last.includes(expected)) return;
    await sleep(100);
  }
  throw new Error(`expected text ${JSON.stringify(expected)}, got ${JSON.stringify(last)}`);
}

/** Polls `fn` until it returns something truthy; throws with `what` and the last value after `timeout`. */
export async function waitFor(what, fn, timeout = 10_000, step = 100) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`${what} (not within ${timeout} ms; last: ${JSON.stringify(last)})`);
    await sleep(step);
  }
}

/**
 * A new page of `browser` at `base` (Vietnamese, self-signed certificates taken), signed in
 * as `admin` with `password`; resolves once `testid` is shown.
 */
export async function signIn(browser, base, password, testid) {
  const context = await browser.newContext({
    baseURL: base, locale: 'vi-VN', ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 },
  });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('dialog', (d) => d.accept());
  await page.goto('/');
  await page.getByTestId('login-username').fill('admin');
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
  await page.getByTestId(testid).waitFor();
  return page;
}

/** A free TCP port on 127.0.0.1 (taken and released). */
export async function freePort() {
  const srv = net.createServer();
  await new Promise((resolve, reject) => srv.listen(0, '127.0.0.1', resolve).on('error', reject));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/**
 * A GStreamer RTSP camera (tests/support/rtsp_camera.py with `args`) on a free port, its log
 * in `out`. Resolves to { url, child } once it is ready; the caller stops the child.
 */
export async function startCamera(root, out, args) {
  const port = await freePort();
  const child = spawn('/usr/bin/python3', [path.join(root, 'tests/support/rtsp_camera.py'), '--port', String(port), ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.pipe(createWriteStream(path.join(out, `camera-${port}.log`)));
  const rl = readline.createInterface({ input: child.stdout });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('camera did not start in 20 s')), 20_000);
    rl.on('line', (line) => {
      if (line.startsWith('READY ')) { clearTimeout(t); resolve({ url: line.slice(6).trim(), child }); }
    });
    child.on('exit', (code) => reject(new Error(`camera exited with ${code}`)));
  });
}

/**
 * A test runner: `test(name, fn)` runs fn, prints "ok"/"FAIL" with the time taken, and on a
 * failure saves a screenshot of the current page (`setPage`) as OUT/<prefix>failure-N.png.
 */
export function runner(out, root, prefix = '') {
  const results = { passed: 0, failed: 0, failures: [] };
  let page = null;
  let shots = 0;
  async function test(name, fn) {
    const started = Date.now();
    try {
      await fn();
      results.passed += 1;
      console.log(`ok   ${name} (${Date.now() - started} ms)`);
    } catch (err) {
      results.failed += 1;
      const why = (err && (err.stack || err.message)) || String(err);
      results.failures.push(`${name}: ${why.split('\n')[0]}`);
      console.log(`FAIL ${name}: ${why}`);
      if (page) {
        const file = path.join(out, `${prefix}failure-${++shots}.png`);
        await page.screenshot({ path: file, fullPage: true }).catch(() => {});
        console.log(`     screenshot: ${path.relative(root, file)}`);
      }
    }
  }
  return { test, results, setPage: (p) => { page = p; } };
}

/**
 * The last lines of a test file: each failed test's name and first line of its error again
 * (a CI log that keeps only its tail then still says what failed), then "N passed, M failed".
 */
export function summary(results) {
  for (const f of results.failures || []) console.log(`failed: ${f}`);
  console.log(`${results.passed} passed, ${results.failed} failed`);
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function listening(port) {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
    c.on('error', () => resolve(false));
  });
}

/**
 * Starts `xaso serve` (binary `bin`) on a free port with a fresh data directory, with no
 * simulated camera, admin password `password`, `env` (XASO_* variables) and, if `tls`, a
 * self-signed certificate; its log goes to `out`/`log`. Resolves once it accepts
 * connections to { base, stop() } (stop() also deletes its data).
 */
export async function startXaso({ bin, out, log, password, env = {}, tls = false }) {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'xaso-browser-'));
  const port = await freePort();
  const base = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const child = spawn(bin, ['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], {
    // the server treats unknown XASO_* variables as configuration errors: pass none through
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('XASO_') || k === 'XASO_LOG')),
      XASO_ADMIN_PASSWORD: password,
      XASO_RECORDING__SIMULATED_CAMERA: 'false',
      ...(tls ? { XASO_TLS: 'self-signed' } : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  const logFile = createWriteStream(path.join(out, log));
  child.stdout.pipe(logFile);
  child.stderr.pipe(logFile);
  const s = {
    base,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        await new Promise((r) => { child.on('exit', r); setTimeout(r, 5_000); });
      }
      await rm(dataDir, { recursive: true, force: true }).catch(() => {});
    },
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`${log}: the server exited before listening: ${JSON.stringify(exited)}`);
    // Node's fetch checks certificates, and a self-signed server is reached without TLS
    // checks by the browser only: a TCP connect is enough here.
    if (await listening(port)) break;
    if (Date.now() > deadline) throw new Error(`${log}: the server did not start`);
    await sleep(200);
  }
  return s;
}
