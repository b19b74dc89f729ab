// Shared by the browser tests: a tiny test runner and helpers.

import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import net from 'node:net';
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
