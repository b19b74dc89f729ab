// Live ("Trực tiếp"): a grid of 1, 4, 9 or 16 cameras played over WebRTC (WHEP, see
// whep.js), with each camera's recording status (GET /api/cameras/{id}/status, every 5 s).
//
// - Tiles of 4+ tile layouts and of low-bandwidth mode play the sub-stream (?stream=sub),
//   a lone tile and a full-screen tile (double-click) the main stream.
// - A tile whose stream breaks (connection 'failed', or 'disconnected' for 3 s, or no new
//   decoded frame for 5 s) DELETEs its session and reconnects after 1, 2, 4, 8, 10, 10… s.
// - A refused stream shows the server's reason in the tile: never a black tile without one.
// - Where WebRTC cannot pass (no RTCPeerConnection, the connection fails, or no picture and
//   no connection after FALLBACK_MS), the page falls back to fragmented MP4 over a
//   WebSocket (mse.js) for that tile and every tile opened after it; the tile says so.
// - Leaving the page (router, language switch, logout, closing the tab) ends every session.
//
// For tests: window.xasoLive.tiles() -> [{cameraId, state, transport, ice, framesDecoded}]
// (ice: 'udp' or 'tcp' once a WebRTC tile is live).
import { h, fill } from '../dom.js';
import { t } from '../i18n.js';
import { api } from '../api.js';
import { page, errorText, cameraLabel, statusView, statusPoller } from '../components.js';
import { whepConnect, whepSupported, framesDecoded, iceProtocol } from '../whep.js';
import { mseConnect, mseSupported } from '../mse.js';

const LAYOUTS = [1, 4, 9, 16];
const LAYOUT_KEY = 'xaso.live.layout';
const TICK_MS = 1000; // getStats poll and stall check, per tile
const LOSS_MS = 3000; // 'disconnected' this long: reconnect
const STALL_MS = 5000; // no new decoded frame this long: reconnect
const FIRST_FRAME_MS = 10_000; // a new session may take this long for its first frame (key frame)
const FALLBACK_MS = 4000; // WebRTC neither connected nor showing a picture by then: use MSE
const BACKOFF_MS = [1000, 2000, 4000, 8000, 10_000];
const MAX_RETRY_AFTER_MS = 30_000;
// refusals that another try will not change: the tile waits for the user's "retry"
const FINAL_STATUSES = [400, 401, 403, 404, 415, 501];

function storedLayout() {
  try {
    const n = Number(localStorage.getItem(LAYOUT_KEY));
    return LAYOUTS.includes(n) ? n : null;
  } catch {
    return null;
  }
}

function storeLayout(n) {
  try {
    localStorage.setItem(LAYOUT_KEY, String(n));
  } catch {
    // private mode: the choice just won't persist
  }
}

/** The smallest layout that shows `count` cameras (16 at most). */
function fitLayout(count) {
  return LAYOUTS.find((n) => n >= count) || LAYOUTS[LAYOUTS.length - 1];
}

const side = (n) => Math.round(Math.sqrt(n));

function whepUrl(id, stream) {
  return `/api/cameras/${encodeURIComponent(id)}/whep?stream=${stream}`;
}

function mseUrl(id, stream) {
  return `/api/cameras/${encodeURIComponent(id)}/mse?stream=${stream}`;
}

/** Whether trying again may help after `err` (a WHEP or MSE refusal or failure). */
function retryable(err) {
  if (err.code === 'webrtc' && !whepSupported()) return false;
  if (err.code === 'codec' || (err.code === 'mse' && !mseSupported())) return false;
  return !FINAL_STATUSES.includes(err.status);
}

/**
 * One camera tile: video, name, connection state, status, error.
 * `streamWanted()` says which stream ('main' or 'sub') the tile should play now;
 * `onFullscreen()` is called on a double-click (or Enter).
 */
function liveTile(camera, { streamWanted, onFullscreen, transport, iceServers, aacToOpus }) {
  const id = camera.id;
  const video = h('video', {
    class: 'live-video', testid: `video-${id}`, muted: true, autoplay: true, playsinline: true,
  });
  video.muted = true; // the attribute alone does not mute an element made by script
  const stateEl = h('span', { class: 'live-state', testid: `tile-state-${id}` });
  // AAC cameras are heard only where the server transcodes (and never on the MSE fallback)
  const noAudioEl = h('span', {
    class: 'live-transport', testid: `tile-noaudio-${id}`, hidden: true, title: t('live.noAudioHint'),
  }, t('live.noAudio'));
  const transportEl = h('span', {
    class: 'live-transport', testid: `tile-transport-${id}`, hidden: true, title: t('live.transport.mseHint'),
  }, t('live.transport.mse'));
  const message = h('p', { class: 'live-message', testid: `tile-message-${id}` });
  const errorEl = h('p', { class: 'live-error', testid: `tile-error-${id}`, hidden: true });
  const retryButton = h('button', {
    type: 'button', class: 'small', testid: `tile-retry-${id}`, hidden: true, onclick: retryNow,
  }, t('common.retry'));
  const status = statusView(id);
  const el = h('div', {
    class: 'live-tile', testid: `tile-${id}`, tabindex: '0', title: t('live.fullscreenHint'),
    'aria-label': cameraLabel(camera),
    ondblclick: (e) => {
      if (!e.target.closest('button')) onFullscreen();
    },
    onkeydown: (e) => {
      if (e.key === 'Enter' && e.target === el) onFullscreen();
    },
  },
  video,
  h('div', { class: 'live-overlay' }, errorEl, message, retryButton),
  // "camera-row-<id>": name and status, as in the camera list this page used to show
  h('div', { class: 'live-top', testid: `camera-row-${id}` },
    h('span', { class: 'live-name', title: cameraLabel(camera) }, cameraLabel(camera)), stateEl, transportEl, noAudioEl, status.badge),
  h('div', { class: 'live-bottom' }, status.details));

  let state = null; // connecting | live | reconnecting | error
  let session = null; // {transport, framesDecoded(), close()} (+ pc for WebRTC)
  let stream = null; // 'main' or 'sub': what the session plays (or is asked for)
  let gen = 0; // bumped by every (re)connect, loss and destroy: stale async results are dropped
  let failures = 0; // tries in a row that failed: the backoff step
  let retryTimer = null;
  let lossTimer = null;
  let frames = 0; // latest framesDecoded from getStats (kept across sessions until the next figure)
  let sessionFrames = 0; // framesDecoded of the current session at the last poll
  let lastProgress = 0; // when the current session last decoded a new frame (or started)
  let shown = false; // the current session has decoded a frame
  let waitingForCamera = false; // the last try was answered 503 (camera not streaming)
  let destroyed = false;

  function setState(next, text = '') {
    state = next;
    el.dataset.state = next;
    stateEl.dataset.state = next;
    stateEl.textContent = t(`live.state.${next}`);
    message.textContent = text;
    message.hidden = !text;
  }

  function showError(text, detail = '') {
    errorEl.textContent = text;
    errorEl.title = detail || text; // small tiles cut long texts
    errorEl.hidden = false;
  }

  function clearError() {
    errorEl.textContent = '';
    errorEl.hidden = true;
    retryButton.hidden = true;
  }

  function clearTimers() {
    if (retryTimer !== null) clearTimeout(retryTimer);
    if (lossTimer !== null) clearTimeout(lossTimer);
    retryTimer = null;
    lossTimer = null;
  }

  function play() {
    const p = video.play();
    if (p && p.catch) p.catch(() => {}); // muted autoplay is allowed; a detached element just waits
  }

  /** End the current session (DELETE) and ignore whatever it still reports. */
  function dropSession() {
    gen += 1;
    clearTimers();
    const old = session;
    session = null;
    // the video keeps its last frame until the next session replaces it
    return old ? old.close() : Promise.resolve();
  }

  /** Open a new session for the wanted stream, ending the current one first. */
  async function connect() {
    const closing = dropSession();
    const my = gen;
    stream = streamWanted(); // at once: a second switchStream() in this task must not connect again
    el.dataset.stream = stream;
    const via = transport.get();
    el.dataset.transport = via;
    transportEl.hidden = via !== 'mse';
    await closing;
    if (my !== gen || destroyed) return;
    let s;
    try {
      if (via === 'mse') {
        s = await mseConnect(mseUrl(id, stream), video, { onState: (st, err) => onMseState(my, st, err) });
      } else {
        s = await whepConnect(whepUrl(id, stream), {
          onState: (st) => onConnectionState(my, st), iceServers: iceServers(),
        });
        s.transport = 'webrtc';
        s.framesDecoded = () => framesDecoded(s.pc);
      }
    } catch (err) {
      if (my !== gen) return;
      if (via === 'webrtc' && err.code === 'webrtc' && mseSupported()) {
        fallBack(); // this browser cannot set up WebRTC at all
        return;
      }
      failed(err);
      return;
    }
    if (my !== gen) {
      s.close(); // left, switched or lost meanwhile
      return;
    }
    session = s;
    sessionFrames = 0;
    lastProgress = Date.now();
    shown = false;
    if (s.stream) video.srcObject = s.stream;
    play();
    clearError(); // the server took the offer: whatever failed before is over
    setState(state === 'reconnecting' ? 'reconnecting' : 'connecting', t('live.msg.waiting'));
  }

  /** A try failed: show why, and try again later unless that cannot help. */
  function failed(err) {
    waitingForCamera = err.status === 503;
    video.srcObject = null; // no stale picture under an error
    if (waitingForCamera) showError(t('live.notStreaming'), err.message);
    else if (err.status === 400 && /H\.265/.test(err.message || '')) showError(t('live.h265'), err.message);
    else if (err.code === 'webrtc') showError(t('error.code.webrtc'), err.message); // browser detail: hover
    else showError(errorText(err));
    if (!retryable(err)) {
      setState('error');
      retryButton.hidden = false;
      return;
    }
    const hint = err.retryAfter ? Math.min(err.retryAfter * 1000, MAX_RETRY_AFTER_MS) : 0;
    const delay = scheduleRetry(hint);
    setState('error', t('live.msg.retryIn', { n: Math.round(delay / 1000) }));
  }

  /** The stream broke: DELETE the session now, reconnect after the backoff. */
  function lost(reasonKey) {
    dropSession();
    scheduleRetry(0);
    setState('reconnecting', t(reasonKey));
  }

  function scheduleRetry(minDelay) {
    const delay = Math.max(minDelay, BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)]);
    failures += 1;
    if (retryTimer !== null) clearTimeout(retryTimer);
    retryTimer = setTimeout(() => {
      retryTimer = null;
      connect();
    }, delay);
    return delay;
  }

  /** WebRTC cannot pass here: this tile and the ones opened after it use MSE. */
  function fallBack() {
    transport.fallBack();
    failures = 0;
    setState(state === 'reconnecting' ? 'reconnecting' : 'connecting', t('live.msg.fallback'));
    connect();
  }

  function onMseState(my, st, err) {
    if (my !== gen) return;
    if (st !== 'failed') return;
    if (err && err.status && err.status >= 400) {
      dropSession();
      failed(err); // refused (e.g. the camera stopped): say why, retry as usual
    } else {
      lost('live.msg.lost');
    }
  }

  function onConnectionState(my, st) {
    if (my !== gen) return;
    if (st === 'failed' && !shown && mseSupported()) {
      fallBack(); // never connected: UDP is probably blocked on the way
    } else if (st === 'failed') {
      lost('live.msg.lost');
    } else if (st === 'disconnected') {
      if (lossTimer === null) {
        lossTimer = setTimeout(() => {
          lossTimer = null;
          const now = session && session.pc.connectionState;
          if (my === gen && (now === 'disconnected' || now === 'failed')) lost('live.msg.lost');
        }, LOSS_MS);
      }
    } else if (lossTimer !== null) {
      clearTimeout(lossTimer); // back to 'connected' in time
      lossTimer = null;
    }
  }

  function becameLive() {
    delete el.dataset.ice;
    shown = true;
    failures = 0;
    waitingForCamera = false;
    clearError();
    setState('live');
  }

  /** Every second: read framesDecoded, go live on the first frame, reconnect a stalled stream. */
  async function tick() {
    const s = session;
    const my = gen;
    if (!s) return;
    let n;
    try {
      n = await s.framesDecoded();
    } catch {
      return; // closed meanwhile
    }
    if (my !== gen) return;
    if (s.pc && shown && !el.dataset.ice) {
      const p = await iceProtocol(s.pc).catch(() => null);
      if (my !== gen) return;
      if (p) el.dataset.ice = p;
    }
    const now = Date.now();
    if (n !== null) {
      frames = n;
      if (n > sessionFrames) {
        sessionFrames = n;
        lastProgress = now;
        if (state !== 'live') becameLive();
      }
    }
    if (document.hidden) {
      lastProgress = now; // hidden tabs may not decode: judge again once shown
      return;
    }
    if (!shown && s.transport === 'webrtc' && s.pc.connectionState !== 'connected'
      && now - lastProgress > FALLBACK_MS && mseSupported()) {
      fallBack();
      return;
    }
    if (now - lastProgress > (shown ? STALL_MS : FIRST_FRAME_MS)) {
      lost(shown ? 'live.msg.stalled' : 'live.msg.noPicture');
    }
  }

  function retryNow() {
    failures = 0;
    clearError();
    setState('connecting', t('live.msg.connecting'));
    connect();
  }

  // the first frame shows before the next poll: read the stats at once
  video.addEventListener('playing', () => tick());

  return {
    id,
    el,
    /** For the status poller: redraws the status, and retries at once when the camera comes up. */
    statusView: {
      update(s) {
        status.update(s);
        const aac = !!s && s.audio_codec === 'aac';
        noAudioEl.hidden = !(aac && (!aacToOpus() || el.dataset.transport === 'mse'));
        if (s && s.state === 'streaming' && waitingForCamera && retryTimer !== null) {
          waitingForCamera = false;
          clearTimeout(retryTimer);
          retryTimer = null;
          connect();
        }
      },
    },
    start() {
      setState('connecting', t('live.msg.connecting'));
      connect();
    },
    /** Reconnect when the wanted stream changed (layout, full screen, low bandwidth). */
    switchStream() {
      if (destroyed || streamWanted() === stream) return;
      failures = 0;
      clearError();
      setState('connecting', t('live.msg.connecting'));
      connect();
    },
    /** After the tile moved in the grid: make sure the video plays. */
    resume() {
      if ((video.srcObject || video.src) && video.paused) play();
    },
    tick,
    info: () => ({
      cameraId: id, state, transport: el.dataset.transport, ice: el.dataset.ice || null, framesDecoded: frames,
    }),
    destroy() {
      destroyed = true;
      const done = dropSession();
      video.srcObject = null;
      return done;
    },
  };
}

/** The live page. */
export function render() {
  const box = h('div', { class: 'live-box' }, h('p', { class: 'muted' }, t('common.loading')));
  const root = page('live.title',
    h('p', { class: 'note small', testid: 'live-note' }, t('live.note')),
    box);
  const poller = statusPoller(root);

  let cameras = []; // visible to the user, in id order
  let layout = storedLayout(); // null: fit the cameras (once they are known)
  let lowBandwidth = false;
  let first = 0; // index in `cameras` of the first tile shown
  let fullscreenId = null;
  let left = false;
  // 'webrtc' until WebRTC proves unable to pass here, then 'mse' for the rest of the visit
  let via = whepSupported() ? 'webrtc' : 'mse';
  const transport = { get: () => via, fallBack: () => { via = 'mse'; } };
  let iceServers = []; // [webrtc] ice_servers of the server's configuration (none by default)
  let aacToOpus = false; // whether AAC cameras are heard (the server transcodes to Opus)
  const tiles = new Map(); // camera id -> tile, for the cameras in the grid

  // ---- elements ----------------------------------------------------------------
  const layoutButtons = LAYOUTS.map((n) => h('button', {
    type: 'button', testid: `layout-${n}`, 'aria-pressed': 'false',
    title: t('live.layout', { size: `${side(n)}×${side(n)}` }),
    'aria-label': t('live.layout', { size: `${side(n)}×${side(n)}` }),
    onclick: () => chooseLayout(n),
  }, `${side(n)}×${side(n)}`));
  const lowSwitch = h('input', {
    type: 'checkbox', id: 'live-low-bandwidth', testid: 'low-bandwidth', role: 'switch',
    onchange: () => setLowBandwidth(lowSwitch.checked),
  });
  const prevButton = h('button', { type: 'button', testid: 'prev-camera', onclick: () => step(-1) }, '‹');
  const nextButton = h('button', { type: 'button', testid: 'next-camera', onclick: () => step(1) }, '›');
  const position = h('span', { class: 'muted small live-position', testid: 'live-position' });
  const pager = h('div', { class: 'live-pager' }, prevButton, position, nextButton);
  const toolbar = h('div', { class: 'live-toolbar' },
    h('div', { class: 'live-layouts', role: 'group', 'aria-label': t('live.layouts') },
      h('span', { class: 'muted small' }, t('live.layouts')), layoutButtons),
    h('label', { class: 'check', for: 'live-low-bandwidth', title: t('live.lowBandwidthHint') },
      lowSwitch, t('live.lowBandwidth')),
    pager);
  // "camera-list": the cameras of this page, as in the list the page used to show
  const grid = h('div', { class: 'live-grid', testid: 'camera-list' });

  // ---- grid --------------------------------------------------------------------
  const perPage = () => (lowBandwidth ? 1 : layout);

  function streamFor(id) {
    if (lowBandwidth) return 'sub';
    return fullscreenId === id || perPage() === 1 ? 'main' : 'sub';
  }

  function draw() {
    const n = perPage();
    first = first < cameras.length ? Math.floor(first / n) * n : 0;
    const shown = cameras.slice(first, first + n);
    const ids = new Set(shown.map((c) => c.id));
    for (const [id, tile] of tiles) {
      if (!ids.has(id)) {
        tile.destroy(); // DELETEs its session
        tiles.delete(id);
      }
    }
    poller.keep([...ids]);
    let added = false;
    const cells = shown.map((c) => {
      let tile = tiles.get(c.id);
      if (!tile) {
        tile = liveTile(c, {
          streamWanted: () => streamFor(c.id), onFullscreen: () => toggleFullscreen(tile), transport,
          iceServers: () => iceServers,
          aacToOpus: () => aacToOpus,
        });
        tiles.set(c.id, tile);
        poller.watch(c.id, tile.statusView);
        tile.start();
        added = true;
      }
      return tile.el;
    });
    while (cells.length < n) cells.push(h('div', { class: 'live-empty', 'aria-hidden': 'true' }));
    grid.className = `live-grid layout-${n}`;
    grid.replaceChildren(...cells);
    for (const tile of tiles.values()) {
      tile.switchStream();
      tile.resume();
    }
    if (added) poller.refresh();
    drawControls(shown.length);
  }

  function drawControls(count) {
    const n = perPage();
    for (const [i, b] of layoutButtons.entries()) {
      b.setAttribute('aria-pressed', String(LAYOUTS[i] === n));
      b.disabled = lowBandwidth; // forced to one tile
    }
    lowSwitch.checked = lowBandwidth;
    // low bandwidth always cycles cameras; a grid pages only when there are more cameras than tiles
    pager.hidden = !lowBandwidth && cameras.length <= n;
    const prevKey = lowBandwidth ? 'live.prevCamera' : 'live.prevPage';
    const nextKey = lowBandwidth ? 'live.nextCamera' : 'live.nextPage';
    prevButton.title = t(prevKey);
    prevButton.setAttribute('aria-label', t(prevKey));
    nextButton.title = t(nextKey);
    nextButton.setAttribute('aria-label', t(nextKey));
    position.textContent = count === 1
      ? t('live.positionOne', { n: first + 1, total: cameras.length })
      : t('live.position', { from: first + 1, to: first + count, total: cameras.length });
  }

  function chooseLayout(n) {
    layout = n;
    storeLayout(n);
    draw();
  }

  function setLowBandwidth(on) {
    lowBandwidth = on;
    draw(); // `first` stays: the camera in view stays in view
  }

  function step(dir) {
    const n = perPage();
    const pages = Math.max(1, Math.ceil(cameras.length / n));
    const at = Math.floor(first / n);
    first = ((at + dir + pages) % pages) * n;
    draw();
  }

  // ---- full screen -------------------------------------------------------------
  function toggleFullscreen(tile) {
    if (document.fullscreenElement === tile.el) {
      document.exitFullscreen().catch(() => {});
    } else if (tile.el.requestFullscreen) {
      tile.el.requestFullscreen().catch(() => {});
    }
  }

  function onFullscreenChange() {
    const el = document.fullscreenElement;
    const tile = [...tiles.values()].find((x) => x.el === el);
    fullscreenId = tile ? tile.id : null;
    for (const x of tiles.values()) x.switchStream(); // main while full screen, back to sub after
  }

  // ---- leaving -----------------------------------------------------------------
  function leave() {
    if (left) return;
    left = true;
    clearInterval(ticker);
    window.removeEventListener('hashchange', onHashChange);
    window.removeEventListener('pagehide', leave);
    document.removeEventListener('fullscreenchange', onFullscreenChange);
    poller.stop();
    for (const tile of tiles.values()) tile.destroy(); // closes the connection, DELETEs the session
    tiles.clear();
    if (window.xasoLive === exposed) delete window.xasoLive;
  }

  function onHashChange() {
    if (!root.isConnected) leave();
  }

  // The router runs first on hashchange; a language switch or a logout redraws without
  // one, which the one-second tick notices.  (The router places the page as soon as
  // render() returns, so a page out of the document later on has been left.)
  const ticker = setInterval(() => {
    if (!root.isConnected) {
      leave();
      return;
    }
    for (const tile of tiles.values()) tile.tick();
  }, TICK_MS);
  window.addEventListener('hashchange', onHashChange);
  window.addEventListener('pagehide', leave);
  document.addEventListener('fullscreenchange', onFullscreenChange);

  const exposed = {
    tiles: () => cameras.filter((c) => tiles.has(c.id)).map((c) => tiles.get(c.id).info()),
  };
  window.xasoLive = exposed;

  // ---- start -------------------------------------------------------------------
  Promise.all([
    // This node's cameras and those of the nodes below it (relayed over their links).
    api.get('/api/cameras').then((l) => (Array.isArray(l) ? l : [])),
    api.get('/api/live/config').catch(() => ({})),
  ]).then(
    ([list, config]) => {
      iceServers = config.ice_servers || [];
      aacToOpus = config.aac_to_opus === true;
      if (left || !root.isConnected) {
        leave();
        return;
      }
      cameras = [...list].sort((a, b) => a.id - b.id);
      if (!cameras.length) {
        fill(box, grid, h('p', { class: 'muted', testid: 'camera-list-empty' }, t('cameras.none')));
        return;
      }
      if (layout === null) layout = fitLayout(cameras.length);
      fill(box, toolbar, grid);
      draw();
    },
    (err) => {
      if (left) return;
      if (err.status === 403) {
        fill(box, h('p', { class: 'notice', testid: 'no-access' }, t('common.noAccess')));
      } else {
        fill(box, h('p', { class: 'status error', testid: 'page-error' }, errorText(err)));
      }
    },
  );
  return root;
}
