// Live-view fallback for networks where WebRTC cannot pass: the camera as fragmented MP4
// over a WebSocket (GET /api/cameras/{id}/mse), played with Media Source Extensions.
//
//   const s = await mseConnect('/api/cameras/1/mse', video, { onState });
//   await s.framesDecoded();
//   s.close();
//
// The server sends {"type":"init","mime":…} then the init segment whenever the video track
// is (re)described, then one fragment per frame, starting at the camera's last keyframe.
// A refusal comes as {"type":"error","status","code","message"} and a close code
// 4000 + status; it rejects (or, later, ends the session) with an `ApiError`.
// Latency is kept low by jumping to the live edge when playback falls behind.
import { ApiError } from './api.js';

const MAX_LAG_S = 1.0; // behind the live edge by more than this: jump
const KEEP_S = 10; // buffer kept behind the playhead
const OPEN_TIMEOUT_MS = 10_000; // no init segment this long: give up

/** Whether this browser has Media Source Extensions. */
export function mseSupported() {
  return typeof MediaSource === 'function' || typeof window.ManagedMediaSource === 'function';
}

function wsUrl(url) {
  const u = new URL(url, document.baseURI);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

/**
 * Plays the camera at `url` in `video`. `onState(state)`: 'connected' when the first
 * fragment is buffered, 'failed' (with the ApiError as second argument) when the stream ends
 * unasked. Resolves to {transport: 'mse', framesDecoded(), close()} once the init segment
 * is in; rejects with an ApiError.
 */
export function mseConnect(url, video, { onState = null } = {}) {
  if (!mseSupported()) {
    return Promise.reject(new ApiError(null, 'mse', 'Media Source Extensions are not available'));
  }
  const MS = typeof MediaSource === 'function' ? MediaSource : window.ManagedMediaSource;
  const ms = new MS();
  const objectUrl = URL.createObjectURL(ms);
  video.srcObject = null;
  video.disableRemotePlayback = true; // ManagedMediaSource needs it
  video.src = objectUrl;
  const ws = new WebSocket(wsUrl(url));
  ws.binaryType = 'arraybuffer';

  let sb = null;
  let mime = null;
  const queue = [];
  let closed = false;
  let connected = false;
  let refusal = null; // the server's error message, if it sent one
  let settle = null; // {resolve, reject} until the init segment is in

  const session = {
    transport: 'mse',
    async framesDecoded() {
      const q = video.getVideoPlaybackQuality && video.getVideoPlaybackQuality();
      return q ? q.totalVideoFrames - q.droppedVideoFrames : null;
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      try { ws.close(1000); } catch { /* already closed */ }
      try { if (ms.readyState === 'open') ms.endOfStream(); } catch { /* detached */ }
      if (video.src === objectUrl) {
        video.removeAttribute('src');
        video.load();
      }
      URL.revokeObjectURL(objectUrl);
      return Promise.resolve();
    },
  };

  function fail(err) {
    if (closed) return;
    session.close();
    if (settle) {
      settle.reject(err);
      settle = null;
    } else if (onState) {
      onState('failed', err);
    }
  }

  function pump() {
    if (!sb || sb.updating || closed) return;
    // trim what is far behind the playhead (and on a full buffer)
    const b = sb.buffered;
    if (b.length && video.currentTime - b.start(0) > KEEP_S * 2) {
      sb.remove(0, video.currentTime - KEEP_S);
      return;
    }
    const next = queue.shift();
    if (!next) return;
    try {
      sb.appendBuffer(next);
    } catch (e) {
      if (e.name === 'QuotaExceededError' && b.length) {
        queue.unshift(next);
        sb.remove(0, Math.max(b.start(0) + 1, video.currentTime - 2));
      } else {
        fail(new ApiError(null, 'mse', e.message));
      }
    }
  }

  function chase() {
    const b = sb.buffered;
    if (!b.length) return;
    const end = b.end(b.length - 1);
    if (end - video.currentTime > MAX_LAG_S || video.currentTime < b.start(b.length - 1)) {
      video.currentTime = Math.max(b.start(b.length - 1), end - 0.15);
    }
    if (!connected) {
      connected = true;
      if (onState) onState('connected');
    }
    if (video.paused) {
      const p = video.play();
      if (p && p.catch) p.catch(() => {});
    }
  }

  function onInit(m) {
    if (!MS.isTypeSupported(m)) {
      fail(new ApiError(null, 'codec', `this browser cannot play ${m}`));
      return;
    }
    if (sb && m === mime) return; // same codec: the init segment just follows
    if (sb) {
      try { sb.changeType(m); } catch (e) { fail(new ApiError(null, 'mse', e.message)); return; }
    } else {
      sb = ms.addSourceBuffer(m);
      sb.mode = 'sequence'; // a camera reconnecting starts its timestamps anew
      sb.addEventListener('updateend', () => { chase(); pump(); });
      sb.addEventListener('error', () => fail(new ApiError(null, 'mse', 'the browser could not decode the stream')));
    }
    mime = m;
  }

  const opened = new Promise((resolve, reject) => {
    settle = { resolve, reject };
  });
  const timer = setTimeout(() => fail(new ApiError(0, 'network', 'no stream from the server')), OPEN_TIMEOUT_MS);
  opened.then(() => clearTimeout(timer), () => clearTimeout(timer));

  function onMessage(data) {
    if (closed) return;
    if (typeof data === 'string') {
      let m;
      try { m = JSON.parse(data); } catch { return; }
      if (m.type === 'init') onInit(m.mime);
      else if (m.type === 'error') refusal = m;
      else if (m.type === 'unplayable') fail(new ApiError(null, 'codec', m.message));
      return;
    }
    if (!sb) return; // media before any init: nothing can play it
    queue.push(data);
    pump();
    if (settle) {
      settle.resolve(session);
      settle = null;
    }
  }

  // Messages may come before the media source opens: they wait for it.
  const early = [];
  ws.onmessage = (e) => (ms.readyState === 'open' ? onMessage(e.data) : early.push(e.data));
  ms.addEventListener('sourceopen', () => {
    for (const d of early.splice(0)) onMessage(d);
  }, { once: true });
  ws.onclose = (e) => {
    if (closed) return;
    if (refusal) fail(new ApiError(refusal.status, refusal.code, refusal.message));
    else if (e.code >= 4000) fail(new ApiError(e.code - 4000, `http_${e.code - 4000}`, e.reason));
    else fail(new ApiError(0, 'network', e.reason || 'the stream ended'));
  };
  return opened;
}
