// Recordings ("Xem lại"): pick a camera and a local day, see its footage on a
// timeline, click to play (10-minute windows of playback.mp4, chained when one
// ends), step and speed controls, and export a range as an MP4 download.
//
// Wall-clock time of the frame on screen = window start + video.currentTime
// (the server's MP4 starts exactly at `start` and holds the last frame across gaps).
import { h, fill } from '../dom.js';
import { t, formatTime } from '../i18n.js';
import { ApiError, api } from '../api.js';
import { page, field, statusLine, errorText, cameraLabel } from '../components.js';

const WINDOW_MS = 10 * 60_000; // one playback.mp4 request
const ZOOM_MS = 3_600_000; // the zoomed timeline shows one hour
const PAN_MS = 30 * 60_000;
const FRAME_S = 1 / 25;
const SPEEDS = [1, 2, 4, 8, 16];
const REFRESH_MS = 10_000; // today's footage grows: reload the spans this often
const LIVE_RETRIES = 10; // at the end of today's footage, wait this many times for more
const LIVE_RETRY_MS = 3_000;
const MIN_WINDOW_MS = 2_000;
const ROLES_EXPORT = ['admin', 'reviewer'];
// Hover thumbnails (snapshot.jpg): every request is audited, so ask only when the pointer
// rests on footage, for a time rounded to THUMB_STEP_MS, and keep the last few images.
const THUMB_DELAY_MS = 250;
const THUMB_STEP_MS = 10_000;
const THUMB_WIDTH = 160;
const THUMB_CACHE = 30;

const pad = (n) => String(n).padStart(2, '0');

/** Local "HH:MM:SS" of a time in ms. */
export function clockText(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local "YYYY-MM-DD" (an `<input type=date>` value). */
export function dayValue(d = new Date()) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** "YYYY-MM-DD" -> [start, end) of that local day in ms, or null. */
export function dayRange(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value || '');
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]) - 1, Number(m[3])];
  const start = new Date(y, mo, d).getTime();
  const end = new Date(y, mo, d + 1).getTime();
  return Number.isNaN(start) ? null : [start, end];
}

/** ms -> `<input type=datetime-local step=1>` value in local time. */
function localInputValue(ms) {
  return `${dayValue(new Date(ms))}T${clockText(ms)}`;
}

/** `<input type=datetime-local>` value (local time) -> ms, NaN when empty or invalid. */
function parseLocalInput(value) {
  return value ? new Date(value).getTime() : NaN;
}

const iso = (ms) => new Date(ms).toISOString();
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

function durationText(ms) {
  const s = Math.round(ms / 1000);
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  if (hours > 0) return t('recordings.duration.hm', { h: hours, m: minutes });
  if (minutes > 0) return t('recordings.duration.ms', { m: minutes, s: s % 60 });
  return t('recordings.duration.s', { s });
}

/** The hash query (#/recordings?camera=1&day=2024-05-01). */
function hashParams() {
  const q = location.hash.split('?')[1] || '';
  return new URLSearchParams(q);
}

/** An ApiError from a non-OK response of a media URL (JSON error body when there is one). */
async function responseError(res) {
  let err = {};
  try {
    err = (await res.json()).error || {};
  } catch {
    err = {};
  }
  return new ApiError(res.status, err.code || `http_${res.status}`, err.message || res.statusText);
}

/**
 * Why a media URL failed: asks for one byte that is not the first (so the request is
 * not taken for a playback or export of its own) and reads the server's JSON error.
 * Resolves to null when the server answers fine (the browser could not decode it).
 */
async function mediaError(url) {
  let res;
  try {
    res = await fetch(url, { credentials: 'same-origin', headers: { Range: 'bytes=1-1' } });
  } catch (e) {
    return new ApiError(0, 'network', e.message);
  }
  if (res.ok || res.status === 416) return null;
  return responseError(res);
}

export function render({ me } = {}) {
  const canExport = !me || ROLES_EXPORT.includes(me.role);
  const params = hashParams();
  const status = statusLine('rec-status');
  const footageStatus = statusLine('rec-footage-status');

  // ---- state -----------------------------------------------------------------
  let cameraId = null;
  let day = dayRange(dayValue()); // [start, end) in ms
  let spans = []; // [{start, end}] in ms, oldest first
  let gaps = [];
  let footageFailed = false; // the last listing was refused or failed
  let loadSeq = 0;
  let zoomed = false;
  let view = { start: day[0], end: day[1] };
  let focus = null; // last clicked time: the zoom centre
  let win = null; // the loaded playback window {start, end}
  let wantPlaying = false; // the user asked to play (go on with the next window)
  let liveRetries = 0;
  let selection = null; // {a, b} ms, a <= b
  let drag = null;
  let suppressClick = false;
  let rafId = 0;
  let refreshTimer = null;
  let continueTimer = null;
  // thumbnails: key -> object URL, or null (no image there); oldest first
  const thumbs = new Map();
  const thumbPending = new Set();
  let thumbsOff = false; // 501 (no media pipelines) or refused: never ask again
  let thumbTimer = null;
  let thumbWanted = null; // key of the thumbnail for the point under the pointer

  // ---- elements ----------------------------------------------------------------
  const cameraSelect = h('select', { id: 'rec-camera', testid: 'rec-camera', onchange: () => selectCamera(cameraSelect.value) });
  const dayInput = h('input', {
    id: 'rec-day', testid: 'rec-day', type: 'date', value: dayValue(), max: dayValue(),
    onchange: () => selectDay(dayInput.value),
  });
  const dayButtons = h('div', { class: 'rec-day-buttons' },
    h('button', { type: 'button', testid: 'rec-day-prev', title: t('recordings.prevDay'), 'aria-label': t('recordings.prevDay'), onclick: () => shiftDay(-1) }, '‹'),
    h('button', { type: 'button', testid: 'rec-day-next', title: t('recordings.nextDay'), 'aria-label': t('recordings.nextDay'), onclick: () => shiftDay(1) }, '›'));
  const zoomButton = h('button', {
    type: 'button', testid: 'rec-zoom', 'aria-pressed': 'false', onclick: () => setZoom(!zoomed, focusPoint()),
  }, t('recordings.zoom'));
  const panBack = h('button', { type: 'button', testid: 'rec-pan-back', hidden: true, title: t('recordings.panBack'), 'aria-label': t('recordings.panBack'), onclick: () => pan(-PAN_MS) }, '«');
  const panForward = h('button', { type: 'button', testid: 'rec-pan-forward', hidden: true, title: t('recordings.panForward'), 'aria-label': t('recordings.panForward'), onclick: () => pan(PAN_MS) }, '»');
  const summary = h('p', { class: 'muted small rec-summary', testid: 'rec-summary' });

  const spansLayer = h('div', { class: 'rec-layer' });
  const ticksLayer = h('div', { class: 'rec-ticks', 'aria-hidden': 'true' });
  const selectionEl = h('div', { class: 'rec-selection', testid: 'rec-selection', hidden: true });
  const playhead = h('div', { class: 'rec-playhead', testid: 'rec-playhead', hidden: true });
  const hoverLine = h('div', { class: 'rec-hover-line', hidden: true });
  const thumbImg = h('img', { class: 'rec-thumb', testid: 'rec-thumb', alt: '', width: String(THUMB_WIDTH), hidden: true });
  const hoverTime = h('span', { class: 'rec-hover-time' });
  const hoverTip = h('div', { class: 'rec-hover', testid: 'rec-hover', hidden: true }, thumbImg, hoverTime);
  const track = h('div', {
    class: 'rec-timeline', testid: 'rec-timeline', tabindex: '0', role: 'group',
    'aria-label': t('recordings.timeline'),
    onpointermove: onPointerMove, onpointerleave: hideHover, onpointerdown: onPointerDown,
    onpointerup: onPointerUp, onpointercancel: () => { drag = null; }, onclick: onTrackClick, onkeydown: onTrackKey,
  }, h('div', { class: 'rec-bar' }, spansLayer, selectionEl), ticksLayer, playhead, hoverLine, hoverTip);
  track.addEventListener('wheel', onWheel, { passive: false });

  const video = h('video', { class: 'rec-video', testid: 'rec-video', playsinline: true, preload: 'auto' });
  const placeholder = h('div', { class: 'rec-placeholder', testid: 'rec-placeholder' }, t('recordings.pickHint'));
  const clock = h('output', { class: 'rec-clock', testid: 'rec-clock', title: t('recordings.clock') }, '--:--:--');
  const playButton = h('button', { type: 'button', class: 'primary', testid: 'rec-play', onclick: togglePlay }, t('recordings.play'));
  const stepBack = h('button', {
    type: 'button', testid: 'rec-step-back', title: t('recordings.stepBack'), 'aria-label': t('recordings.stepBack'),
    onclick: () => step(-1),
  }, '❚◀');
  const stepForward = h('button', {
    type: 'button', testid: 'rec-step-forward', title: t('recordings.stepForward'), 'aria-label': t('recordings.stepForward'),
    onclick: () => step(1),
  }, '▶❚');
  const speedSelect = h('select', {
    id: 'rec-speed', testid: 'rec-speed', 'aria-label': t('recordings.speed'),
    onchange: () => setSpeed(Number(speedSelect.value)),
  }, SPEEDS.map((s) => h('option', { value: String(s) }, `${s}×`)));
  const muteButton = h('button', { type: 'button', testid: 'rec-mute', onclick: () => { video.muted = !video.muted; updateControls(); } }, t('recordings.mute'));

  // export
  const exportStatus = statusLine('rec-export-status');
  const exportStart = h('input', {
    id: 'rec-export-start', testid: 'rec-export-start', type: 'datetime-local', step: '1', onchange: selectionFromInputs,
  });
  const exportEnd = h('input', {
    id: 'rec-export-end', testid: 'rec-export-end', type: 'datetime-local', step: '1', onchange: selectionFromInputs,
  });
  const exportButton = h('button', { type: 'button', class: 'primary', testid: 'rec-export', onclick: doExport }, t('recordings.export.submit'));
  const markStart = h('button', {
    type: 'button', testid: 'rec-mark-start', title: t('recordings.export.markHint'),
    onclick: () => markFromPlayback(exportStart),
  }, t('recordings.export.markStart'));
  const markEnd = h('button', {
    type: 'button', testid: 'rec-mark-end', title: t('recordings.export.markHint'),
    onclick: () => markFromPlayback(exportEnd),
  }, t('recordings.export.markEnd'));

  const viewer = h('div', { class: 'rec-viewer', hidden: true },
    h('div', { class: 'form-row rec-pickers' },
      field('rec-camera', t('recordings.camera'), cameraSelect),
      h('div', { class: 'field' }, h('label', { for: 'rec-day' }, t('recordings.day')), h('div', { class: 'rec-day-row' }, dayInput, dayButtons)),
      h('div', { class: 'rec-zoom-row' }, panBack, zoomButton, panForward)),
    h('div', { class: 'card rec-timeline-card' },
      track,
      h('p', { class: 'muted small rec-help' }, canExport ? t('recordings.timelineHelpExport') : t('recordings.timelineHelp')),
      summary,
      footageStatus.el),
    status.el,
    h('div', { class: 'rec-player' }, video, placeholder),
    h('div', { class: 'rec-controls', role: 'group', 'aria-label': t('recordings.controls') },
      stepBack, playButton, stepForward,
      h('label', { class: 'check', for: 'rec-speed' }, t('recordings.speed'), speedSelect),
      muteButton,
      clock),
    canExport ? h('div', { class: 'card rec-export', testid: 'rec-export-box' },
      h('h2', {}, t('recordings.export.title')),
      h('p', { class: 'muted small' }, t('recordings.export.hint')),
      h('div', { class: 'form-row' },
        field('rec-export-start', t('recordings.export.start'), exportStart),
        field('rec-export-end', t('recordings.export.end'), exportEnd),
        markStart, markEnd, exportButton),
      exportStatus.el) : null);
  const box = h('div', { class: 'rec-box' }, h('p', { class: 'muted' }, t('common.loading')));
  const root = page('recordings.title', box);

  // ---- footage ------------------------------------------------------------------
  const isToday = () => Date.now() >= day[0] && Date.now() < day[1];

  async function loadFootage() {
    const seq = ++loadSeq;
    if (cameraId === null) return;
    const now = Date.now();
    if (day[0] > now) {
      spans = [];
      gaps = [];
      drawTimeline();
      return;
    }
    const end = Math.min(day[1], now);
    try {
      const res = await api.get(`/api/cameras/${encodeURIComponent(cameraId)}/recordings?start=${encodeURIComponent(iso(day[0]))}&end=${encodeURIComponent(iso(end))}`);
      if (seq !== loadSeq) return;
      spans = res.spans.map((s) => ({ start: Date.parse(s.start), end: Date.parse(s.end), info: s }));
      gaps = res.gaps.map((g) => ({ start: Date.parse(g.start), end: Date.parse(g.end) }));
      footageFailed = false;
      footageStatus.clear();
    } catch (err) {
      if (seq !== loadSeq) return;
      spans = [];
      gaps = [];
      footageFailed = true;
      footageStatus.error(err);
    }
    drawTimeline();
  }

  function scheduleRefresh() {
    if (refreshTimer !== null) clearTimeout(refreshTimer);
    refreshTimer = setTimeout(async () => {
      refreshTimer = null;
      if (!root.isConnected) return;
      if (isToday() && !document.hidden) await loadFootage();
      scheduleRefresh();
    }, REFRESH_MS);
  }

  /** The first time at or after `t` with footage (t itself when inside a span), or null. */
  function nextFootage(t) {
    for (const s of spans) {
      if (t < s.end - 500) return Math.max(t, s.start);
    }
    return null;
  }

  const footageEnd = () => (spans.length ? spans[spans.length - 1].end : null);

  // ---- timeline -----------------------------------------------------------------
  const pct = (ms) => ((ms - view.start) / (view.end - view.start)) * 100;

  function timeAt(clientX) {
    const rect = track.getBoundingClientRect();
    const frac = rect.width > 0 ? clamp((clientX - rect.left) / rect.width, 0, 1) : 0;
    return view.start + frac * (view.end - view.start);
  }

  function bar(cls, start, end, testid) {
    const a = Math.max(start, view.start);
    const b = Math.min(end, view.end);
    if (b <= a) return null;
    // positions through CSSOM: the CSP forbids style attributes
    return place(h('div', { class: cls, testid }), a, b);
  }

  function place(el, a, b) {
    el.style.left = `${pct(a)}%`;
    el.style.width = `${pct(b) - pct(a)}%`;
    return el;
  }

  function drawTimeline() {
    track.dataset.viewStart = String(view.start);
    track.dataset.viewEnd = String(view.end);
    const now = Date.now();
    fill(spansLayer,
      gaps.map((g) => bar('rec-gap', g.start, g.end)),
      now < view.end ? bar('rec-future', Math.max(now, view.start), view.end) : null,
      spans.map((s) => bar('rec-span', s.start, s.end, 'rec-span')));
    drawTicks();
    drawSelection();
    drawPlayhead();
    if (cameraId === null || footageFailed) summary.textContent = '';
    else if (!spans.length) summary.textContent = t('recordings.noFootage');
    else {
      const total = spans.reduce((sum, s) => sum + (s.end - s.start), 0);
      summary.textContent = t('recordings.summary', {
        count: spans.length, duration: durationText(total),
        first: clockText(spans[0].start), last: clockText(footageEnd()),
      });
    }
    summary.dataset.spans = String(spans.length);
    zoomButton.textContent = zoomed ? t('recordings.zoomOut') : t('recordings.zoom');
    zoomButton.setAttribute('aria-pressed', String(zoomed));
    panBack.hidden = !zoomed;
    panForward.hidden = !zoomed;
  }

  function drawTicks() {
    const width = track.clientWidth || 800;
    const len = view.end - view.start;
    const pxPerMs = width / len;
    const ticks = [];
    if (!zoomed) {
      // hour ticks, labelled every 1, 2, 3 or 6 hours as room allows
      const every = [1, 2, 3, 6].find((n) => n * 3_600_000 * pxPerMs >= 46) || 6;
      const d0 = new Date(day[0]);
      for (let i = 0; i <= 25; i += 1) {
        const at = new Date(d0.getFullYear(), d0.getMonth(), d0.getDate(), i).getTime();
        if (at > day[1]) break;
        const hour = new Date(at).getHours();
        const label = i % every === 0 && at < day[1] ? `${pad(hour)}:00` : null;
        ticks.push([at, label, true]);
      }
    } else {
      // 5-minute ticks, labelled every 10, 15 or 30 minutes
      const every = [10, 15, 30].find((n) => n * 60_000 * pxPerMs >= 46) || 30;
      const d = new Date(view.start);
      d.setMinutes(0, 0, 0);
      for (let at = d.getTime(); at <= view.end; at += 5 * 60_000) {
        if (at < view.start) continue;
        const m = new Date(at).getMinutes();
        ticks.push([at, m % every === 0 ? clockText(at).slice(0, 5) : null, m === 0]);
      }
    }
    fill(ticksLayer, ticks.map(([at, label, major]) => {
      const el = h('div', { class: `rec-tick${major ? ' major' : ''}${label ? ' labelled' : ''}` },
        label ? h('span', {}, label) : null);
      el.style.left = `${pct(at)}%`;
      return el;
    }));
  }

  function drawSelection() {
    const a = selection ? Math.max(selection.a, view.start) : 0;
    const b = selection ? Math.min(selection.b, view.end) : 0;
    selectionEl.hidden = !(b > a);
    if (b > a) place(selectionEl, a, b);
  }

  function drawPlayhead() {
    const at = wallTime();
    const visible = at !== null && at >= view.start && at <= view.end;
    playhead.hidden = !visible;
    if (visible) playhead.style.left = `${pct(at)}%`;
  }

  function setView(start, end) {
    view = { start, end };
    drawTimeline();
  }

  function focusPoint() {
    return focus ?? wallTime() ?? footageEnd() ?? clamp(Date.now(), day[0], day[1] - 1);
  }

  function setZoom(on, centre) {
    zoomed = on;
    if (on) {
      const start = clamp(centre - ZOOM_MS / 2, day[0], day[1] - ZOOM_MS);
      setView(start, start + ZOOM_MS);
    } else {
      setView(day[0], day[1]);
    }
  }

  function pan(ms) {
    if (!zoomed) return;
    const start = clamp(view.start + ms, day[0], day[1] - ZOOM_MS);
    setView(start, start + ZOOM_MS);
  }

  function onWheel(e) {
    e.preventDefault();
    if (zoomed && Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
      pan((e.deltaX / track.clientWidth) * (view.end - view.start));
      return;
    }
    if (e.deltaY < 0 && !zoomed) setZoom(true, timeAt(e.clientX));
    else if (e.deltaY > 0 && zoomed) setZoom(false);
  }

  function onPointerMove(e) {
    const at = timeAt(e.clientX);
    const rect = track.getBoundingClientRect();
    const x = clamp(e.clientX - rect.left, 0, rect.width);
    hoverTime.textContent = clockText(at);
    hoverLine.style.left = `${x}px`;
    hoverTip.hidden = false;
    hoverLine.hidden = false;
    if (drag) {
      drag.moved = true;
      setSelection(drag.start, at);
      showThumb(null);
    } else {
      hoverThumb(at);
    }
    placeHoverTip(x, rect.width);
  }

  /** The hover popup centred on `x`, kept inside the timeline. */
  function placeHoverTip(x, width) {
    const half = (hoverTip.offsetWidth || 0) / 2;
    hoverTip.style.left = `${half * 2 < width ? clamp(x, half, width - half) : x}px`;
  }

  function hideHover() {
    hoverTip.hidden = true;
    hoverLine.hidden = true;
    cancelThumb();
  }

  // ---- hover thumbnails -----------------------------------------------------------
  /** The time to ask a thumbnail for at `at` (rounded so that nearby hovers share it), or null in a gap. */
  function thumbTime(at) {
    const span = spans.find((s) => at >= s.start && at < s.end);
    if (!span) return null;
    const now = Date.now();
    const near = Math.round(at / THUMB_STEP_MS) * THUMB_STEP_MS;
    const candidates = [near, Math.floor(at / THUMB_STEP_MS) * THUMB_STEP_MS, Math.ceil(at / THUMB_STEP_MS) * THUMB_STEP_MS,
      Math.floor(at / 1000) * 1000];
    return candidates.find((c) => c >= span.start && c < span.end && c <= now) ?? null;
  }

  const thumbKey = (at) => `${cameraId}@${at}`;

  function hoverThumb(at) {
    if (thumbTimer !== null) clearTimeout(thumbTimer);
    thumbTimer = null;
    const when = thumbsOff || cameraId === null ? null : thumbTime(at);
    if (when === null) {
      thumbWanted = null;
      showThumb(null);
      return;
    }
    const key = thumbKey(when);
    thumbWanted = key;
    if (thumbs.has(key)) {
      // cached (or known to have no image): no request
      const url = thumbs.get(key);
      thumbs.delete(key);
      thumbs.set(key, url);
      showThumb(url, when);
      return;
    }
    if (thumbImg.dataset.key !== key) showThumb(null);
    if (thumbPending.has(key)) return; // on its way: shown when it arrives
    // ask only once the pointer rests here
    thumbTimer = setTimeout(() => {
      thumbTimer = null;
      if (thumbWanted === key && !hoverTip.hidden && root.isConnected) fetchThumb(key, cameraId, when);
    }, THUMB_DELAY_MS);
  }

  function cancelThumb() {
    if (thumbTimer !== null) clearTimeout(thumbTimer);
    thumbTimer = null;
    thumbWanted = null;
    showThumb(null);
  }

  function showThumb(url, at) {
    if (!url) {
      thumbImg.hidden = true;
      thumbImg.removeAttribute('src');
      delete thumbImg.dataset.key;
      delete thumbImg.dataset.at;
      hoverTip.classList.remove('with-thumb');
      return;
    }
    const key = thumbKey(at);
    if (thumbImg.dataset.key !== key) {
      thumbImg.dataset.key = key;
      thumbImg.dataset.at = String(at);
      thumbImg.alt = t('recordings.thumbAlt', { time: clockText(at) });
      thumbImg.hidden = true; // until decoded: no empty box
      thumbImg.src = url;
    }
    hoverTip.classList.add('with-thumb');
  }

  thumbImg.addEventListener('load', () => {
    if (!thumbImg.dataset.key || hoverTip.hidden) return;
    thumbImg.hidden = false;
    const rect = track.getBoundingClientRect();
    const x = parseFloat(hoverLine.style.left) || 0;
    placeHoverTip(x, rect.width);
  });
  thumbImg.addEventListener('error', () => { thumbImg.hidden = true; });

  function rememberThumb(key, url) {
    thumbs.delete(key);
    thumbs.set(key, url);
    while (thumbs.size > THUMB_CACHE) {
      const [oldKey, oldUrl] = thumbs.entries().next().value;
      thumbs.delete(oldKey);
      if (oldUrl) URL.revokeObjectURL(oldUrl);
    }
  }

  async function fetchThumb(key, camera, at) {
    thumbPending.add(key);
    let url = null;
    try {
      const res = await fetch(`/api/cameras/${encodeURIComponent(camera)}/snapshot.jpg?at=${encodeURIComponent(iso(at))}&width=${THUMB_WIDTH}`,
        { credentials: 'same-origin' });
      if (res.ok) {
        url = URL.createObjectURL(await res.blob());
      } else {
        // 501: built without media pipelines; 401/403: not allowed. 404 and the rest: no image here.
        if ([401, 403, 501].includes(res.status)) thumbsOff = true;
        await res.body?.cancel().catch(() => {});
      }
    } catch {
      // network trouble: nothing cached, a later rest may ask again
      thumbPending.delete(key);
      return;
    }
    thumbPending.delete(key);
    if (!root.isConnected) {
      if (url) URL.revokeObjectURL(url);
      return;
    }
    rememberThumb(key, url);
    if (thumbsOff) cancelThumb();
    else if (thumbWanted === key && !hoverTip.hidden) showThumb(url, at);
  }

  function dropThumbs() {
    for (const url of thumbs.values()) if (url) URL.revokeObjectURL(url);
    thumbs.clear();
  }

  function onPointerDown(e) {
    if (!canExport || !e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    drag = { start: timeAt(e.clientX), moved: false };
    track.setPointerCapture(e.pointerId);
  }

  function onPointerUp(e) {
    if (!drag) return;
    if (drag.moved) setSelection(drag.start, timeAt(e.clientX));
    drag = null;
    suppressClick = true;
  }

  function onTrackClick(e) {
    if (suppressClick || e.shiftKey) {
      suppressClick = false;
      return;
    }
    playAt(timeAt(e.clientX));
  }

  function onTrackKey(e) {
    const at = wallTime();
    if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
      e.preventDefault();
      const base = at ?? focusPoint();
      playAt(base + (e.key === 'ArrowLeft' ? -10_000 : 10_000));
    } else if (e.key === ' ' || e.key === 'Enter') {
      e.preventDefault();
      togglePlay();
    }
  }

  // ---- selection and export ----------------------------------------------------------
  function setSelection(a, b) {
    const lo = Math.floor(Math.min(a, b) / 1000) * 1000;
    const hi = Math.ceil(Math.max(a, b) / 1000) * 1000;
    selection = hi > lo ? { a: lo, b: hi } : null;
    if (selection) {
      exportStart.value = localInputValue(selection.a);
      exportEnd.value = localInputValue(selection.b);
    }
    drawSelection();
  }

  function selectionFromInputs() {
    const a = parseLocalInput(exportStart.value);
    const b = parseLocalInput(exportEnd.value);
    selection = !Number.isNaN(a) && !Number.isNaN(b) && b > a ? { a, b } : null;
    drawSelection();
  }

  function markFromPlayback(input) {
    const at = wallTime();
    if (at === null) {
      exportStatus.error(t('recordings.export.noPosition'));
      return;
    }
    exportStatus.clear();
    input.value = localInputValue(Math.floor(at / 1000) * 1000);
    selectionFromInputs();
  }

  async function doExport() {
    exportStatus.clear();
    const a = parseLocalInput(exportStart.value);
    const b = parseLocalInput(exportEnd.value);
    if (cameraId === null) return;
    if (Number.isNaN(a) || Number.isNaN(b)) {
      exportStatus.error(t('recordings.export.needRange'));
      return;
    }
    if (b <= a) {
      exportStatus.error(t('recordings.export.badOrder'));
      return;
    }
    const url = `/api/cameras/${encodeURIComponent(cameraId)}/export.mp4?start=${encodeURIComponent(iso(a))}&end=${encodeURIComponent(iso(b))}`;
    exportButton.disabled = true;
    try {
      let res;
      try {
        res = await fetch(url, { method: 'HEAD', credentials: 'same-origin' });
      } catch (e) {
        exportStatus.error(new ApiError(0, 'network', e.message));
        return;
      }
      if (!res.ok) {
        // A HEAD answer has no body: ask for the server's message (not for a refusal,
        // which the server already recorded once).
        const err = res.status === 403
          ? new ApiError(403, 'permission_denied', '')
          : (await mediaError(url)) || new ApiError(res.status, `http_${res.status}`, res.statusText);
        exportStatus.error(err);
        return;
      }
      // the server streams the file: let the browser download it (nothing held in memory)
      const link = h('a', { href: url, download: '', hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      exportStatus.ok(t('recordings.export.started', { start: formatTime(iso(a)), end: formatTime(iso(b)) }));
    } finally {
      exportButton.disabled = false;
    }
  }

  // ---- playback ---------------------------------------------------------------------
  function wallTime() {
    if (!win) return null;
    return win.start + (video.currentTime || 0) * 1000;
  }

  function playbackUrl(start, end) {
    return `/api/cameras/${encodeURIComponent(cameraId)}/playback.mp4?start=${encodeURIComponent(iso(start))}&end=${encodeURIComponent(iso(end))}`;
  }

  /** Play from `at` (snapped to the next footage). */
  async function playAt(at) {
    if (cameraId === null) return;
    at = clamp(Math.floor(at / 1000) * 1000, day[0], day[1] - 1000);
    focus = at;
    track.dataset.picked = String(at);
    status.clear();
    liveRetries = 0;
    if (continueTimer !== null) clearTimeout(continueTimer);
    continueTimer = null;
    wantPlaying = true;
    let start = nextFootage(at);
    if ((start === null || start > at) && isToday()) {
      await loadFootage(); // footage may have grown since the last listing
      start = nextFootage(at);
    }
    if (start === null) {
      wantPlaying = false;
      status.info(t('recordings.noFootageAfter', { time: clockText(at) }));
      updateControls();
      return;
    }
    if (win && start >= win.start && start < win.end - 500 && video.readyState >= 1) {
      // inside the loaded window: just seek
      video.currentTime = (start - win.start) / 1000;
      startPlaying();
      updateClock();
      return;
    }
    loadWindow(start);
  }

  function loadWindow(start) {
    const end = Math.min(start + WINDOW_MS, day[1], Math.max(footageEnd() ?? start, start + 1000));
    win = { start, end };
    track.dataset.windowStart = String(start);
    track.dataset.windowEnd = String(end);
    video.src = playbackUrl(start, end);
    const rate = Number(speedSelect.value) || 1;
    video.defaultPlaybackRate = rate;
    video.playbackRate = rate;
    placeholder.hidden = true;
    if (wantPlaying) startPlaying();
    updateClock();
    updateControls();
  }

  function startPlaying() {
    const p = video.play();
    if (p && p.catch) {
      p.catch((err) => {
        if (err && err.name === 'NotAllowedError' && !video.muted) {
          // autoplay with sound refused (no user gesture): go on muted
          video.muted = true;
          updateControls();
          video.play().catch(() => {});
        }
      });
    }
  }

  /** The current window ended: go on with the next one. */
  async function continuePlayback() {
    continueTimer = null;
    if (!win || !wantPlaying || !root.isConnected) return;
    const from = win.end;
    if (from >= day[1] - 500) {
      wantPlaying = false;
      status.info(t('recordings.endOfDay'));
      updateControls();
      return;
    }
    let start = nextFootage(from);
    if ((start === null || (footageEnd() ?? 0) - start < MIN_WINDOW_MS) && isToday()) {
      await loadFootage();
      if (!win || !wantPlaying || !root.isConnected) return;
      start = nextFootage(from);
    }
    const enough = start !== null && Math.min(day[1], footageEnd() ?? 0) - start >= MIN_WINDOW_MS;
    if (!enough && isToday() && liveRetries < LIVE_RETRIES) {
      // at the newest footage: wait for the recorder to write more
      liveRetries += 1;
      status.info(t('recordings.waiting'));
      continueTimer = setTimeout(continuePlayback, LIVE_RETRY_MS);
      return;
    }
    if (start === null) {
      wantPlaying = false;
      status.info(t('recordings.endOfFootage'));
      updateControls();
      return;
    }
    liveRetries = 0;
    if (status.el.textContent === t('recordings.waiting')) status.clear();
    loadWindow(start);
  }

  function togglePlay() {
    if (!win) {
      playAt(focus ?? (spans.length ? spans[0].start : day[0]));
      return;
    }
    if (video.paused || video.ended) {
      wantPlaying = true;
      if (video.ended) {
        continuePlayback();
        return;
      }
      startPlaying();
    } else {
      wantPlaying = false;
      if (continueTimer !== null) clearTimeout(continueTimer);
      continueTimer = null;
      video.pause();
    }
  }

  function step(frames) {
    if (!win || !video.paused) return;
    const duration = Number.isFinite(video.duration) ? video.duration : Infinity;
    video.currentTime = clamp(video.currentTime + frames * FRAME_S, 0, duration);
  }

  function setSpeed(rate) {
    video.defaultPlaybackRate = rate;
    video.playbackRate = rate;
  }

  function stopPlayback() {
    wantPlaying = false;
    if (continueTimer !== null) clearTimeout(continueTimer);
    continueTimer = null;
    win = null;
    delete track.dataset.windowStart;
    delete track.dataset.windowEnd;
    video.pause();
    video.removeAttribute('src');
    video.load();
    placeholder.hidden = false;
    updateClock();
    updateControls();
  }

  function updateClock() {
    const at = wallTime();
    if (at === null) {
      clock.textContent = '--:--:--';
      delete clock.dataset.time;
      clock.title = t('recordings.clock');
    } else {
      const text = clockText(at);
      if (clock.textContent !== text) clock.textContent = text;
      clock.dataset.time = String(Math.round(at));
      clock.title = `${t('recordings.clock')}: ${formatTime(iso(at))}`;
      // a zoomed timeline follows playback
      if (zoomed && (at > view.end || at < view.start)) {
        const start = clamp(at - ZOOM_MS / 4, day[0], day[1] - ZOOM_MS);
        setView(start, start + ZOOM_MS);
      }
    }
    drawPlayhead();
  }

  function tick() {
    rafId = 0;
    if (!root.isConnected) {
      cleanup();
      return;
    }
    updateClock();
    if (!video.paused && !video.ended) rafId = requestAnimationFrame(tick);
  }

  function updateControls() {
    const playing = Boolean(win) && !video.paused && !video.ended;
    playButton.textContent = playing ? t('recordings.pause') : t('recordings.play');
    playButton.dataset.state = playing ? 'playing' : 'paused';
    stepBack.disabled = !win || playing;
    stepForward.disabled = !win || playing;
    muteButton.textContent = video.muted ? t('recordings.unmute') : t('recordings.mute');
    muteButton.setAttribute('aria-pressed', String(video.muted));
    playButton.disabled = cameraId === null;
  }

  video.addEventListener('play', () => {
    updateControls();
    if (!rafId) rafId = requestAnimationFrame(tick);
  });
  video.addEventListener('playing', () => {
    updateControls();
    if (!rafId) rafId = requestAnimationFrame(tick);
  });
  video.addEventListener('pause', () => { updateControls(); updateClock(); });
  for (const ev of ['timeupdate', 'seeked', 'loadeddata']) video.addEventListener(ev, updateClock);
  video.addEventListener('volumechange', updateControls);
  video.addEventListener('ended', () => {
    updateControls();
    continuePlayback();
  });
  video.addEventListener('error', async () => {
    const src = video.getAttribute('src');
    if (!src || !win) return;
    wantPlaying = false;
    updateControls();
    const err = await mediaError(src);
    if (video.getAttribute('src') !== src) return; // another window meanwhile
    status.error(err || t('recordings.cannotPlay'));
  });

  // ---- camera and day -------------------------------------------------------------
  function remember() {
    const q = new URLSearchParams();
    if (cameraId !== null) q.set('camera', cameraId);
    q.set('day', dayInput.value);
    history.replaceState(null, '', `#/recordings?${q}`);
  }

  function resetView() {
    stopPlayback();
    focus = null;
    delete track.dataset.picked;
    status.clear();
    footageStatus.clear();
    footageFailed = false;
    zoomed = false;
    view = { start: day[0], end: day[1] };
    spans = [];
    gaps = [];
    drawTimeline();
  }

  function selectCamera(id) {
    cameraId = id || null;
    remember();
    resetView();
    loadFootage();
    updateControls();
  }

  function selectDay(value) {
    const range = dayRange(value);
    if (!range) return;
    day = range;
    remember();
    resetView();
    loadFootage();
  }

  function shiftDay(n) {
    const d = new Date(day[0]);
    const next = new Date(d.getFullYear(), d.getMonth(), d.getDate() + n);
    if (next.getTime() > Date.now()) return;
    dayInput.value = dayValue(next);
    selectDay(dayInput.value);
  }

  function cleanup() {
    if (refreshTimer !== null) clearTimeout(refreshTimer);
    refreshTimer = null;
    if (continueTimer !== null) clearTimeout(continueTimer);
    continueTimer = null;
    wantPlaying = false;
    video.pause();
    resizeObserver.disconnect();
    window.removeEventListener('hashchange', onLeave);
    cancelThumb();
    dropThumbs();
  }

  function onLeave() {
    if (!root.isConnected) cleanup();
  }

  const resizeObserver = new ResizeObserver(() => {
    if (!root.isConnected) return;
    drawTicks();
  });
  resizeObserver.observe(track);
  window.addEventListener('hashchange', onLeave);

  // ---- start ----------------------------------------------------------------------
  if (dayRange(params.get('day')) && dayRange(params.get('day'))[0] <= Date.now()) {
    dayInput.value = params.get('day');
    day = dayRange(dayInput.value);
    view = { start: day[0], end: day[1] };
  }
  drawTimeline();
  updateControls();

  // This node's cameras and those of the nodes below it (their footage comes over the link).
  api.get('/api/cameras').then((l) => (Array.isArray(l) ? l : [])).then(
    (cameras) => {
      const wanted = params.get('camera');
      const listed = cameras.some((c) => String(c.id) === wanted);
      if (!cameras.length && !wanted) {
        fill(box, h('p', { class: 'notice', testid: 'rec-no-cameras' }, t('recordings.noCameras')));
        return;
      }
      fill(cameraSelect, cameras.map((c) => h('option', { value: String(c.id) }, cameraLabel(c))));
      // a link to a camera not listed: let the server say why
      if (wanted && !listed) cameraSelect.append(h('option', { value: wanted }, `#${wanted}`));
      cameraSelect.value = wanted || String(cameras[0].id);
      fill(box, h('p', { class: 'note small', testid: 'recordings-note' }, t('recordings.note')), viewer);
      viewer.hidden = false;
      selectCamera(cameraSelect.value);
      scheduleRefresh();
    },
    (err) => {
      if (err.status === 403) {
        fill(box, h('p', { class: 'notice', testid: 'no-access' }, t('common.noAccess')));
      } else {
        fill(box, h('p', { class: 'status error', testid: 'page-error' }, errorText(err)));
      }
      cleanup();
    },
  );
  return root;
}
