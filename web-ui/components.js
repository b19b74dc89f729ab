// Small UI pieces shared by several pages.
import { h, fill } from './dom.js';
import { t, has, lang, formatTime } from './i18n.js';
import { api } from './api.js';

/** A translated, user-facing text for an API error (generic text + server message). */
export function errorText(err) {
  if (err && err.status === 0) return t('error.network');
  const code = err && err.code;
  const kind = code && has(`error.code.${code}`) ? t(`error.code.${code}`) : t('error.generic');
  const message = err && err.message ? err.message : '';
  return message ? `${kind}: ${message}` : kind;
}

/**
 * Run an API action, report it in `status` (`okKey` with `params` on success), then
 * `reload()` the section; on failure show what the server really has (e.g. undo a select
 * that failed to save). Resolves to whether the action succeeded.
 */
export async function runAction(status, reload, fn, okKey, params) {
  status.clear();
  try {
    await fn();
    await reload();
    status.ok(t(okKey, params));
    return true;
  } catch (err) {
    status.error(err);
    reload().catch(() => {});
    return false;
  }
}

/** A status line for a form or section: success or error messages. */
export function statusLine(testid) {
  const el = h('p', { class: 'status', testid, role: 'status', hidden: true });
  return {
    el,
    ok(text) {
      el.className = 'status ok';
      el.textContent = text;
      el.hidden = false;
    },
    /** A neutral message (neither success nor error). */
    info(text) {
      el.className = 'status info';
      el.textContent = text;
      el.hidden = false;
    },
    error(err) {
      el.className = 'status error';
      el.textContent = typeof err === 'string' ? err : errorText(err);
      el.hidden = false;
    },
    clear() {
      el.hidden = true;
      el.textContent = '';
    },
  };
}

export function roleLabel(role) {
  return has(`role.${role}`) ? t(`role.${role}`) : role;
}

export const ROLES = ['admin', 'operator', 'reviewer', 'member'];

/** A simple page frame: heading, optional note, body. */
export function page(titleKey, ...body) {
  return h('section', { class: 'page' }, h('h1', {}, t(titleKey)), ...body);
}

// ---- camera status --------------------------------------------------------

const STATUS_INTERVAL_MS = 5000;

const VIDEO_CODECS = { h264: 'H.264', h265: 'H.265' };
const AUDIO_CODECS = { aac: 'AAC', pcmu: 'G.711 µ-law', pcma: 'G.711 A-law' };

function numberFormat(digits) {
  return new Intl.NumberFormat(lang() === 'vi' ? 'vi-VN' : 'en-GB', {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
  });
}

/** "H.264 1920×1080 · 25 fps · 4.0 Mbit/s · AAC"; "" when nothing is known yet. */
export function mediaSummary(s) {
  if (!s) return '';
  const parts = [];
  const video = s.video_codec ? (VIDEO_CODECS[s.video_codec] || s.video_codec.toUpperCase()) : '';
  const size = s.width > 0 && s.height > 0 ? `${s.width}×${s.height}` : '';
  if (video || size) parts.push([video, size].filter(Boolean).join(' '));
  if (s.fps > 0) {
    // measured over a few seconds: whole numbers read steadier, except for slow cameras
    const fps = s.fps >= 10 || Math.abs(s.fps - Math.round(s.fps)) < 0.05
      ? numberFormat(0).format(s.fps) : numberFormat(1).format(s.fps);
    parts.push(t('media.fps', { fps }));
  }
  if (s.bitrate_kbps > 0) {
    parts.push(s.bitrate_kbps >= 1000
      ? t('media.mbps', { rate: numberFormat(1).format(s.bitrate_kbps / 1000) })
      : t('media.kbps', { rate: numberFormat(0).format(s.bitrate_kbps) }));
  }
  if (s.audio_codec) parts.push(AUDIO_CODECS[s.audio_codec] || s.audio_codec.toUpperCase());
  return parts.join(' · ');
}

/** "5 giây trước" / "5 s ago" for an RFC 3339 time; "" for none. */
export function relativeTime(rfc3339, now = Date.now()) {
  if (!rfc3339) return '';
  const at = new Date(rfc3339).getTime();
  if (Number.isNaN(at)) return rfc3339;
  const sec = Math.max(0, Math.round((now - at) / 1000));
  if (sec < 5) return t('time.justNow');
  if (sec < 60) return t('time.secondsAgo', { n: sec });
  const min = Math.floor(sec / 60);
  if (min < 60) return t('time.minutesAgo', { n: min });
  const hours = Math.floor(min / 60);
  if (hours < 24) return t('time.hoursAgo', { n: hours });
  return t('time.daysAgo', { n: Math.floor(hours / 24) });
}

/**
 * Which badge a status gets: failed and stopped win, then recording, then the
 * state itself ("connecting", "streaming").  `null` (status unknown) -> "unknown".
 */
export function statusKind(s) {
  if (!s) return 'unknown';
  if (s.state === 'failed' || s.state === 'stopped') return s.state;
  if (s.recording) return 'recording';
  return ['connecting', 'streaming'].includes(s.state) ? s.state : 'unknown';
}

/** The status badge of camera `id`; `update(status)` redraws it (null: unknown). */
export function statusBadge(id) {
  const el = h('span', { class: 'badge cam-state unknown', testid: `camera-status-${id}` }, t('camera.state.unknown'));
  return {
    el,
    update(s) {
      const kind = statusKind(s);
      el.className = `badge cam-state ${kind}`;
      el.dataset.state = kind;
      el.textContent = t(`camera.state.${kind}`);
      el.title = s ? t('camera.counters', {
        received: s.frames_received ?? 0, dropped: s.frames_dropped ?? 0, reconnects: s.reconnects ?? 0,
      }) : '';
    },
  };
}

/**
 * The status details of camera `id` (media line, last frame, last error),
 * with its badge.  `update(status)` redraws both.
 */
export function statusView(id) {
  const badge = statusBadge(id);
  const media = h('div', { class: 'small cam-media', testid: `camera-media-${id}` });
  const lastFrame = h('div', { class: 'muted small', testid: `camera-last-frame-${id}` });
  const error = h('div', { class: 'small cam-error', testid: `camera-error-${id}`, hidden: true });
  return {
    badge: badge.el,
    details: [media, lastFrame, error],
    update(s) {
      badge.update(s);
      media.textContent = mediaSummary(s);
      media.hidden = !media.textContent;
      lastFrame.textContent = s && s.last_frame_at
        ? t('camera.lastFrame', { ago: relativeTime(s.last_frame_at) })
        : (s ? t('camera.noFrame') : '');
      lastFrame.title = s && s.last_frame_at ? formatTime(s.last_frame_at) : '';
      lastFrame.hidden = !lastFrame.textContent;
      const showError = Boolean(s && s.last_error && s.state !== 'streaming' && s.state !== 'stopped');
      error.textContent = showError ? t('camera.lastError', { error: s.last_error }) : '';
      error.hidden = !showError;
    },
  };
}

/**
 * Polls GET /api/cameras/{id}/status every 5 s for the cameras registered with
 * `watch(id, view)` while `anchor` is in the document; stops by itself once the
 * page is left (the router replaced the page) and skips polls while the browser
 * tab is hidden.  Registering a camera again (after a table redraw) replaces
 * its view and shows the last known status at once.
 */
export function statusPoller(anchor) {
  const views = new Map(); // camera id -> view with update(status)
  const last = new Map(); // camera id -> last status (null: unknown)
  let timer = null;
  let stopped = false;
  let running = false;

  function stop() {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    timer = null;
    window.removeEventListener('hashchange', onLeave);
    document.removeEventListener('visibilitychange', onVisibility);
  }
  function onLeave() {
    if (!anchor.isConnected) stop();
  }
  function onVisibility() {
    if (!document.hidden && !stopped) refresh();
  }
  function schedule() {
    if (stopped) return;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(tick, STATUS_INTERVAL_MS);
  }
  async function tick() {
    timer = null;
    if (!anchor.isConnected) {
      stop();
      return;
    }
    if (!document.hidden) await refresh();
    schedule();
  }

  /** Fetch all statuses now. */
  async function refresh() {
    if (stopped || running) return;
    running = true;
    try {
      await Promise.all([...views.keys()].map(async (id) => {
        let s = null;
        try {
          s = await api.get(`/api/cameras/${id}/status`);
        } catch {
          s = null; // shown as "unknown"; the next poll tries again
        }
        last.set(id, s);
        const view = views.get(id);
        if (view) view.update(s);
      }));
    } finally {
      running = false;
    }
  }

  window.addEventListener('hashchange', onLeave);
  document.addEventListener('visibilitychange', onVisibility);
  // The first check runs after the router has put the page into the document.
  timer = setTimeout(tick, 0);

  return {
    watch(id, view) {
      views.set(id, view);
      if (last.has(id)) view.update(last.get(id));
    },
    /** Forget cameras that are gone (ids not in `ids`). */
    keep(ids) {
      const wanted = new Set(ids);
      for (const id of [...views.keys()]) {
        if (!wanted.has(id)) {
          views.delete(id);
          last.delete(id);
        }
      }
    },
    refresh,
    stop,
  };
}

// ---- camera list ----------------------------------------------------------

/**
 * This node's own cameras from a GET /api/cameras answer: the cameras of nodes below it
 * are listed there too, watched live and reviewed here over the link, but not yet shown
 * in a meeting.
 */
export function localCameras(cameras) {
  return Array.isArray(cameras) ? cameras.filter((c) => c.origin !== 'remote') : [];
}

/** A camera's name as lists show it: with its node when it is at a node below this one. */
export function cameraLabel(c) {
  return c.node ? `${c.node} / ${c.name}` : c.name;
}

/**
 * The list of cameras the user may see.  Members get 403 from
 * GET /api/cameras: then a "no access" message is shown instead.
 * With `withStatus`, each card shows the camera's recording status,
 * refreshed every 5 s while the list is shown.
 */
export function cameraList({ withStatus = false } = {}) {
  const box = h('div', { class: 'camera-list-box' }, h('p', { class: 'muted' }, t('common.loading')));
  const poller = withStatus ? statusPoller(box) : null;
  api.get('/api/cameras').then(localCameras).then(
    (cameras) => {
      if (!cameras.length) {
        fill(box, h('ul', { class: 'camera-list', testid: 'camera-list' }),
          h('p', { class: 'muted', testid: 'camera-list-empty' }, t('cameras.none')));
        return;
      }
      fill(box, h('ul', { class: 'camera-list', testid: 'camera-list' }, cameras.map((c) => cameraCard(c, poller))));
      if (poller) poller.refresh();
    },
    (err) => {
      if (poller) poller.stop();
      if (err.status === 403) {
        fill(box, h('p', { class: 'notice', testid: 'no-access' }, t('common.noAccess')));
      } else {
        fill(box, h('p', { class: 'status error', testid: 'page-error' }, errorText(err)));
      }
    },
  );
  return box;
}

function cameraCard(c, poller) {
  if (!poller) {
    return h('li', { class: 'camera-card', testid: `camera-${c.id}` },
      h('div', { class: 'camera-thumb', 'aria-hidden': 'true' }, '▶'),
      h('div', { class: 'camera-name' }, c.name),
      h('div', { class: 'muted small' }, `#${c.id}`));
  }
  const view = statusView(c.id);
  poller.watch(c.id, view);
  return h('li', { class: 'camera-card', testid: `camera-row-${c.id}` },
    h('div', { class: 'camera-thumb', 'aria-hidden': 'true' }, '▶'),
    h('div', { class: 'camera-head' },
      h('span', { class: 'camera-name' }, c.name),
      view.badge),
    h('div', { class: 'muted small' }, `#${c.id}`),
    view.details);
}

/** A labelled form field. */
export function field(id, label, input) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}
