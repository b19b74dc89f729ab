// WHEP client (WebRTC-HTTP Egress Protocol, RFC 9725): receive one stream from the
// server over WebRTC.  Non-trickle: the offer is POSTed once ICE gathering is done
// (or after a short cap), and the server puts all its candidates in the answer.
//
//   const s = await whepConnect('/api/cameras/1/whep?stream=sub', { onState });
//   video.srcObject = s.stream;
//   ...
//   await s.close(); // closes the peer connection and DELETEs the session
//
// Errors are `ApiError`s (see api.js): the server's JSON error for a refusal
// (`retryAfter` from Retry-After), status 0 / code "network" when the server cannot
// be reached, status null / code "webrtc" when the browser cannot set up the connection.
import { ApiError } from './api.js';

const GATHER_CAP_MS = 1000;

/** Whether this browser can play WHEP at all. */
export function whepSupported() {
  return typeof RTCPeerConnection === 'function';
}

/**
 * Start a receive-only session at `url` (POST of the SDP offer).
 * `onState(connectionState)` is called on every peer connection state change.
 * `video`/`audio`: which kinds to ask for (both by default); `iceServers`: RTCIceServer list.
 * Resolves to {pc, stream, location, close()}; `close()` may be called any number of times.
 */
export async function whepConnect(url, {
  onState = null, video = true, audio = true, gatherCapMs = GATHER_CAP_MS, iceServers = [],
} = {}) {
  if (!whepSupported()) throw new ApiError(null, 'webrtc', 'RTCPeerConnection is not available');
  // no STUN/TURN server unless the server's configuration lists some (GET /api/live/config)
  const pc = new RTCPeerConnection({ iceServers });
  const stream = new MediaStream();
  pc.addEventListener('track', (e) => stream.addTrack(e.track));
  if (onState) pc.addEventListener('connectionstatechange', () => onState(pc.connectionState));

  let location = null;
  let closed = false;
  const close = () => {
    if (closed) return Promise.resolve();
    closed = true;
    pc.close();
    for (const track of stream.getTracks()) track.stop();
    return location ? endSession(location) : Promise.resolve();
  };

  try {
    if (video) pc.addTransceiver('video', { direction: 'recvonly' });
    if (audio) pc.addTransceiver('audio', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc, gatherCapMs);
  } catch (e) {
    close();
    throw webrtcError(e);
  }

  let res;
  try {
    res = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/sdp', Accept: 'application/sdp' },
      body: pc.localDescription.sdp,
    });
  } catch (e) {
    close();
    throw new ApiError(0, 'network', e.message);
  }
  if (!res.ok) {
    close();
    throw await responseError(res);
  }
  const where = res.headers.get('Location');
  // relative to the URL that answered (the contract gives an absolute path)
  if (where) location = new URL(where, res.url || new URL(url, document.baseURI)).href;

  try {
    const sdp = await res.text();
    await pc.setRemoteDescription({ type: 'answer', sdp });
  } catch (e) {
    close(); // DELETEs the session the server already made
    throw webrtcError(e);
  }
  return { pc, stream, location, close };
}

/** DELETE a WHEP session; never fails (the server also drops idle sessions). */
export async function endSession(location) {
  try {
    // keepalive: the request survives the page being closed
    await fetch(location, { method: 'DELETE', credentials: 'same-origin', keepalive: true });
  } catch {
    // nothing more to do
  }
}

/** The video `framesDecoded` of a peer connection (null when no video is received yet). */
export async function framesDecoded(pc) {
  const report = await pc.getStats();
  let frames = null;
  for (const r of report.values()) {
    if (r.type === 'inbound-rtp' && (r.kind || r.mediaType) === 'video') {
      frames = Math.max(frames ?? 0, r.framesDecoded ?? 0);
    }
  }
  return frames;
}

/** The transport of the connection in use: 'udp' or 'tcp' (ICE-TCP), null before one is chosen. */
export async function iceProtocol(pc) {
  const report = await pc.getStats();
  let pair = null;
  for (const r of report.values()) {
    if (r.type === 'transport' && r.selectedCandidatePairId) pair = report.get(r.selectedCandidatePairId);
  }
  if (!pair) {
    for (const r of report.values()) {
      if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r;
    }
  }
  const local = pair && report.get(pair.localCandidateId);
  return (local && local.protocol) || null;
}

/** Resolves once ICE gathering is complete, or after `capMs`. */
function iceGathered(pc, capMs) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, capMs);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/** An ApiError from a refusal: the server's JSON error when there is one. */
async function responseError(res) {
  const text = await res.text().catch(() => '');
  let err = {};
  try {
    err = JSON.parse(text).error || {};
  } catch {
    err = {};
  }
  const retry = Number(res.headers.get('Retry-After'));
  return new ApiError(
    res.status,
    err.code || err.kind || `http_${res.status}`,
    err.message || text || res.statusText,
    retry > 0 ? retry : null,
  );
}

function webrtcError(e) {
  return e instanceof ApiError ? e : new ApiError(null, 'webrtc', (e && e.message) || String(e));
}
