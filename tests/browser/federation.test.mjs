// Headless-browser test of a meeting across levels, with real servers: a district (HTTPS,
// self-signed) and two communes linked to it. The district's chair schedules a meeting on
// the Meetings page, ticking both communes; an official at each commune signs in at their
// own commune's server, finds the meeting there and joins it in Chromium; each sees and
// hears the other commune's official and the chair (through the district), lists everyone
// with their node, gets the chat, votes in the chair's vote (counted once at the district);
// the chair at the district mutes one of them, whose audio then stops everywhere.
//
//   node tests/browser/federation.test.mjs
//
// Env: SERVER_BIN (default target/debug/xaso), CHROMIUM (default /usr/bin/chromium).

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { expectText, runner, signIn, sleep, startXaso, summary, waitFor } from './lib.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = path.join(ROOT, 'tests', 'output', 'browser');
const BIN = path.resolve(ROOT, process.env.SERVER_BIN || 'target/debug/xaso');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PASSWORD = 'federation-test-Admin-7q2w';
// fake camera and microphone (a moving picture and a beep), no prompts, sound without a gesture
const CHROMIUM_ARGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
  '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'];

const { test, results, setPage } = runner(OUT, ROOT, 'federation-');
const servers = [];
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

function measure(name, ms) {
  console.log(`measure: ${name} ${ms} ms`);
}

const tilesOf = (p) => p.evaluate(() => (window.xasoMeeting ? window.xasoMeeting.tiles() : []));
const participantsOf = (p) => p.evaluate(() => (window.xasoMeeting ? window.xasoMeeting.participants() : []));
const slotOf = (tiles, pid, track) => tiles.find((x) => x.participant === pid && x.track === track);

async function main() {
  await mkdir(OUT, { recursive: true });
  let browser = null;
  const pageErrors = [];
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, chromiumSandbox: false, args: CHROMIUM_ARGS });
    const district = await startXaso({ bin: BIN, out: OUT, log: 'federation-district.log', password: PASSWORD, tls: true });
    servers.push(district);
    const chair = { key: 'chair', name: 'Chủ tịch huyện', page: await signIn(browser, district.base, PASSWORD, 'nav-meetings') };
    setPage(chair.page);
    // the communes' join tokens, through the district's API
    const tokens = {};
    for (const name of ['xa-a', 'xa-b']) {
      const res = await chair.page.request.post('/api/nodes', { data: { name, level: 'commune' } });
      assert.equal(res.status(), 201, await res.text());
      tokens[name] = (await res.json()).token;
    }
    const people = [chair];
    for (const [name, official] of [['xa-a', 'Cán bộ xã A'], ['xa-b', 'Cán bộ xã B']]) {
      const s = await startXaso({
        bin: BIN, out: OUT, log: `federation-${name}.log`, password: PASSWORD,
        env: { XASO_PARENT__URL: district.base, XASO_PARENT__TOKEN: tokens[name] },
      });
      servers.push(s);
      people.push({ key: name, name: official, node: name, server: s, page: await signIn(browser, s.base, PASSWORD, 'nav-meetings') });
    }
    const [, a, b] = people;
    for (const p of people) p.page.on('pageerror', (err) => pageErrors.push(`${p.key}: ${err.message}`));
    await waitFor('both communes linked to the district', async () => {
      const v = await (await chair.page.request.get('/api/nodes')).json();
      return ['xa-a', 'xa-b'].every((n) => v.children.some((c) => c.name === n && c.state === 'up'));
    }, 15_000);
    let meeting = null;

    await test('the district chair schedules a meeting on the Meetings page, inviting both communes', async () => {
      const p = chair.page;
      await p.getByTestId('nav-meetings').click();
      await p.getByTestId('meetings-form-nodes').waitFor();
      await p.getByTestId('meetings-form-title').fill('Giao ban huyện với các xã');
      const now = new Date(Date.now() - 60_000);
      const pad = (n) => String(n).padStart(2, '0');
      const local = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
      await p.getByTestId('meetings-form-start').fill(local(now));
      await p.getByTestId('meetings-form-end').fill(local(new Date(now.getTime() + 3_600_000)));
      await p.getByTestId('meetings-form-node-xa-a').check();
      await p.getByTestId('meetings-form-node-xa-b').check();
      await p.getByTestId('meetings-form-submit').click();
      await expectText(p.getByTestId('meetings-form-status'), 'Giao ban huyện với các xã');
      meeting = (await (await p.request.get('/api/meetings')).json()).meetings.find((m) => m.title === 'Giao ban huyện với các xã');
      assert.deepEqual(meeting.nodes, ['xa-a', 'xa-b']);
      await expectText(p.getByTestId(`meeting-nodes-${meeting.id}`), 'xa-a, xa-b');
      await p.screenshot({ path: path.join(OUT, 'federation-scheduled.png'), fullPage: true });
    });
    if (!meeting) throw new Error('no meeting: the other tests cannot run');

    await test("each commune's Meetings page lists the district's meeting, and its official joins it there", async () => {
      for (const person of [a, b]) {
        const p = person.page;
        await waitFor(`the meeting at ${person.key}`, async () => {
          await p.getByTestId('nav-meetings').click();
          return (await p.getByTestId(`meeting-${meeting.id}`).count()) > 0;
        }, 10_000, 500);
        await expectText(p.getByTestId(`meeting-from-parent-${meeting.id}`), 'Do cấp trên tổ chức');
        await p.getByTestId(`meeting-join-${meeting.id}`).click();
        await p.getByTestId('meeting-join').waitFor();
      }
      await chair.page.goto(`/#/meet/${meeting.id}`);
      await chair.page.getByTestId('meeting-join').waitFor();
      await Promise.all(people.map(async (person) => {
        await person.page.getByTestId('meeting-name').fill(person.name);
        person.joinClick = Date.now();
        await person.page.getByTestId('meeting-join').click();
        await waitFor(`${person.key} is in the room`, async () => (await person.page.evaluate(() => window.xasoMeeting && window.xasoMeeting.state)) === 'joined', 15_000);
        person.id = await person.page.evaluate(() => window.xasoMeeting.you);
        person.role = await person.page.evaluate(() => window.xasoMeeting.role);
      }));
      assert.equal(chair.role, 'chair');
      assert.equal(a.role, 'participant');
      assert.equal(b.role, 'participant');
      assert.equal(new Set(people.map((x) => x.id)).size, 3, 'three distinct participant ids across the nodes');
    });

    await test('everyone lists the three, each with their node, and sees and hears the two others', async () => {
      await Promise.all(people.map(async (person) => {
        const others = people.filter((x) => x !== person);
        const list = await waitFor(`${person.key} lists all three`, async () => {
          const ps = await participantsOf(person.page);
          return people.every((x) => ps.some((q) => q.id === x.id)) && ps;
        }, 10_000);
        for (const o of others) assert.equal(list.find((q) => q.id === o.id).name, o.name);
        for (const o of others.filter((x) => x.node && x.node !== person.node)) {
          await expectText(person.page.getByTestId(`tile-node-${o.id}`), o.node);
        }
        await waitFor(`${person.key} decodes video from both others`, async () => {
          const tiles = await tilesOf(person.page);
          return others.every((o) => (slotOf(tiles, o.id, 'camera') || {}).framesDecoded > 0);
        }, 20_000, 100);
        measure(`federation_join_to_remote_frames.${person.key}`, Date.now() - person.joinClick);
      }));
      const before = await Promise.all(people.map((x) => tilesOf(x.page)));
      await sleep(2_000);
      const after = await Promise.all(people.map((x) => tilesOf(x.page)));
      for (const [i, person] of people.entries()) {
        for (const o of people.filter((x) => x !== person)) {
          const [v0, v1] = [slotOf(before[i], o.id, 'camera'), slotOf(after[i], o.id, 'camera')];
          assert.ok(v0 && v1 && v1.framesDecoded > v0.framesDecoded + 5, `${person.key} sees ${o.key}'s video playing: ${JSON.stringify([v0, v1])}`);
          const [a0, a1] = [slotOf(before[i], o.id, 'mic'), slotOf(after[i], o.id, 'mic')];
          assert.ok(a0 && a1 && a1.packetsReceived > a0.packetsReceived, `${person.key} receives ${o.key}'s audio: ${JSON.stringify([a0, a1])}`);
          assert.ok(a1.audioLevel > 0 || a1.totalAudioEnergy > a0.totalAudioEnergy,
            `${person.key} hears ${o.key} (audio played, not just received): ${JSON.stringify([a0, a1])}`);
        }
      }
      await a.page.screenshot({ path: path.join(OUT, 'federation-room-xa-a.png') });
    });

    await test("a chat message from one commune reaches the other commune and the district", async () => {
      await a.page.getByTestId('chat').click();
      await a.page.getByTestId('chat-input').fill('Xã A báo cáo: tình hình ổn định');
      const t0 = Date.now();
      await a.page.getByTestId('chat-send').click();
      await Promise.all(people.map((person) => waitFor(`${person.key} gets the chat message`, async () => {
        const chat = await person.page.evaluate(() => window.xasoMeeting.chat());
        return chat.some((m) => m.text === 'Xã A báo cáo: tình hình ổn định' && m.from && m.from.id === a.id);
      }, 5_000, 50)));
      measure('federation_chat_to_everyone', Date.now() - t0);
    });

    await test("the district chair's vote is cast at both communes through the page and counted once at the district", async () => {
      const cp = chair.page;
      const question = 'Thông qua kế hoạch phòng chống bão?';
      const vote = cp.getByTestId('vote');
      if ((await vote.getAttribute('aria-pressed')) !== 'true') await vote.click();
      await cp.getByTestId('vote-question').fill(question);
      await cp.getByTestId('vote-option-0').fill('Đồng ý');
      await cp.getByTestId('vote-option-1').fill('Không đồng ý');
      const t0 = Date.now();
      await cp.getByTestId('vote-open').click();
      const { id } = await waitFor("the chair's page has the vote", async () => (await cp.evaluate(() => window.xasoMeeting.votes()))
        .find((v) => v.question === question), 5_000, 20);
      // each commune's page shows it (the panel opens by itself) and votes through its buttons
      for (const [person, option] of [[a, 0], [b, 1]]) {
        await person.page.getByTestId(`vote-${id}-option-${option}`).waitFor({ timeout: 5_000 });
        await person.page.getByTestId(`vote-${id}-option-${option}`).click();
        await person.page.getByTestId(`vote-${id}-voted`).waitFor({ timeout: 5_000 });
      }
      await waitFor('the chair sees two ballots', async () => (await cp.getByTestId(`vote-${id}-count`).getAttribute('data-cast')) === '2', 5_000, 50);
      measure('federation_vote_open_to_two_ballots_counted', Date.now() - t0);
      const voters = await cp.getByTestId(`vote-${id}-voters`).innerText();
      for (const person of [a, b]) assert.ok(voters.includes(person.name), `${person.name} in "${voters}"`);
      await cp.getByTestId(`vote-${id}-close`).click();
      // the result at every node: one each
      for (const person of people) {
        await waitFor(`${person.key} shows the result`, async () => (await person.page.getByTestId(`vote-${id}-tally-0`).count()) > 0, 5_000, 50);
        assert.equal(await person.page.getByTestId(`vote-${id}-tally-0`).getAttribute('data-count'), '1');
        assert.equal(await person.page.getByTestId(`vote-${id}-tally-1`).getAttribute('data-count'), '1');
      }
      await b.page.screenshot({ path: path.join(OUT, 'federation-vote-xa-b.png') });
    });

    await test('the chair at the district mutes the official at xa-b: within 3 s nobody receives their audio', async () => {
      const listeners = [chair, a];
      const packets = async (person) => (slotOf(await tilesOf(person.page), b.id, 'mic') || {}).packetsReceived || 0;
      const flowing = await Promise.all(listeners.map(packets));
      await sleep(500);
      const flowing2 = await Promise.all(listeners.map(packets));
      assert.ok(flowing2.every((n, i) => n > flowing[i]), `xa-b's audio flows before the mute: ${flowing} -> ${flowing2}`);
      const t0 = Date.now();
      await chair.page.getByTestId(`mute-${b.id}`).click();
      const last = listeners.map(() => ({ n: -1, at: t0 }));
      await waitFor("xa-b's audio stops everywhere", async () => {
        const now = Date.now();
        const counts = await Promise.all(listeners.map(packets));
        counts.forEach((n, i) => { if (n !== last[i].n) last[i] = { n, at: now }; });
        return last.every((l) => now - l.at >= 1_000);
      }, 8_000, 100);
      listeners.forEach((person, i) => measure(`federation_chair_mute_to_audio_stopped.${person.key}`, last[i].at - t0));
      for (const l of last) assert.ok(l.at - t0 <= 3_000, `audio stopped after ${l.at - t0} ms (more than 3 s)`);
      // the muted official is told at their commune, and cannot unmute
      await b.page.getByTestId('meeting-notice').waitFor({ timeout: 3_000 });
      assert.equal(await b.page.getByTestId('toggle-mic').getAttribute('data-state'), 'off');
      assert.equal(await b.page.getByTestId('toggle-mic').isDisabled(), true);
      // the chair and the other commune see the muted microphone on the tile
      for (const person of listeners) await person.page.getByTestId(`tile-mic-off-${b.id}`).waitFor({ timeout: 5_000 });
      await expectText(chair.page.getByTestId(`mute-${b.id}`), 'Cho bật lại micrô');
      // the chair lets them speak again: they unmute themselves, and are heard at the district
      await chair.page.getByTestId(`mute-${b.id}`).click();
      await waitFor('xa-b may unmute', async () => !(await b.page.getByTestId('toggle-mic').isDisabled()), 5_000);
      await b.page.getByTestId('toggle-mic').click();
      const n0 = await packets(chair);
      await waitFor("xa-b's audio reaches the district again", async () => (await packets(chair)) > n0 + 20, 8_000);
      await chair.page.screenshot({ path: path.join(OUT, 'federation-chair.png') });
    });

    await test("a hand raised at xa-b is in the district chair's hands panel, and lowered there again", async () => {
      const t0 = Date.now();
      await b.page.getByTestId('raise-hand').click();
      await chair.page.getByTestId(`hand-${b.id}`).waitFor({ timeout: 5_000 });
      measure('federation_hand_to_chair', Date.now() - t0);
      await a.page.getByTestId(`tile-hand-${b.id}`).waitFor({ state: 'visible', timeout: 5_000 });
      await b.page.getByTestId('raise-hand').click();
      await chair.page.getByTestId(`hand-${b.id}`).waitFor({ state: 'detached', timeout: 5_000 });
    });

    await test('a PDF shared on the page at xa-b is listed at the district and at xa-a, whose link gives the same bytes', async () => {
      const name = 'Kế hoạch phòng chống bão.pdf';
      const pdf = Buffer.from(`%PDF-1.4\n% Ke hoach phong chong bao\n${'0123456789'.repeat(20_000)}\n%%EOF\n`, 'latin1');
      for (const person of people) {
        const btn = person.page.getByTestId('documents');
        if ((await btn.getAttribute('aria-pressed')) !== 'true') await btn.click();
      }
      await b.page.getByTestId('document-file').setInputFiles({ name, mimeType: 'application/pdf', buffer: pdf });
      const t0 = Date.now();
      await b.page.getByTestId('document-upload').click();
      await Promise.all([chair, a].map(async (person) => {
        await waitFor(`${person.key} lists the document`, () => person.page.evaluate((n) => [...document.querySelectorAll('[data-testid^="document-link-"]')]
          .some((x) => x.textContent === n), name), 10_000, 20);
        measure(`federation_document_to_listed.${person.key}`, Date.now() - t0);
      }));
      const doc = (await a.page.evaluate(() => window.xasoMeeting.documents())).find((d) => d.name === name);
      assert.ok(doc && doc.size === pdf.length && doc.mime === 'application/pdf', JSON.stringify(doc));
      const href = await a.page.getByTestId(`document-link-${doc.id}`).getAttribute('href');
      const got = await a.page.request.get(new URL(href, a.page.url()).href);
      assert.equal(got.status(), 200);
      assert.ok(Buffer.from(await got.body()).equals(pdf), 'the bytes at xa-a are the ones shared at xa-b');
    });

    await test("the chair pins xa-a's official: their tile is the large one at the district, and their picture keeps coming", async () => {
      const cp = chair.page;
      await cp.getByTestId(`tile-${a.id}`).hover();
      await cp.getByTestId(`focus-${a.id}`).click();
      await waitFor('the pinned tile is large', async () => (await cp.getByTestId(`tile-${a.id}`).getAttribute('class')).includes('big'), 3_000, 50);
      assert.equal(await cp.getByTestId(`focus-${a.id}`).getAttribute('aria-pressed'), 'true');
      await expectText(cp.getByTestId(`focus-${a.id}`), 'Bỏ ghim');
      const frames = async () => (slotOf(await tilesOf(cp), a.id, 'camera') || {}).framesDecoded || 0;
      const f0 = await frames();
      await waitFor("xa-a's picture keeps coming", async () => (await frames()) > f0 + 10, 5_000, 100);
      await cp.screenshot({ path: path.join(OUT, 'federation-pinned.png') });
      await cp.getByTestId(`focus-${a.id}`).click();
      await expectText(cp.getByTestId(`focus-${a.id}`), 'Ghim');
    });

    await test('no page had a script error', async () => {
      assert.deepEqual(pageErrors, []);
    });
  } catch (err) {
    results.failed += 1;
    results.failures.push(`CRASH ${err.message}`);
    console.log(`CRASH ${err.stack || err}`);
  } finally {
    if (browser) await browser.close().catch(() => {});
    for (const s of servers) await s.stop();
  }
  summary(results);
  process.exit(results.failed ? 1 : 0);
}

main();
