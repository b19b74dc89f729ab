// The meeting room: #/meet/{id} (signed-in users) and #/meet/{id}?t=TOKEN (guests, no
// login). docs/design/meetings.md is the contract with the server.
//
// 1. Device check: camera and microphone choice, a preview, a microphone level meter and
//    the name shown to the others (required for guests).
// 2. The signalling WebSocket /api/meetings/{id}/ws (?t=TOKEN for guests): `join`, then on
//    `welcome` ONE RTCPeerConnection: sendonly transceivers for the microphone, the camera
//    (three simulcast layers l/m/h when the server says so) and, while sharing, the screen;
//    recvonly "slots" (4 video, 4 audio to start with) whose content the server announces
//    in `slots` messages. The page always offers and the server always answers; offers go
//    one at a time (a re-offer asked for meanwhile runs after the one in flight). No trickle
//    ICE: the server is ICE-lite and learns the browser's address from its checks.
// 3. The room: a tile per participant (video from its camera slot, name, mute, speaking and
//    hand indicators), a large tile per screen share, the active speaker enlarged; every
//    audio slot plays through its own <audio> element; toolbar, chat, chair controls and a
//    connection-quality indicator (RTT and packet loss from getStats).
// 4. Votes ("Biểu quyết"): the chair opens one (`vote_open`), everyone casts one ballot
//    (`vote_cast`), the chair closes it (`vote_close`); the room shows each vote as the last
//    `vote` message said (`welcome.votes` to start with): while open the buttons (or "voted"),
//    once closed the tally and, unless secret, who chose what. The panel opens by itself
//    when a vote opens (`meeting-votes.js`).
// 5. Documents ("Tài liệu"): `welcome.documents` and `document` messages, each with a link
//    that carries this participant's key (`?k=`: guests have no session); an upload POSTs the
//    file as it is to /api/meetings/{id}/documents?name=… with `X-Meeting-Key`.
// 6. Simulcast: the camera goes out in three layers (rid l, m, h: a quarter, half and all of
//    the resolution) when `welcome.simulcast`; the screen share is always one encoding. The
//    page tells the server how tall each remote camera tile is (`view`, debounced, whenever a
//    tile's size changes: a new layout, the speaker enlarged, the window resized); the server
//    picks each subscriber's layer from that and the bandwidth, and pauses the layers nobody
//    wants (`layers`: the camera sender's encodings are set `active` only for the rids listed).
// 7. Cameras in the meeting: the chair (a signed-in user) adds one of the cameras they may
//    watch (GET /api/cameras; `add_camera`) and removes it (`remove_camera`). A camera is a
//    participant with role "camera" (id 2^48 + camera id, `camera_id`): a tile like the
//    others, labelled with its name and a "Camera" badge, without hand or mute controls.
//
// For tests: window.xasoMeeting = {you, role, state, key, participants(), slots(), chat(),
// votes(), documents(), castVote(vote, option) (a ballot sent as the buttons do, even when
// the page thinks it voted already), tiles() -> Promise<[{participant, track, kind, mid,
// framesDecoded, frameWidth, frameHeight, audioLevel, totalAudioEnergy, bytesReceived,
// packetsReceived, packetsLost, framesReceived, framesDropped, keyFramesDecoded, freezeCount,
// nackCount, pliCount, codec}]>, cameraSender() -> Promise<{simulcast, encodings: [{rid, active,
// scaleResolutionDownBy, maxBitrate}], outbound: [{rid, framesSent, framesEncoded, frameWidth,
// frameHeight, bytesSent, qualityLimitationReason}]}> (the camera sender's parameters and its
// outbound-rtp per rid), layersLog() -> [{at, active}] (the `layers` messages received),
// transport() -> Promise<{local, remote}> (the selected candidate pair's addresses and ports),
// view() (the last `view` sent), cameras() (what the add-camera menu lists), addCamera(id) and
// removeCamera(id) (sent as the controls do), closeCode, error, speaker, quality}.
import { h, fill } from './dom.js';
import { t } from './i18n.js';
import { api, ApiError } from './api.js';
import { errorText, localCameras } from './components.js';
import { clockTime, formatSize } from './meeting-format.js';
import { createVotes } from './meeting-votes.js';


const INITIAL_VIDEO_SLOTS = 4;
const INITIAL_AUDIO_SLOTS = 4;
const MAX_VIDEO_SLOTS = 9; // "last N": the server forwards at most 9 video tracks to anyone
const VIEW_DEBOUNCE_MS = 500;
const STATS_MS = 2000;
const ANSWER_TIMEOUT_MS = 15_000;
const NOTICE_MS = 8000;
const REJOIN_MS = [1000, 2000, 4000, 8000, 10_000];
const NAME_MAX = 60;
const CHAT_MAX = 2000;
const NAME_KEY = 'xaso.meet.name';
// an `error` this soon after our `vote_cast` or `vote_open` is taken as its answer (the
// protocol has no request ids; the server answers a socket's messages in order)
const PENDING_MS = 10_000;
// what the server accepts (docs/design/meetings.md): the file chooser offers these
const DOCUMENT_ACCEPT = '.pdf,.doc,.docx,.xls,.xlsx,.ppt,.pptx,.odt,.ods,.odp,.png,.jpg,.jpeg,.gif,.webp,.txt';
const CAMERA_CONSTRAINTS = { width: { ideal: 960 }, height: { ideal: 540 }, frameRate: { ideal: 24, max: 30 } };
// Simulcast layers of the camera (when welcome.simulcast): quarter, half and full size.
const SIMULCAST = [
  { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'h', scaleResolutionDownBy: 1, maxBitrate: 1_200_000 },
];

/** `{id, token}` of a `#/meet/{id}` or `#/meet/{id}?t=TOKEN` hash (token null when none). */
export function parseMeetHash(hash = location.hash) {
  const body = hash.replace(/^#\/?/, '');
  const q = body.indexOf('?');
  const path = q < 0 ? body : body.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : body.slice(q + 1));
  let id = path.split('/')[1] || '';
  try {
    id = decodeURIComponent(id);
  } catch {
    // left as it is
  }
  return { id, token: params.get('t') || null };
}

function wsUrl(id, token) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const query = token ? `?t=${encodeURIComponent(token)}` : '';
  return `${proto}//${location.host}/api/meetings/${encodeURIComponent(id)}/ws${query}`;
}

function storedName() {
  try {
    return localStorage.getItem(NAME_KEY) || '';
  } catch {
    return '';
  }
}

function storeName(name) {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    // private mode: the name just won't be remembered
  }
}

function initials(name) {
  const words = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return letters.map((w) => w[0]).join('').toUpperCase() || '?';
}

function playMedia(el) {
  const p = el.play();
  if (p && p.catch) p.catch(() => {});
  return p;
}

/** The meeting room page. `me`: the signed-in user (null for a guest). */
export function render({ me = null } = {}) {
  const { id, token } = parseMeetHash();
  const guest = !me;

  // ---- state -------------------------------------------------------------------
  let state = 'check'; // check | joining | joined | reconnecting | left | ended | removed | error
  let destroyed = false;
  const localStream = new MediaStream(); // the microphone and camera tracks in use
  let micTrack = null;
  let camTrack = null;
  let micOn = true;
  let camOn = true;
  let screenTrack = null;
  let ws = null;
  let pc = null;
  let session = 0; // bumped by every (re)connection and teardown: stale events are dropped
  let everWelcomed = false;
  let rejoinFailures = 0;
  let rejoinTimer = null;
  let you = null;
  let role = null;
  let meeting = { id, title: '' };
  let simulcast = false;
  let iceServers = [];
  let participants = [];
  let chatLog = [];
  let videoSlots = {}; // mid -> {participant, track} or null, as the server said
  let audioSlots = {};
  let speaker = null;
  let recvVideo = []; // [{kind, tr, stream, el?}] recvonly transceivers, in the order offered
  let recvAudio = [];
  let micTx = null;
  let camTx = null;
  let screenTx = null;
  const chairLock = { mic: false, camera: false }; // muted by the chair and not yet allowed back
  let handRaised = false;
  let locked = false;
  let closeCode = null;
  let lastError = null; // the last `error` message from the server
  let quality = 'unknown';
  let negotiating = false;
  let renegotiate = false;
  let pendingAnswer = null; // {resolve, reject, timer} while an offer waits for its answer
  let chatOpen = false;
  let unread = 0;
  let noticeTimer = null;
  let viewTimer = null;
  let lastView = '';
  const tileSizes = new Map(); // participant id -> {w, h}
  let prevLoss = { lost: 0, received: 0 };
  let focused = null; // the participant whose picture this page asked for (`focus`)
  let meetingKey = null; // this participant's secret for the document routes (welcome.key)
  let documents = []; // as the server sent them, oldest first
  let docsOpen = false;
  let docsUnseen = 0;
  let uploading = false;
  let wantLayers = null; // the rids of our camera the server last asked for (`layers`), or null
  let layersChain = Promise.resolve(); // getParameters/setParameters calls, one at a time
  const layersLog = []; // the `layers` messages received, for tests: [{at, active}]
  let layersError = null; // the last setParameters failure
  let cameraList = null; // GET /api/cameras for the chair's menu: null until loaded (or refused)
  let camerasLoading = false;
  let cameraMenuOpen = false;
  let pendingCamera = null; // {action, camera, at}: an add_camera/remove_camera not answered yet

  // ---- elements: common -----------------------------------------------------------
  const errorEl = h('div', { class: 'status error meet-error', testid: 'meeting-error', role: 'alert', hidden: true });
  const noticeEl = h('p', { class: 'status info meet-notice', testid: 'meeting-notice', role: 'status', hidden: true });
  const body = h('div', { class: 'meet-body-box' });
  const root = h('section', { class: 'meet', testid: 'meeting-room' }, errorEl, noticeEl, body);
  root.dataset.state = state;

  function setState(next) {
    state = next;
    root.dataset.state = next;
  }

  function showError(lead, detail = '') {
    fill(errorEl, h('strong', {}, lead), detail ? h('span', {}, ` ${detail}`) : null);
    errorEl.hidden = false;
  }

  function clearError() {
    errorEl.hidden = true;
    errorEl.replaceChildren();
  }

  function notice(text) {
    noticeEl.textContent = text;
    noticeEl.hidden = false;
    if (noticeTimer !== null) clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => {
      noticeTimer = null;
      noticeEl.hidden = true;
    }, NOTICE_MS);
  }

  // ---- device check ------------------------------------------------------------------
  const preview = h('video', { class: 'meet-preview', testid: 'meeting-preview', autoplay: true, playsinline: true, muted: true });
  preview.muted = true;
  const previewEmpty = h('div', { class: 'meet-preview-empty', hidden: true }, t('meet.noCamera'));
  const micSelect = h('select', { id: 'meet-mic', testid: 'meeting-mic-select', onchange: () => chooseDevice('audio', micSelect.value) });
  const camSelect = h('select', { id: 'meet-camera', testid: 'meeting-camera-select', onchange: () => chooseDevice('video', camSelect.value) });
  const meterBar = h('div', { class: 'meet-meter-bar' });
  const meter = h('div', {
    class: 'meet-meter', testid: 'meeting-level', role: 'meter', 'aria-label': t('meet.level'),
    'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0',
  }, meterBar);
  const nameInput = h('input', {
    id: 'meet-name', testid: 'meeting-name', maxlength: String(NAME_MAX), autocomplete: 'name',
    required: guest, placeholder: t('meet.namePlaceholder'),
    value: me ? me.username : storedName(),
  });
  const startMic = h('input', { type: 'checkbox', id: 'meet-start-mic', testid: 'meeting-start-mic', checked: true });
  const startCam = h('input', { type: 'checkbox', id: 'meet-start-camera', testid: 'meeting-start-camera', checked: true });
  const deviceNote = h('p', { class: 'notice small', testid: 'meeting-device-note', hidden: true });
  const joinButton = h('button', { type: 'submit', class: 'primary', testid: 'meeting-join' }, t('meet.join'));
  const checkTitle = h('h1', { testid: 'meeting-title' }, t('meet.checkTitle'));
  const checkView = h('form', { class: 'card meet-check', testid: 'meeting-check', onsubmit: onJoinSubmit },
    checkTitle,
    h('p', { class: 'muted' }, guest ? t('meet.guestHint') : t('meet.checkHint')),
    h('div', { class: 'meet-check-grid' },
      h('div', { class: 'meet-preview-box' }, preview, previewEmpty),
      h('div', { class: 'meet-check-fields' },
        h('div', { class: 'field' }, h('label', { for: 'meet-camera' }, t('meet.camera')), camSelect),
        h('div', { class: 'field' }, h('label', { for: 'meet-mic' }, t('meet.microphone')), micSelect, meter),
        h('div', { class: 'field' }, h('label', { for: 'meet-name' }, guest ? t('meet.nameGuest') : t('meet.name')), nameInput),
        h('div', { class: 'meet-start-switches' },
          h('label', { class: 'check', for: 'meet-start-mic' }, startMic, t('meet.startMicOn')),
          h('label', { class: 'check', for: 'meet-start-camera' }, startCam, t('meet.startCameraOn'))),
        deviceNote,
        joinButton)));

  let devicesReady = Promise.resolve(); // the device check's getUserMedia, awaited by "join"
  let audioCtx = null;
  let analyser = null;
  let meterSource = null;
  let meterRaf = 0;
  let meterBuf = null;

  function mediaDevicesAvailable() {
    return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  }

  /** Puts `track` (or null) in use for `kind` ('audio' / 'video'); stops the one it replaces. */
  function useTrack(kind, track) {
    const old = kind === 'audio' ? micTrack : camTrack;
    if (old && old !== track) {
      localStream.removeTrack(old);
      old.stop();
    }
    if (track) {
      if (!localStream.getTracks().includes(track)) localStream.addTrack(track);
      track.enabled = kind === 'audio' ? micOn : camOn;
    }
    if (kind === 'audio') {
      micTrack = track;
      if (micTx) micTx.sender.replaceTrack(track).catch(() => {});
      startMeter();
    } else {
      camTrack = track;
      if (camTx) camTx.sender.replaceTrack(track).catch(() => {});
      previewEmpty.hidden = !!track;
      preview.hidden = !track;
      if (preview.srcObject !== localStream) preview.srcObject = localStream;
      if (track) playMedia(preview);
      if (selfTile) selfTile.update();
    }
  }

  async function openDevices() {
    deviceNote.hidden = true;
    if (!mediaDevicesAvailable()) {
      useTrack('audio', null);
      useTrack('video', null);
      showDeviceNote(window.isSecureContext === false ? t('meet.devicesInsecure') : t('meet.devicesMissing'));
      return;
    }
    let audio = null;
    let video = null;
    let failure = null;
    try {
      const s = await navigator.mediaDevices.getUserMedia({ audio: true, video: CAMERA_CONSTRAINTS });
      audio = s.getAudioTracks()[0] || null;
      video = s.getVideoTracks()[0] || null;
    } catch (err) {
      failure = err;
      // one of the two may still work alone
      try {
        audio = (await navigator.mediaDevices.getUserMedia({ audio: true })).getAudioTracks()[0] || null;
      } catch (e) {
        failure = e;
      }
      try {
        video = (await navigator.mediaDevices.getUserMedia({ video: CAMERA_CONSTRAINTS })).getVideoTracks()[0] || null;
      } catch (e) {
        failure = e;
      }
    }
    if (destroyed || state !== 'check') {
      if (audio) audio.stop();
      if (video) video.stop();
      return;
    }
    useTrack('audio', audio);
    useTrack('video', video);
    if (!audio || !video) {
      const denied = failure && (failure.name === 'NotAllowedError' || failure.name === 'SecurityError');
      showDeviceNote(denied ? t('meet.devicesDenied') : t('meet.devicesMissing'));
    }
    await listDevices();
  }

  function showDeviceNote(text) {
    deviceNote.textContent = text;
    deviceNote.hidden = false;
  }

  async function listDevices() {
    let devices = [];
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch {
      devices = [];
    }
    fillSelect(micSelect, devices.filter((d) => d.kind === 'audioinput'), micTrack, 'meet.noMicrophone', 'meet.microphoneN');
    fillSelect(camSelect, devices.filter((d) => d.kind === 'videoinput'), camTrack, 'meet.noCamera', 'meet.cameraN');
  }

  function fillSelect(select, devices, track, noneKey, nthKey) {
    const current = track && track.getSettings ? track.getSettings().deviceId : null;
    const options = devices.filter((d) => d.deviceId).map((d, i) => h('option', { value: d.deviceId }, d.label || t(nthKey, { n: i + 1 })));
    if (!options.length) options.push(h('option', { value: '' }, t(noneKey)));
    select.replaceChildren(...options);
    if (current && devices.some((d) => d.deviceId === current)) select.value = current;
    select.disabled = !devices.some((d) => d.deviceId);
  }

  async function chooseDevice(kind, deviceId) {
    if (!deviceId || !mediaDevicesAvailable()) return;
    const constraints = kind === 'audio'
      ? { audio: { deviceId: { exact: deviceId } } }
      : { video: { ...CAMERA_CONSTRAINTS, deviceId: { exact: deviceId } } };
    try {
      const s = await navigator.mediaDevices.getUserMedia(constraints);
      const track = (kind === 'audio' ? s.getAudioTracks() : s.getVideoTracks())[0] || null;
      if (destroyed) {
        if (track) track.stop();
        return;
      }
      useTrack(kind, track);
      deviceNote.hidden = true;
    } catch (err) {
      showDeviceNote(t('meet.deviceError', { error: err.message || err.name }));
    }
  }

  function startMeter() {
    stopMeterSource();
    if (!micTrack || state !== 'check') return;
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return;
    try {
      if (!audioCtx) audioCtx = new AC();
      if (audioCtx.state === 'suspended') audioCtx.resume().catch(() => {});
      analyser = audioCtx.createAnalyser();
      analyser.fftSize = 1024;
      meterBuf = new Float32Array(analyser.fftSize);
      meterSource = audioCtx.createMediaStreamSource(new MediaStream([micTrack]));
      meterSource.connect(analyser);
    } catch {
      analyser = null;
      return;
    }
    if (!meterRaf) meterRaf = requestAnimationFrame(meterTick);
  }

  function meterTick() {
    meterRaf = 0;
    if (!analyser || destroyed) return;
    analyser.getFloatTimeDomainData(meterBuf);
    let sum = 0;
    for (const v of meterBuf) sum += v * v;
    const rms = Math.sqrt(sum / meterBuf.length);
    const db = rms > 0 ? 20 * Math.log10(rms) : -100;
    const level = Math.max(0, Math.min(1, (db + 60) / 60)); // -60 dBFS .. 0 dBFS
    const pct = Math.round(level * 100);
    meterBar.style.width = `${pct}%`;
    meter.setAttribute('aria-valuenow', String(pct));
    meter.dataset.level = String(pct);
    meterRaf = requestAnimationFrame(meterTick);
  }

  function stopMeterSource() {
    if (meterSource) {
      try { meterSource.disconnect(); } catch { /* gone */ }
    }
    meterSource = null;
    analyser = null;
  }

  function stopMeter() {
    stopMeterSource();
    if (meterRaf) cancelAnimationFrame(meterRaf);
    meterRaf = 0;
    if (audioCtx) audioCtx.close().catch(() => {});
    audioCtx = null;
  }

  function showCheck() {
    setState('check');
    clearError();
    joinButton.disabled = false;
    joinButton.textContent = t('meet.join');
    fill(body, checkView);
    preview.srcObject = localStream;
    devicesReady = openDevices().catch(() => {});
  }

  async function onJoinSubmit(event) {
    event.preventDefault();
    if (state !== 'check') return;
    const name = nameInput.value.trim();
    if (guest && (name.length < 1 || name.length > NAME_MAX)) {
      showError(t('meet.nameRequired'));
      nameInput.focus();
      return;
    }
    if (guest) storeName(name);
    joinButton.disabled = true;
    joinButton.textContent = t('meet.joining');
    await devicesReady; // join with the devices the check opened, not before they are open
    if (destroyed || state !== 'check') return;
    micOn = startMic.checked;
    camOn = startCam.checked;
    if (micTrack) micTrack.enabled = micOn;
    if (camTrack) camTrack.enabled = camOn;
    clearError();
    stopMeter();
    everWelcomed = false;
    rejoinFailures = 0;
    connect();
  }

  // ---- the room: elements ------------------------------------------------------------
  const roomTitle = h('h1', { class: 'meet-title', testid: 'meeting-room-title' });
  const countEl = h('span', { class: 'muted small', testid: 'participant-count' });
  const roleEl = h('span', { class: 'badge meet-role', testid: 'meeting-role', hidden: true }, t('meet.chair'));
  const lockedEl = h('span', { class: 'badge meet-locked', testid: 'meeting-locked', hidden: true }, t('meet.locked'));
  const qualityEl = h('span', { class: 'meet-quality', testid: 'connection-quality', role: 'status' });
  const grid = h('div', { class: 'meet-grid', testid: 'meeting-grid' });
  const audioBox = h('div', { class: 'meet-audio', 'aria-hidden': 'true' });
  const audioUnlock = h('button', {
    type: 'button', class: 'meet-audio-unlock', testid: 'audio-unlock', hidden: true,
    onclick: () => {
      audioUnlock.hidden = true;
      for (const s of recvAudio) playAudio(s.el);
    },
  }, t('meet.audioBlocked'));
  const sharingBanner = h('p', { class: 'meet-sharing', testid: 'sharing-banner', hidden: true }, t('meet.sharing'));

  const chatList = h('ol', { class: 'meet-chat-list', testid: 'chat-messages', 'aria-live': 'polite' });
  const chatEmpty = h('p', { class: 'muted small' }, t('meet.chatEmpty'));
  const chatInput = h('input', {
    id: 'meet-chat-input', testid: 'chat-input', maxlength: String(CHAT_MAX), autocomplete: 'off',
    placeholder: t('meet.chatInput'), 'aria-label': t('meet.chatInput'),
  });
  const chatSend = h('button', { type: 'submit', class: 'primary', testid: 'chat-send' }, t('meet.chatSend'));
  const chatPanel = h('section', { class: 'meet-panel meet-chat', testid: 'chat-panel', hidden: true },
    h('h2', {}, t('meet.chat')),
    chatEmpty,
    chatList,
    h('form', { class: 'meet-chat-form', onsubmit: onChatSubmit }, chatInput, chatSend));
  const handsList = h('ol', { class: 'meet-hands-list', testid: 'hands' });
  const handsEmpty = h('p', { class: 'muted small', testid: 'hands-empty' }, t('meet.noHands'));
  const handsPanel = h('section', { class: 'meet-panel meet-hands', testid: 'hands-panel', hidden: true },
    h('h2', {}, t('meet.hands')), handsEmpty, handsList);

  const votes = createVotes({
    send: (m) => send(m),
    notice: (text) => notice(text),
    role: () => role,
    people: () => people(),
    selfName: () => (participants.find((p) => p.id === you) || {}).name,
    changed: () => { drawSide(); drawToolbar(); },
    pendingMs: PENDING_MS,
  });
  const votesPanel = votes.panel;

  // documents: the list, then the upload
  const docsList = h('ul', { class: 'meet-docs-list', testid: 'documents-list' });
  const docsEmpty = h('p', { class: 'muted small', testid: 'documents-empty' }, t('meet.docs.empty'));
  const docFile = h('input', { type: 'file', id: 'meet-doc-file', testid: 'document-file', accept: DOCUMENT_ACCEPT });
  const docUpload = h('button', { type: 'submit', class: 'primary', testid: 'document-upload' }, t('meet.docs.upload'));
  const docStatus = h('p', { class: 'status small', testid: 'document-status', role: 'status', hidden: true });
  const docsPanel = h('section', { class: 'meet-panel meet-docs', testid: 'documents-panel', hidden: true },
    h('h2', {}, t('meet.docs.title')),
    docsEmpty,
    docsList,
    h('form', { class: 'meet-doc-form', onsubmit: onUpload },
      h('label', { for: 'meet-doc-file', class: 'small strong' }, t('meet.docs.share')),
      docFile,
      h('p', { class: 'muted small meet-doc-allowed' }, t('meet.docs.allowed')),
      docUpload),
    docStatus);
  docsPanel.dataset.upload = 'idle';

  const side = h('aside', { class: 'meet-side', hidden: true }, handsPanel, votesPanel, docsPanel, chatPanel);

  const toggleMicBtn = toolButton('toggle-mic', toggleMic);
  const toggleCamBtn = toolButton('toggle-camera', toggleCamera);
  const shareBtn = toolButton('share-screen', toggleShare);
  const handBtn = toolButton('raise-hand', toggleHand);
  const chatBadge = h('span', { class: 'meet-unread', testid: 'chat-unread', hidden: true });
  const chatBtn = toolButton('chat', toggleChat, t('meet.chat'));
  chatBtn.append(chatBadge);
  const voteBadge = h('span', { class: 'meet-unread', testid: 'vote-unread', hidden: true });
  const voteBtn = toolButton('vote', () => votes.toggle(), t('meet.vote.title'));
  voteBtn.append(voteBadge);
  const docsBadge = h('span', { class: 'meet-unread', testid: 'documents-unread', hidden: true });
  const docsBtn = toolButton('documents', toggleDocs, t('meet.docs.title'));
  docsBtn.append(docsBadge);
  // the chair's cameras: a button and the menu it opens (hidden for guests, or with no camera)
  const addCamBtn = toolButton('add-camera', () => setCameraMenu(!cameraMenuOpen), t('meet.addCamera'));
  addCamBtn.setAttribute('aria-haspopup', 'menu');
  addCamBtn.setAttribute('aria-expanded', 'false');
  const cameraMenuList = h('ul', { class: 'meet-camera-menu-list' });
  const cameraMenu = h('div', { class: 'meet-camera-menu', testid: 'add-camera-menu', role: 'menu', hidden: true },
    h('p', { class: 'small muted meet-camera-menu-title' }, t('meet.addCameraTitle')), cameraMenuList);
  const addCamBox = h('div', {
    class: 'meet-add-camera', hidden: true,
    onkeydown: (e) => {
      if (e.key === 'Escape' && cameraMenuOpen) {
        setCameraMenu(false);
        addCamBtn.focus();
      }
    },
  }, addCamBtn, cameraMenu);
  const lockBtn = toolButton('lock-meeting', toggleLock);
  const endBtn = toolButton('end-meeting', endMeeting, t('meet.end'));
  endBtn.classList.add('danger');
  const leaveBtn = toolButton('leave', () => leave(), t('meet.leave'));
  leaveBtn.classList.add('meet-leave');
  const chairTools = h('div', { class: 'meet-tools-chair', hidden: true }, addCamBox, lockBtn, endBtn);
  const toolbar = h('div', { class: 'meet-toolbar', role: 'toolbar', 'aria-label': t('meet.toolbar') },
    h('div', { class: 'meet-tools' }, toggleMicBtn, toggleCamBtn, shareBtn, handBtn, chatBtn, voteBtn, docsBtn),
    chairTools,
    leaveBtn);
  const roomView = h('div', { class: 'meet-room', testid: 'meeting-in-room' },
    h('div', { class: 'meet-head' }, roomTitle, roleEl, lockedEl, countEl, qualityEl),
    audioUnlock,
    sharingBanner,
    h('div', { class: 'meet-main' }, grid, side),
    toolbar,
    audioBox);

  // (text only: no icon font or emoji may be relied on, and nothing is loaded from outside)
  function toolButton(testid, onclick, label = '') {
    const labelEl = h('span', { class: 'meet-tool-label' }, label);
    const b = h('button', { type: 'button', class: 'meet-tool', testid, onclick }, labelEl);
    b.setLabel = (text) => {
      labelEl.textContent = text;
      b.title = text;
    };
    if (label) b.setLabel(label);
    return b;
  }

  // ---- the room: tiles -------------------------------------------------------------------
  const tiles = new Map(); // participant id -> remote tile
  const tilePid = new WeakMap(); // tile element -> participant id (as the server gave it)
  const screenTiles = new Map(); // participant id -> screen tile
  let selfTile = null;
  const resizer = typeof ResizeObserver === 'function' ? new ResizeObserver(onResize) : null;

  function remoteTile(pid) {
    const video = h('video', { class: 'meet-video', autoplay: true, playsinline: true, muted: true });
    video.muted = true; // audio plays through the slots' <audio> elements
    const avatar = h('div', { class: 'meet-avatar', 'aria-hidden': 'true' });
    const nameEl = h('span', { class: 'meet-name', testid: `tile-name-${pid}` });
    const micOff = h('span', { class: 'meet-icon meet-mic-off', testid: `tile-mic-off-${pid}`, title: t('meet.micOff'), hidden: true }, t('meet.micOffShort'));
    const handEl = h('span', { class: 'meet-icon meet-hand', testid: `tile-hand-${pid}`, title: t('meet.handRaised'), hidden: true }, t('meet.handShort'));
    const chairEl = h('span', { class: 'meet-icon meet-chair-badge', title: t('meet.chair'), hidden: true }, t('meet.chair'));
    // a participant at another node of the tree (federation): where they are
    const nodeEl = h('span', { class: 'meet-node', testid: `tile-node-${pid}`, hidden: true });
    // a camera of the commune: a badge in words (no icon font or emoji is relied on)
    const cameraEl = h('span', { class: 'meet-icon meet-camera-badge', testid: `tile-camera-badge-${pid}`, title: t('meet.cameraBadgeTitle'), hidden: true }, t('meet.cameraBadge'));
    const stateEl = h('span', { class: 'meet-tile-state', hidden: true }, t('meet.connecting'));
    const muteBtn = h('button', { type: 'button', class: 'small', testid: `mute-${pid}`, onclick: () => chairMute(pid, 'mic') });
    const muteCamBtn = h('button', { type: 'button', class: 'small', testid: `mute-camera-${pid}`, onclick: () => chairMute(pid, 'camera') });
    const removeBtn = h('button', { type: 'button', class: 'small danger', testid: `remove-${pid}`, onclick: () => chairRemove(pid) }, t('meet.remove'));
    let removeCamBtn = null; // a camera's: testid remove-camera-{camera id}, made once that id is known
    const controls = h('div', { class: 'meet-chair-controls', hidden: true }, muteBtn, muteCamBtn, removeBtn);
    // anyone's: see this participant whatever the ranking (one commune of two hundred)
    const focusBtn = h('button', { type: 'button', class: 'small meet-focus', testid: `focus-${pid}`, onclick: () => toggleFocus(pid) });
    const el = h('div', { class: 'meet-tile', testid: `tile-${pid}` },
      video, avatar,
      h('div', { class: 'meet-label' }, cameraEl, micOff, nameEl, nodeEl, chairEl, handEl),
      stateEl, h('div', { class: 'meet-tile-actions' }, focusBtn), controls);
    el.dataset.participant = pid;
    tilePid.set(el, pid);
    let mid = null;
    if (resizer) resizer.observe(el);
    return {
      el,
      video,
      get mid() { return mid; },
      setSlot(slot) {
        const nextMid = slot ? slot.tr.mid : null;
        if (nextMid === mid) return;
        mid = nextMid;
        video.srcObject = slot ? slot.stream : null;
        el.dataset.mid = mid || '';
        if (slot) playMedia(video);
      },
      update(p) {
        const name = p.name || '?';
        const isCamera = p.role === 'camera';
        nameEl.textContent = name;
        avatar.textContent = isCamera ? t('meet.cameraBadge') : initials(name);
        el.setAttribute('aria-label', isCamera ? t('meet.cameraTile', { name }) : name);
        el.dataset.role = p.role || 'participant';
        el.classList.toggle('meet-camera-tile', isCamera);
        cameraEl.hidden = !isCamera;
        const muted = !isCamera && (!p.mic || !!(p.muted_by_chair && p.muted_by_chair.mic));
        micOff.hidden = !muted;
        el.dataset.mic = muted ? 'off' : 'on';
        handEl.hidden = isCamera || !p.hand;
        chairEl.hidden = p.role !== 'chair';
        focusBtn.hidden = isCamera;
        focusBtn.textContent = focused === p.id ? t('meet.unfocus') : t('meet.focus');
        focusBtn.setAttribute('aria-pressed', String(focused === p.id));
        el.classList.toggle('focused', focused === p.id);
        nodeEl.hidden = !p.node;
        nodeEl.textContent = p.node ? t('meet.atNode', { node: p.node }) : '';
        // a person: mute, stop camera, remove; a camera: only "remove camera"
        muteBtn.hidden = isCamera;
        muteCamBtn.hidden = isCamera;
        removeBtn.hidden = isCamera;
        if (isCamera && p.camera_id !== undefined && p.camera_id !== null) {
          const camId = p.camera_id;
          if (!removeCamBtn || removeCamBtn.dataset.camera !== String(camId)) {
            const b = h('button', {
              type: 'button', class: 'small danger', testid: `remove-camera-${camId}`, 'data-camera': String(camId),
              onclick: () => removeCamera(camId),
            }, t('meet.removeCamera'));
            if (removeCamBtn) removeCamBtn.replaceWith(b);
            else controls.append(b);
            removeCamBtn = b;
          }
        } else if (removeCamBtn) {
          removeCamBtn.remove();
          removeCamBtn = null;
        }
        stateEl.hidden = p.connected !== false;
        el.classList.toggle('connecting', p.connected === false);
        const hasVideo = !!mid && p.camera !== false && !(p.muted_by_chair && p.muted_by_chair.camera);
        el.classList.toggle('no-video', !hasVideo);
        el.classList.toggle('speaking', speaker === p.id);
        controls.hidden = role !== 'chair';
        const mutedMic = !!(p.muted_by_chair && p.muted_by_chair.mic);
        muteBtn.textContent = mutedMic ? t('meet.allowUnmute') : t('meet.mute');
        muteBtn.dataset.state = mutedMic ? 'muted' : 'on';
        const mutedCam = !!(p.muted_by_chair && p.muted_by_chair.camera);
        muteCamBtn.textContent = mutedCam ? t('meet.allowCamera') : t('meet.muteCamera');
        muteCamBtn.dataset.state = mutedCam ? 'muted' : 'on';
      },
      destroy() {
        if (resizer) resizer.unobserve(el);
        video.srcObject = null;
        el.remove();
      },
    };
  }

  function screenTile(pid) {
    const video = h('video', { class: 'meet-video', autoplay: true, playsinline: true, muted: true });
    video.muted = true;
    const label = h('span', { class: 'meet-name' });
    const el = h('div', { class: 'meet-tile meet-screen', testid: `tile-screen-${pid}` },
      video, h('div', { class: 'meet-label' }, label));
    el.dataset.participant = pid;
    let mid = null;
    return {
      el,
      setSlot(slot) {
        const nextMid = slot ? slot.tr.mid : null;
        if (nextMid === mid) return;
        mid = nextMid;
        el.dataset.mid = mid || '';
        video.srcObject = slot ? slot.stream : null;
        if (slot) playMedia(video);
      },
      update(p) {
        label.textContent = t('meet.screenOf', { name: (p && p.name) || '?' });
      },
      destroy() {
        video.srcObject = null;
        el.remove();
      },
    };
  }

  function makeSelfTile() {
    const video = h('video', { class: 'meet-video meet-mirror', autoplay: true, playsinline: true, muted: true });
    video.muted = true;
    const avatar = h('div', { class: 'meet-avatar', 'aria-hidden': 'true' });
    const nameEl = h('span', { class: 'meet-name' });
    const micOff = h('span', { class: 'meet-icon meet-mic-off', title: t('meet.micOff'), hidden: true }, t('meet.micOffShort'));
    const handEl = h('span', { class: 'meet-icon meet-hand', title: t('meet.handRaised'), hidden: true }, t('meet.handShort'));
    const el = h('div', { class: 'meet-tile meet-self', testid: 'tile-self' },
      video, avatar, h('div', { class: 'meet-label' }, micOff, nameEl, handEl));
    return {
      el,
      update() {
        const mine = participants.find((p) => p.id === you);
        const name = (mine && mine.name) || nameInput.value.trim() || (me && me.username) || '';
        nameEl.textContent = t('meet.youName', { name });
        avatar.textContent = initials(name);
        micOff.hidden = micOn && !!micTrack;
        handEl.hidden = !handRaised;
        const showVideo = !!camTrack && camOn;
        el.classList.toggle('no-video', !showVideo);
        el.classList.toggle('speaking', speaker !== null && speaker === you);
        if (showVideo && video.srcObject !== localStream) {
          video.srcObject = localStream;
          playMedia(video);
        }
      },
      destroy() {
        video.srcObject = null;
        el.remove();
      },
    };
  }

  function slotByMid(list, mid) {
    return list.find((s) => s.tr.mid !== null && s.tr.mid === mid) || null;
  }

  /** The recvonly slot carrying `track` of participant `pid` (video), or null. */
  function videoSlotOf(pid, track) {
    for (const [mid, a] of Object.entries(videoSlots)) {
      if (a && a.participant === pid && a.track === track) {
        const slot = slotByMid(recvVideo, mid);
        if (slot) return slot;
      }
    }
    return null;
  }

  /** Redraws the grid from the participants, the slots and the speaker. */
  function drawTiles() {
    if (state !== 'joined' && state !== 'reconnecting') return;
    const others = participants.filter((p) => p.id !== you);
    const ids = new Set(others.map((p) => p.id));
    for (const [pid, tile] of tiles) {
      if (!ids.has(pid)) {
        tile.destroy();
        tiles.delete(pid);
        tileSizes.delete(pid);
      }
    }
    // screen shares: one large tile per screen slot in use
    const sharing = new Map();
    for (const a of Object.values(videoSlots)) {
      if (a && a.track === 'screen' && ids.has(a.participant)) sharing.set(a.participant, videoSlotOf(a.participant, 'screen'));
    }
    for (const [pid, tile] of screenTiles) {
      if (!sharing.has(pid) || !sharing.get(pid)) {
        tile.destroy();
        screenTiles.delete(pid);
      }
    }
    let order = 0;
    for (const [pid, slot] of sharing) {
      if (!slot) continue;
      let tile = screenTiles.get(pid);
      if (!tile) {
        tile = screenTile(pid);
        screenTiles.set(pid, tile);
        grid.append(tile.el);
      }
      tile.setSlot(slot);
      tile.update(others.find((p) => p.id === pid));
      tile.el.style.order = String(order++);
    }
    // large: the participant this page asked to see (its focus), else the active speaker
    const lead = focused !== null && ids.has(focused) ? focused : speaker;
    const bigSpeaker = screenTiles.size === 0 && others.length >= 2 && lead !== null && ids.has(lead);
    const speakerFirst = [...others.filter((p) => p.id === lead), ...others.filter((p) => p.id !== lead)];
    for (const p of (bigSpeaker ? speakerFirst : others)) {
      let tile = tiles.get(p.id);
      if (!tile) {
        tile = remoteTile(p.id);
        tiles.set(p.id, tile);
        grid.append(tile.el);
      }
      tile.setSlot(videoSlotOf(p.id, 'camera'));
      tile.update(p);
      tile.el.classList.toggle('big', bigSpeaker && p.id === lead);
      tile.el.style.order = String(order++);
    }
    if (!selfTile) {
      selfTile = makeSelfTile();
      grid.append(selfTile.el);
    }
    selfTile.update();
    selfTile.el.style.order = String(order++);
    // columns and rows of the camera tiles (and ours): the CSS fits them into the height
    const count = tiles.size + 1;
    let cols;
    let rows;
    if (screenTiles.size) {
      cols = 4; // a strip under the screen share
      rows = 0;
    } else if (bigSpeaker) {
      cols = count <= 6 ? 3 : 4; // the speaker 2×2 on the left, the others around it
      rows = 2 + Math.ceil(Math.max(0, count - 1 - 2 * (cols - 2)) / cols);
    } else {
      cols = count <= 1 ? 1 : count <= 4 ? 2 : count <= 9 ? 3 : 4;
      rows = Math.ceil(count / cols);
    }
    grid.dataset.count = String(count);
    grid.dataset.cols = String(cols);
    grid.style.setProperty('--cols', String(cols));
    grid.style.setProperty('--rows', String(Math.max(rows, 1)));
    grid.classList.toggle('fit', rows > 0);
    grid.classList.toggle('has-screen', screenTiles.size > 0);
    countEl.textContent = t('meet.participants', { n: people().length });
    drawHands();
    drawCameraMenu();
    scheduleView(); // (a new layout: the tiles' sizes are taken again once it has settled)
  }

  /** The participants who are people (not the cameras the chair added). */
  /**
   * Asks the server for `pid`'s picture whatever the ranking (`focus`), shown large; again:
   * back to the ranking. At another node, the links on the way carry it first.
   */
  function toggleFocus(pid) {
    focused = focused === pid ? null : pid;
    send({ type: 'focus', participant: focused });
    drawTiles();
  }

  function people() {
    return participants.filter((p) => p.role !== 'camera');
  }

  function drawHands() {
    const raised = participants.filter((p) => p.hand)
      .sort((a, b) => new Date(a.hand).getTime() - new Date(b.hand).getTime());
    handsList.replaceChildren(...raised.map((p) => h('li', { testid: `hand-${p.id}` },
      h('span', { class: 'meet-name' }, p.id === you ? t('meet.youName', { name: p.name }) : p.name),
      h('span', { class: 'muted small' }, ` ${clockTime(p.hand)}`))));
    handsEmpty.hidden = raised.length > 0;
    handsPanel.hidden = role !== 'chair' || raised.length === 0; // for the chair, while hands are up
    drawSide();
  }

  function drawToolbar() {
    const micLocked = chairLock.mic;
    toggleMicBtn.setLabel(micOn && micTrack ? t('meet.toggleMicOff') : t('meet.toggleMicOn'));
    toggleMicBtn.dataset.state = micOn && micTrack ? 'on' : 'off';
    toggleMicBtn.setAttribute('aria-pressed', String(!(micOn && micTrack)));
    toggleMicBtn.disabled = !micTrack || (micLocked && !micOn);
    toggleMicBtn.dataset.locked = String(micLocked);
    if (micLocked) toggleMicBtn.title = t('meet.cannotUnmute');
    toggleCamBtn.setLabel(camOn && camTrack ? t('meet.toggleCameraOff') : t('meet.toggleCameraOn'));
    toggleCamBtn.dataset.state = camOn && camTrack ? 'on' : 'off';
    toggleCamBtn.setAttribute('aria-pressed', String(!(camOn && camTrack)));
    toggleCamBtn.disabled = !camTrack || (chairLock.camera && !camOn);
    toggleCamBtn.dataset.locked = String(chairLock.camera);
    if (chairLock.camera) toggleCamBtn.title = t('meet.cannotUnmuteCamera');
    shareBtn.setLabel(screenTrack ? t('meet.stopShare') : t('meet.shareScreen'));
    shareBtn.dataset.state = screenTrack ? 'on' : 'off';
    shareBtn.setAttribute('aria-pressed', String(!!screenTrack));
    shareBtn.disabled = !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
    sharingBanner.hidden = !screenTrack;
    handBtn.setLabel(handRaised ? t('meet.lowerHand') : t('meet.raiseHand'));
    handBtn.dataset.state = handRaised ? 'on' : 'off';
    handBtn.setAttribute('aria-pressed', String(handRaised));
    chatBtn.setAttribute('aria-pressed', String(chatOpen));
    chatBadge.textContent = unread > 9 ? '9+' : String(unread);
    chatBadge.hidden = unread === 0 || chatOpen;
    voteBtn.setAttribute('aria-pressed', String(votes.isOpen));
    voteBadge.textContent = votes.unseen > 9 ? '9+' : String(votes.unseen);
    voteBadge.hidden = votes.unseen === 0 || votes.isOpen;
    docsBtn.setAttribute('aria-pressed', String(docsOpen));
    docsBadge.textContent = docsUnseen > 9 ? '9+' : String(docsUnseen);
    docsBadge.hidden = docsUnseen === 0 || docsOpen;
    chairTools.hidden = role !== 'chair';
    addCamBox.hidden = role !== 'chair' || guest || !cameraList || cameraList.length === 0;
    if (addCamBox.hidden && cameraMenuOpen) setCameraMenu(false);
    roleEl.hidden = role !== 'chair';
    lockBtn.setLabel(locked ? t('meet.unlock') : t('meet.lock'));
    lockBtn.dataset.state = locked ? 'locked' : 'open';
    lockedEl.hidden = !locked;
  }

  function drawHead() {
    roomTitle.textContent = meeting.title || t('meet.title');
    document.title = `${meeting.title || t('meet.title')} — xaso`;
  }

  // ---- chat --------------------------------------------------------------------------
  function chatItem(m) {
    const from = m.from || {};
    return h('li', { class: from.id === you ? 'mine' : '', testid: 'chat-message' },
      h('div', { class: 'meet-chat-meta' },
        h('span', { class: 'meet-chat-from' }, from.id === you ? t('meet.you') : (from.name || '?')),
        h('span', { class: 'muted small' }, ` ${clockTime(m.at)}`)),
      h('div', { class: 'meet-chat-text' }, m.text));
  }

  function drawChat() {
    chatList.replaceChildren(...chatLog.map(chatItem));
    chatEmpty.hidden = chatLog.length > 0;
    chatList.scrollTop = chatList.scrollHeight;
  }

  function onChatMessage(m) {
    chatLog.push(m);
    chatList.append(chatItem(m));
    chatEmpty.hidden = true;
    chatList.scrollTop = chatList.scrollHeight;
    if (!chatOpen && !(m.from && m.from.id === you)) unread += 1;
    drawToolbar();
  }

  function onChatSubmit(event) {
    event.preventDefault();
    const text = chatInput.value.trim();
    if (!text) return;
    if (text.length > CHAT_MAX) {
      notice(t('meet.chatTooLong', { n: CHAT_MAX }));
      return;
    }
    if (send({ type: 'chat', text })) chatInput.value = '';
    chatInput.focus();
  }

  function toggleChat() {
    chatOpen = !chatOpen;
    chatPanel.hidden = !chatOpen;
    drawSide();
    if (chatOpen) {
      unread = 0;
      chatList.scrollTop = chatList.scrollHeight;
      chatInput.focus();
    }
    drawToolbar();
  }

  function drawSide() {
    side.hidden = handsPanel.hidden && chatPanel.hidden && votesPanel.hidden && docsPanel.hidden;
  }

  // ---- documents -------------------------------------------------------------------------
  /** The document's link, with our key: guests have no session to download with. */
  function documentHref(d) {
    const url = d.url || `/api/meetings/${encodeURIComponent(id)}/documents/${encodeURIComponent(d.id)}`;
    if (!meetingKey) return url;
    return `${url}${url.includes('?') ? '&' : '?'}k=${encodeURIComponent(meetingKey)}`;
  }

  function documentItem(d) {
    return h('li', { class: 'meet-doc', testid: `document-${d.id}` },
      h('a', {
        class: 'meet-doc-name', href: documentHref(d), download: true, testid: `document-link-${d.id}`,
        title: t('meet.docs.download', { name: d.name }),
      }, d.name),
      h('div', { class: 'small muted' }, t('meet.docs.meta', { size: formatSize(d.size), from: d.from || '?', time: clockTime(d.at) })));
  }

  function drawDocs() {
    docsList.replaceChildren(...documents.map(documentItem));
    docsEmpty.hidden = documents.length > 0;
  }

  /** Adds a document (from the upload's answer or a `document` message); false if known. */
  function addDocument(d) {
    if (!d || d.id === undefined || documents.some((x) => x.id === d.id)) return false;
    documents.push(d);
    docsList.append(documentItem(d));
    docsEmpty.hidden = true;
    return true;
  }

  function onDocument(msg) {
    const d = { ...msg };
    delete d.type;
    if (!addDocument(d)) return;
    const mine = participants.find((p) => p.id === you);
    if (!(mine && d.from === mine.name && uploading)) {
      if (!docsOpen) docsUnseen += 1;
      notice(t('meet.docs.shared', { from: d.from || '?', name: d.name }));
    }
    drawToolbar();
  }

  function docState(kind, text) {
    docsPanel.dataset.upload = kind;
    docStatus.className = `status small ${kind === 'uploading' ? 'info' : kind}`;
    docStatus.textContent = text;
    docStatus.hidden = !text;
    if (text && docsOpen) docStatus.scrollIntoView({ block: 'nearest' });
  }

  /** The words for a refused upload: 413 and 415 in the user's language. */
  function uploadErrorText(err) {
    if (err.status === 413) {
      const m = /(\d+(?:[.,]\d+)?)\s*MB/i.exec(err.message || '');
      return m ? t('meet.docs.tooLarge', { mb: m[1] }) : t('meet.docs.tooLargeNoLimit');
    }
    if (err.status === 415) return err.message ? `${t('meet.docs.unsupported')}: ${err.message}` : t('meet.docs.unsupported');
    if (err.status === 403) return t('meet.docs.notInRoom', { error: errorText(err) });
    return t('meet.docs.failed', { error: errorText(err) });
  }

  async function onUpload(event) {
    event.preventDefault();
    if (uploading) return;
    const file = docFile.files && docFile.files[0];
    if (!file) {
      docState('error', t('meet.docs.chooseFirst'));
      return;
    }
    if (file.size === 0) {
      docState('error', t('meet.docs.emptyFile'));
      return;
    }
    uploading = true;
    docUpload.disabled = true;
    docFile.disabled = true;
    docState('uploading', t('meet.docs.uploading', { name: file.name, size: formatSize(file.size) }));
    const mine = session;
    try {
      const headers = { Accept: 'application/json', 'Content-Type': 'application/octet-stream' };
      if (meetingKey) headers['X-Meeting-Key'] = meetingKey;
      let res;
      try {
        res = await fetch(`/api/meetings/${encodeURIComponent(id)}/documents?name=${encodeURIComponent(file.name)}`, {
          method: 'POST', headers, body: file, credentials: 'same-origin',
        });
      } catch (e) {
        throw new ApiError(0, 'network', e.message);
      }
      const text = await res.text();
      let data = null;
      try {
        data = text ? JSON.parse(text) : null;
      } catch {
        data = null;
      }
      if (!res.ok) {
        const e = (data && data.error) || {};
        throw new ApiError(res.status, e.code || `http_${res.status}`, e.message || text || res.statusText);
      }
      if (destroyed) return;
      if (mine === session) addDocument(data);
      docState('ok', t('meet.docs.uploaded', { name: (data && data.name) || file.name }));
      docFile.value = '';
    } catch (err) {
      if (!destroyed) docState('error', uploadErrorText(err));
    } finally {
      uploading = false;
      docUpload.disabled = false;
      docFile.disabled = false;
    }
  }

  function setDocsOpen(open) {
    docsOpen = open;
    docsPanel.hidden = !open;
    if (open) docsUnseen = 0;
    drawSide();
    drawToolbar();
    if (open) docsPanel.scrollIntoView({ block: 'nearest' });
  }

  function toggleDocs() {
    setDocsOpen(!docsOpen);
  }

  // ---- toolbar actions -------------------------------------------------------------------
  function sendState() {
    send({ type: 'state', mic: !!micTrack && micOn, camera: !!camTrack && camOn, screen: !!screenTrack });
  }

  function setMic(on) {
    micOn = on;
    if (micTrack) micTrack.enabled = on;
    sendState();
    drawToolbar();
    if (selfTile) selfTile.update();
  }

  function setCamera(on) {
    camOn = on;
    if (camTrack) camTrack.enabled = on;
    sendState();
    drawToolbar();
    if (selfTile) selfTile.update();
  }

  function toggleMic() {
    if (!micTrack) return;
    if (!micOn && chairLock.mic) {
      notice(t('meet.cannotUnmute'));
      return;
    }
    setMic(!micOn);
  }

  function toggleCamera() {
    if (!camTrack) return;
    if (!camOn && chairLock.camera) {
      notice(t('meet.cannotUnmuteCamera'));
      return;
    }
    setCamera(!camOn);
  }

  async function toggleShare() {
    if (screenTrack) {
      stopShare();
      return;
    }
    if (!pc || !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia)) return;
    let track;
    try {
      const s = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });
      track = s.getVideoTracks()[0];
    } catch (err) {
      if (err && err.name !== 'NotAllowedError' && err.name !== 'AbortError') {
        notice(t('meet.shareFailed', { error: err.message || err.name }));
      }
      return;
    }
    if (!track) return;
    if (!pc || destroyed) {
      track.stop();
      return;
    }
    try { track.contentHint = 'detail'; } catch { /* not supported */ }
    screenTrack = track;
    track.addEventListener('ended', () => {
      if (screenTrack === track) stopShare();
    });
    if (screenTx) {
      screenTx.direction = 'sendonly';
      await screenTx.sender.replaceTrack(track).catch(() => {});
    } else {
      screenTx = pc.addTransceiver(track, { direction: 'sendonly' });
    }
    sendState();
    drawToolbar();
    negotiate();
  }

  function stopShare() {
    const track = screenTrack;
    screenTrack = null;
    if (track) track.stop();
    if (screenTx && pc) {
      screenTx.sender.replaceTrack(null).catch(() => {});
      try { screenTx.direction = 'inactive'; } catch { /* closed */ }
      negotiate();
    }
    sendState();
    drawToolbar();
  }

  function toggleHand() {
    handRaised = !handRaised;
    send({ type: 'hand', raised: handRaised });
    drawToolbar();
    if (selfTile) selfTile.update();
  }

  function chairMute(pid, kind) {
    const p = participants.find((x) => x.id === pid);
    const muted = !!(p && p.muted_by_chair && p.muted_by_chair[kind]);
    send({ type: 'chair', action: muted ? 'allow_unmute' : 'mute', participant: pid, kind });
  }

  function chairRemove(pid) {
    const p = participants.find((x) => x.id === pid);
    if (!window.confirm(t('meet.confirmRemove', { name: (p && p.name) || '?' }))) return;
    send({ type: 'chair', action: 'remove', participant: pid });
  }

  function toggleLock() {
    locked = !locked; // at once; a `locked` message from the server confirms it
    send({ type: 'chair', action: locked ? 'lock' : 'unlock' });
    notice(locked ? t('meet.lockedNow') : t('meet.unlockedNow'));
    drawToolbar();
  }

  function endMeeting() {
    if (!window.confirm(t('meet.confirmEnd'))) return;
    send({ type: 'chair', action: 'end' });
  }

  // ---- cameras in the meeting (the chair) ------------------------------------------------------
  /** The cameras the chair may add: GET /api/cameras (a member's 403 hides the control). */
  async function loadCameras() {
    if (guest || cameraList !== null || camerasLoading) return;
    camerasLoading = true;
    try {
      const list = localCameras(await api.get('/api/cameras'));
      cameraList = list.filter((c) => c && c.id !== undefined);
    } catch {
      cameraList = []; // no access to any camera (or none to list): no control
    } finally {
      camerasLoading = false;
    }
    if (destroyed) return;
    drawCameraMenu();
    drawToolbar();
  }

  /** The menu's cameras; one already in the meeting is shown but cannot be added again. */
  function drawCameraMenu() {
    if (!cameraList) return;
    const inMeeting = new Set(participants.filter((p) => p.role === 'camera').map((p) => p.camera_id));
    cameraMenuList.replaceChildren(...cameraList.map((c) => {
      const present = inMeeting.has(c.id);
      return h('li', {},
        h('button', {
          type: 'button', class: 'meet-camera-item', role: 'menuitem', testid: `add-camera-item-${c.id}`,
          disabled: present, 'data-present': String(present), onclick: () => addCamera(c.id),
        },
        h('span', { class: 'meet-icon meet-camera-badge' }, t('meet.cameraBadge')),
        h('span', { class: 'meet-name' }, c.name || String(c.id)),
        present ? h('span', { class: 'small muted' }, t('meet.cameraInMeeting')) : null));
    }));
  }

  function setCameraMenu(open) {
    cameraMenuOpen = open && role === 'chair' && !!cameraList && cameraList.length > 0;
    cameraMenu.hidden = !cameraMenuOpen;
    addCamBtn.setAttribute('aria-expanded', String(cameraMenuOpen));
    if (cameraMenuOpen) {
      drawCameraMenu();
      const first = cameraMenu.querySelector('button:not([disabled])');
      if (first) first.focus();
    }
  }

  function addCamera(camera) {
    setCameraMenu(false);
    if (!send({ type: 'chair', action: 'add_camera', camera })) {
      notice(t('meet.notSent'));
      return;
    }
    pendingCamera = { action: 'add', camera, at: Date.now() };
  }

  function removeCamera(camera) {
    if (!send({ type: 'chair', action: 'remove_camera', camera })) {
      notice(t('meet.notSent'));
      return;
    }
    pendingCamera = { action: 'remove', camera, at: Date.now() };
  }

  // ---- simulcast: the layers the server wants ----------------------------------------------------
  /** `layers`: keep the camera's encodings listed sending, pause the others. */
  function onLayers(msg) {
    if (msg.track !== 'camera' || !Array.isArray(msg.active)) return;
    const active = msg.active.map(String);
    layersLog.push({ at: Date.now(), active });
    if (layersLog.length > 100) layersLog.shift();
    wantLayers = active;
    applyLayers();
  }

  /** Sets the camera sender's encodings `active` as the server last asked (other parameters kept). */
  function applyLayers() {
    const tx = camTx;
    if (!tx) return;
    layersChain = layersChain.then(async () => {
      const want = wantLayers;
      if (camTx !== tx || !want) return;
      const params = tx.sender.getParameters();
      const encodings = params.encodings || [];
      // rids we do not have are ignored; a list naming none of ours changes nothing
      if (!encodings.some((e) => e.rid && want.includes(e.rid))) return;
      let changed = false;
      for (const e of encodings) {
        if (!e.rid) continue;
        const on = want.includes(e.rid);
        if ((e.active !== false) !== on) {
          e.active = on;
          changed = true;
        }
      }
      if (changed) await tx.sender.setParameters(params);
      layersError = null;
    }).catch((err) => {
      layersError = (err && (err.message || err.name)) || String(err);
    });
  }

  // ---- signalling ------------------------------------------------------------------------
  function send(msg) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  function connect() {
    if (rejoinTimer !== null) clearTimeout(rejoinTimer);
    rejoinTimer = null;
    const my = ++session;
    setState(everWelcomed ? 'reconnecting' : 'joining');
    closeCode = null;
    lastError = null;
    let sock;
    try {
      sock = new WebSocket(wsUrl(id, token));
    } catch (err) {
      fail(t('meet.cannotConnect'), err.message);
      return;
    }
    ws = sock;
    sock.addEventListener('open', () => {
      if (my !== session) return;
      const name = nameInput.value.trim();
      send(name ? { type: 'join', name } : { type: 'join' });
    });
    sock.addEventListener('message', (e) => {
      if (my !== session) return;
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return; // not ours to answer
      }
      if (msg && typeof msg === 'object') onMessage(msg);
    });
    sock.addEventListener('close', (e) => {
      if (my !== session) return;
      closeCode = e.code;
      onClose(e);
    });
  }

  function onMessage(msg) {
    switch (msg.type) {
      case 'welcome': onWelcome(msg); break;
      case 'answer': onAnswer(msg); break;
      case 'participants': onParticipants(msg.list || []); break;
      case 'slots': onSlots(msg); break;
      case 'speaker':
        speaker = msg.participant ?? null;
        drawTiles();
        break;
      case 'chat': onChatMessage(msg); break;
      case 'vote': votes.onVote(msg.vote); break;
      case 'document': onDocument(msg); break;
      case 'chair': onChair(msg); break;
      case 'layers': onLayers(msg); break;
      case 'locked': // (the server tells the room when the chair locks or unlocks it)
        locked = msg.locked === true;
        drawToolbar();
        break;
      case 'removed': over('removed', msg.reason); break;
      case 'ended': over('ended', msg.reason); break;
      case 'error': onServerError(msg); break;
      default: break; // newer servers may say more
    }
  }

  function onWelcome(msg) {
    you = msg.you;
    role = msg.role || 'participant';
    meeting = { ...meeting, ...(msg.meeting || {}) };
    locked = !!meeting.locked;
    simulcast = msg.simulcast === true;
    iceServers = Array.isArray(msg.ice_servers) ? msg.ice_servers : [];
    participants = Array.isArray(msg.participants) ? msg.participants : [];
    chatLog = Array.isArray(msg.chat) ? [...msg.chat] : [];
    meetingKey = typeof msg.key === 'string' ? msg.key : null;
    documents = Array.isArray(msg.documents) ? msg.documents.filter((d) => d && d.id !== undefined) : [];
    if (everWelcomed) noticeEl.hidden = true; // back in after a lost connection
    chairLock.mic = false; // (a new participant for the server: nothing muted by the chair yet)
    chairLock.camera = false;
    everWelcomed = true;
    rejoinFailures = 0;
    clearError();
    setState('joined');
    fill(body, roomView);
    drawHead();
    drawChat();
    votes.welcome(msg.votes);
    drawDocs();
    setupPeer();
    drawTiles();
    drawToolbar();
    if (role === 'chair') loadCameras();
    sendState();
    if (handRaised) send({ type: 'hand', raised: true });
    if (focused !== null) send({ type: 'focus', participant: focused });
    negotiate();
  }

  function onParticipants(list) {
    participants = list;
    if (pendingCamera) {
      // done: the camera is in (or out of) the list as asked
      const inList = list.some((p) => p.role === 'camera' && p.camera_id === pendingCamera.camera);
      if (inList === (pendingCamera.action === 'add')) pendingCamera = null;
    }
    const mine = list.find((p) => p.id === you);
    if (mine) handRaised = !!mine.hand;
    if (focused !== null && !list.some((p) => p.id === focused)) focused = null;
    drawTiles();
    drawToolbar();
    votes.peopleChanged();
  }

  function onSlots(msg) {
    if (msg.video && typeof msg.video === 'object') videoSlots = { ...videoSlots, ...msg.video };
    if (msg.audio && typeof msg.audio === 'object') audioSlots = { ...audioSlots, ...msg.audio };
    const need = msg.need || {};
    let more = false;
    const wantVideo = Math.min(MAX_VIDEO_SLOTS, Math.max(0, Number(need.video) || 0));
    if (pc && wantVideo > recvVideo.length) {
      addRecvSlots('video', wantVideo - recvVideo.length);
      more = true;
    }
    const wantAudio = Math.max(0, Number(need.audio) || 0);
    if (pc && wantAudio > recvAudio.length) {
      addRecvSlots('audio', wantAudio - recvAudio.length);
      more = true;
    }
    if (more) negotiate();
    drawTiles();
  }

  function onChair(msg) {
    const kind = msg.kind === 'camera' ? 'camera' : 'mic';
    const may = msg.may_unmute === true;
    if (msg.action === 'mute') {
      chairLock[kind] = !may;
      if (kind === 'mic') setMic(false);
      else setCamera(false);
      notice(kind === 'mic' ? t('meet.chairMutedMic') : t('meet.chairMutedCamera'));
    } else if (msg.action === 'allow_unmute') {
      chairLock[kind] = !may;
      notice(kind === 'mic' ? t('meet.mayUnmuteMic') : t('meet.mayUnmuteCamera'));
    }
    drawToolbar();
  }

  function onServerError(msg) {
    lastError = msg;
    const err = new ApiError(msg.status ?? null, msg.code || 'error', msg.message || '');
    const now = Date.now();
    if (state === 'joined' && pendingCamera && now - pendingCamera.at < PENDING_MS) {
      // the answer to our add_camera / remove_camera (e.g. 403: no access to that camera)
      const { action } = pendingCamera;
      pendingCamera = null;
      notice(t(action === 'add' ? 'meet.addCameraFailed' : 'meet.removeCameraFailed', { error: errorText(err) }));
      return;
    }
    if (state === 'joined' && votes.onError(err, now)) return;
    if (state === 'joined') {
      notice(errorText(err)); // a bad message: the socket stays open
    }
    // before `welcome` it is a refusal: the close that follows shows it
  }

  function onClose(e) {
    if (['left', 'ended', 'removed', 'error'].includes(state)) {
      teardown();
      return;
    }
    let status = e.code >= 4000 && e.code < 5000 ? e.code - 4000 : null;
    // 410 "media_lost": the server found our media connection gone; joining again may help
    if (status === 410 && everWelcomed) status = null;
    if (status !== null || (lastError && !everWelcomed)) {
      refused(status ?? lastError.status ?? null, e.reason);
      return;
    }
    if (everWelcomed) {
      // the connection broke: join again (a new participant for the server)
      teardown();
      setState('reconnecting');
      notice(t('meet.reconnecting'));
      const delay = REJOIN_MS[Math.min(rejoinFailures, REJOIN_MS.length - 1)];
      rejoinFailures += 1;
      rejoinTimer = setTimeout(() => {
        rejoinTimer = null;
        if (!destroyed && state === 'reconnecting') connect();
      }, delay);
      return;
    }
    fail(t('meet.cannotConnect'), e.reason || '');
  }

  /** The server refused us (an `error` then close code 4000 + status). */
  function refused(status, reason) {
    const msg = lastError || {};
    const err = new ApiError(msg.status ?? status, msg.code || (status ? `http_${status}` : 'error'), msg.message || reason || '');
    let lead = t('meet.refused');
    if (guest && status === 403) lead = t('meet.badLink');
    else if (status === 404) lead = t('meet.notFound');
    teardown();
    stopLocal();
    setState('error');
    showError(lead, errorText(err));
    showOver('error', null);
  }

  function fail(lead, detail) {
    teardown();
    stopLocal();
    setState('error');
    showError(lead, detail);
    showOver('error', null);
  }

  // ---- the peer connection -------------------------------------------------------------
  function setupPeer() {
    closePeer();
    pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' });
    const mine = pc;
    pc.addEventListener('connectionstatechange', () => {
      if (pc !== mine) return;
      root.dataset.connection = mine.connectionState;
      if (mine.connectionState === 'failed' && state === 'joined') {
        // no media path any more: the server drops us after 10 s anyway; join again now
        if (ws) ws.close(1000);
      }
    });
    if (micTrack) micTx = pc.addTransceiver(micTrack, { direction: 'sendonly', streams: [localStream] });
    if (camTrack) {
      const init = { direction: 'sendonly', streams: [localStream] };
      if (simulcast) init.sendEncodings = SIMULCAST.map((e) => ({ ...e }));
      camTx = pc.addTransceiver(camTrack, init);
    }
    addRecvSlots('video', INITIAL_VIDEO_SLOTS);
    addRecvSlots('audio', INITIAL_AUDIO_SLOTS);
  }

  function addRecvSlots(kind, n) {
    for (let i = 0; i < n; i += 1) {
      const tr = pc.addTransceiver(kind, { direction: 'recvonly' });
      const slot = { kind, tr, stream: new MediaStream([tr.receiver.track]) };
      if (kind === 'audio') {
        slot.el = h('audio', { autoplay: true, testid: `audio-slot-${recvAudio.length}` });
        slot.el.srcObject = slot.stream;
        audioBox.append(slot.el);
        playAudio(slot.el);
        recvAudio.push(slot);
      } else {
        recvVideo.push(slot);
      }
    }
  }

  function playAudio(el) {
    const p = el.play();
    if (p && p.catch) {
      p.catch((err) => {
        if (err && err.name === 'NotAllowedError' && !destroyed) audioUnlock.hidden = false;
      });
    }
  }

  /** The `tracks` of an offer: mid -> 'mic' | 'camera' | 'screen' for what we send. */
  function trackMap() {
    const tracks = {};
    const add = (tx, name) => {
      if (tx && tx.mid !== null && (tx.direction === 'sendonly' || tx.direction === 'sendrecv')) tracks[tx.mid] = name;
    };
    add(micTx, 'mic');
    add(camTx, 'camera');
    add(screenTx, 'screen');
    return tracks;
  }

  /** Offer, answer; one at a time: a call during one in flight runs again after it. */
  async function negotiate() {
    if (!pc) return;
    if (negotiating) {
      renegotiate = true;
      return;
    }
    negotiating = true;
    const mine = pc;
    try {
      do {
        renegotiate = false;
        const offer = await mine.createOffer();
        if (pc !== mine) return;
        await mine.setLocalDescription(offer);
        if (pc !== mine) return;
        const answer = waitAnswer();
        answer.catch(() => {}); // (handled below; cancelled when the peer goes)
        if (!send({ type: 'offer', sdp: mine.localDescription.sdp, tracks: trackMap() })) {
          cancelAnswer();
          return;
        }
        const sdp = await answer;
        if (pc !== mine) return;
        await mine.setRemoteDescription({ type: 'answer', sdp });
        drawTiles(); // new slots have their mids now
      } while (renegotiate && pc === mine);
    } catch (err) {
      if (pc === mine) {
        if (mine.signalingState === 'have-local-offer') {
          await mine.setLocalDescription({ type: 'rollback' }).catch(() => {});
        }
        notice(t('meet.negotiationFailed', { error: (err && err.message) || String(err) }));
      }
    } finally {
      if (pc === mine) negotiating = false;
    }
  }

  function waitAnswer() {
    cancelAnswer();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pendingAnswer = null;
        reject(new Error(t('meet.noAnswer')));
      }, ANSWER_TIMEOUT_MS);
      pendingAnswer = { resolve, reject, timer };
    });
  }

  function cancelAnswer() {
    if (!pendingAnswer) return;
    const { reject, timer } = pendingAnswer;
    clearTimeout(timer);
    pendingAnswer = null;
    reject(new Error('cancelled'));
  }

  function onAnswer(msg) {
    if (!pendingAnswer || typeof msg.sdp !== 'string') return;
    const { resolve, timer } = pendingAnswer;
    clearTimeout(timer);
    pendingAnswer = null;
    resolve(msg.sdp);
  }

  function closePeer() {
    cancelAnswer();
    negotiating = false;
    renegotiate = false;
    if (pc) {
      try { pc.close(); } catch { /* closed */ }
    }
    pc = null;
    micTx = null;
    camTx = null;
    wantLayers = null; // (a new connection sends every layer until the server says otherwise)
    screenTx = null;
    recvVideo = [];
    for (const s of recvAudio) s.el.srcObject = null;
    recvAudio = [];
    audioBox.replaceChildren();
    videoSlots = {};
    audioSlots = {};
  }

  /** Ends the connection (socket and peer) and clears the room; local devices stay. */
  function teardown() {
    session += 1;
    if (ws) {
      try { ws.close(1000); } catch { /* closed */ }
    }
    ws = null;
    if (screenTrack) {
      screenTrack.stop();
      screenTrack = null;
    }
    closePeer();
    for (const tile of tiles.values()) tile.destroy();
    tiles.clear();
    for (const tile of screenTiles.values()) tile.destroy();
    screenTiles.clear();
    if (selfTile) selfTile.destroy();
    selfTile = null;
    tileSizes.clear();
    lastView = '';
    speaker = null;
    participants = [];
    quality = 'unknown';
    drawQuality(null, null);
  }

  function stopLocal() {
    for (const track of localStream.getTracks()) {
      track.stop();
      localStream.removeTrack(track);
    }
    micTrack = null;
    camTrack = null;
    stopMeter();
  }

  // ---- leaving, end, removal ------------------------------------------------------------------
  function leave() {
    if (state === 'joined' || state === 'joining' || state === 'reconnecting') send({ type: 'leave' });
    if (rejoinTimer !== null) clearTimeout(rejoinTimer);
    rejoinTimer = null;
    setState('left');
    teardown();
    stopLocal();
    showOver('left', null);
  }

  function over(kind, reason) {
    setState(kind);
    teardown();
    stopLocal();
    showOver(kind, reason);
  }

  function showOver(kind, reason) {
    document.title = t('app.title');
    if (kind !== 'error') {
      noticeEl.hidden = true; // what happened in the room is over
      clearError();
    }
    if (kind === 'error') {
      fill(body, h('div', { class: 'meet-over-actions', testid: 'meeting-over', 'data-state': kind },
        h('button', { type: 'button', testid: 'meeting-retry', onclick: showCheck }, t('common.retry')),
        guest ? null : h('a', { href: '#/meetings', testid: 'meeting-back' }, t('meet.backToList'))));
      return;
    }
    const text = { left: t('meet.left'), ended: t('meet.ended'), removed: t('meet.removed') }[kind];
    fill(body, h('div', { class: 'card meet-over', testid: 'meeting-over', 'data-state': kind },
      h('p', { class: 'strong', testid: `meeting-${kind}` }, text),
      reason ? h('p', { class: 'muted' }, t('meet.reason', { reason })) : null,
      h('div', { class: 'meet-over-actions' },
        kind === 'left' ? h('button', { type: 'button', class: 'primary', testid: 'meeting-rejoin', onclick: showCheck }, t('meet.rejoin')) : null,
        guest ? null : h('a', { href: '#/meetings', testid: 'meeting-back' }, t('meet.backToList')))));
  }

  // ---- view sizes (simulcast layer choice) --------------------------------------------------
  function onResize(entries) {
    for (const entry of entries) {
      const pid = tilePid.get(entry.target);
      if (pid === undefined || !tiles.has(pid)) continue;
      const box = entry.contentRect;
      tileSizes.set(pid, { w: Math.round(box.width), h: Math.round(box.height) });
    }
    scheduleView();
  }

  /** Sends `view` once the tiles have kept their sizes for VIEW_DEBOUNCE_MS. */
  function scheduleView() {
    if (viewTimer !== null) clearTimeout(viewTimer);
    viewTimer = setTimeout(sendView, VIEW_DEBOUNCE_MS);
  }

  function sendView() {
    viewTimer = null;
    if (state !== 'joined') return;
    const view = {}; // participant id -> CSS pixels of its camera tile (people and cameras)
    for (const [pid, tile] of tiles) {
      // measured now (a tile not laid out yet keeps the size its ResizeObserver last saw)
      const box = tile.el.getBoundingClientRect();
      if (box.width > 0 && box.height > 0) tileSizes.set(pid, { w: Math.round(box.width), h: Math.round(box.height) });
      const size = tileSizes.get(pid);
      if (size) view[String(pid)] = size;
    }
    const text = JSON.stringify(view);
    if (text === lastView) return;
    if (send({ type: 'view', tiles: view })) lastView = text;
  }

  // ---- statistics: connection quality, tiles for tests ----------------------------------------
  async function measureQuality() {
    const mine = pc;
    if (!mine) return;
    let report;
    try {
      report = await mine.getStats();
    } catch {
      return;
    }
    if (pc !== mine) return;
    let pair = null;
    for (const r of report.values()) {
      if (r.type === 'transport' && r.selectedCandidatePairId) pair = report.get(r.selectedCandidatePairId) || pair;
    }
    if (!pair) {
      for (const r of report.values()) {
        if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r;
      }
    }
    const rtt = pair && typeof pair.currentRoundTripTime === 'number' ? pair.currentRoundTripTime : null;
    let lost = 0;
    let received = 0;
    let upLoss = 0;
    for (const r of report.values()) {
      if (r.type === 'inbound-rtp') {
        lost += Math.max(0, r.packetsLost || 0);
        received += r.packetsReceived || 0;
      } else if (r.type === 'remote-inbound-rtp' && typeof r.fractionLost === 'number') {
        upLoss = Math.max(upLoss, r.fractionLost);
      }
    }
    const dLost = Math.max(0, lost - prevLoss.lost);
    const dReceived = Math.max(0, received - prevLoss.received);
    prevLoss = { lost, received };
    const loss = Math.max(upLoss, dLost + dReceived > 0 ? dLost / (dLost + dReceived) : 0);
    const cs = mine.connectionState;
    if (cs === 'failed' || cs === 'disconnected') quality = 'poor';
    else if (cs !== 'connected' || !pair) quality = 'unknown';
    else if ((rtt ?? 0) < 0.15 && loss < 0.02) quality = 'good';
    else if ((rtt ?? 0) < 0.4 && loss < 0.08) quality = 'fair';
    else quality = 'poor';
    drawQuality(rtt, loss);
  }

  function drawQuality(rtt, loss) {
    qualityEl.dataset.quality = quality;
    qualityEl.textContent = t(`meet.quality.${quality}`);
    qualityEl.title = rtt !== null && loss !== null
      ? t('meet.qualityDetail', { rtt: Math.round(rtt * 1000), loss: (loss * 100).toFixed(1) })
      : '';
  }

  /** Per recvonly slot: what it carries and its inbound-rtp figures. */
  async function tileStats() {
    const mine = pc;
    if (!mine) return [];
    const report = await mine.getStats();
    const byMid = new Map();
    const trackMid = new Map();
    for (const tr of mine.getTransceivers()) {
      if (tr.mid !== null && tr.receiver && tr.receiver.track) trackMid.set(tr.receiver.track.id, tr.mid);
    }
    for (const r of report.values()) {
      if (r.type !== 'inbound-rtp') continue;
      const mid = r.mid != null ? String(r.mid) : trackMid.get(r.trackIdentifier);
      if (mid === undefined) continue;
      const known = byMid.get(mid);
      if (!known || (r.bytesReceived || 0) >= (known.bytesReceived || 0)) byMid.set(mid, r);
    }
    const out = [];
    const add = (slot, map) => {
      const mid = slot.tr.mid;
      if (mid === null) return;
      const a = map[mid] || null;
      const r = byMid.get(mid) || {};
      out.push({
        participant: a ? a.participant : null,
        track: a ? a.track : null,
        kind: slot.kind,
        mid,
        framesDecoded: r.framesDecoded || 0,
        frameWidth: r.frameWidth || 0,
        frameHeight: r.frameHeight || 0,
        audioLevel: r.audioLevel || 0,
        totalAudioEnergy: r.totalAudioEnergy || 0,
        bytesReceived: r.bytesReceived || 0,
        packetsReceived: r.packetsReceived || 0,
        packetsLost: r.packetsLost || 0,
        framesReceived: r.framesReceived || 0,
        framesDropped: r.framesDropped || 0,
        keyFramesDecoded: r.keyFramesDecoded || 0,
        freezeCount: r.freezeCount || 0,
        nackCount: r.nackCount || 0,
        pliCount: r.pliCount || 0,
        codec: (r.codecId && report.get(r.codecId) && report.get(r.codecId).mimeType) || null,
      });
    };
    for (const s of recvVideo) add(s, videoSlots);
    for (const s of recvAudio) add(s, audioSlots);
    return out;
  }

  /** The camera sender's encodings (rid, active, …) and its outbound-rtp figures per rid. */
  async function cameraSender() {
    const tx = camTx;
    if (!tx || !pc) return { simulcast, encodings: [], outbound: [] };
    const params = tx.sender.getParameters();
    const encodings = (params.encodings || []).map((e) => ({
      rid: e.rid ?? null,
      active: e.active !== false,
      scaleResolutionDownBy: e.scaleResolutionDownBy ?? null,
      maxBitrate: e.maxBitrate ?? null,
    }));
    const outbound = [];
    const report = await tx.sender.getStats();
    for (const r of report.values()) {
      if (r.type !== 'outbound-rtp') continue;
      outbound.push({
        rid: r.rid ?? null,
        active: r.active ?? null,
        framesSent: r.framesSent || 0,
        framesEncoded: r.framesEncoded || 0,
        frameWidth: r.frameWidth || 0,
        frameHeight: r.frameHeight || 0,
        bytesSent: r.bytesSent || 0,
        qualityLimitationReason: r.qualityLimitationReason || null,
      });
    }
    outbound.sort((a, b) => String(a.rid).localeCompare(String(b.rid)));
    return { simulcast, encodings, outbound, error: layersError };
  }

  /** The selected ICE candidate pair: {local: {address, port, protocol}, remote: {…}} or null. */
  async function selectedPair() {
    const mine = pc;
    if (!mine) return null;
    const report = await mine.getStats();
    let pair = null;
    for (const r of report.values()) {
      if (r.type === 'transport' && r.selectedCandidatePairId) pair = report.get(r.selectedCandidatePairId) || pair;
    }
    if (!pair) return null;
    const end = (c) => (c ? { address: c.address || c.ip || null, port: c.port ?? null, protocol: c.protocol || null } : null);
    return { local: end(report.get(pair.localCandidateId)), remote: end(report.get(pair.remoteCandidateId)) };
  }

  // ---- page lifetime ---------------------------------------------------------------------
  function destroy() {
    if (destroyed) return;
    destroyed = true;
    if (state === 'joined' || state === 'joining' || state === 'reconnecting') send({ type: 'leave' });
    if (rejoinTimer !== null) clearTimeout(rejoinTimer);
    if (viewTimer !== null) clearTimeout(viewTimer);
    if (noticeTimer !== null) clearTimeout(noticeTimer);
    clearInterval(ticker);
    window.removeEventListener('hashchange', onHashChange);
    window.removeEventListener('pagehide', destroy);
    document.removeEventListener('pointerdown', onFirstGesture, true);
    teardown();
    stopLocal();
    if (resizer) resizer.disconnect();
    if (window.xasoMeeting === exposed) delete window.xasoMeeting;
    document.title = t('app.title');
  }

  function onHashChange() {
    if (!root.isConnected) destroy();
  }

  // Autoplay: browsers may hold audio back until the first gesture on the page. (A press
  // outside the camera menu also closes it.)
  function onFirstGesture(e) {
    if (cameraMenuOpen && e && e.target instanceof Node && !addCamBox.contains(e.target)) setCameraMenu(false);
    if (audioCtx && audioCtx.state === 'suspended') audioCtx.resume().catch(() => {});
    for (const s of recvAudio) if (s.el.paused) playAudio(s.el);
  }

  // The router replaces the page on hashchange; a language switch or logout redraws without
  // one, which this tick notices. It also refreshes the connection quality.
  const ticker = setInterval(() => {
    if (!root.isConnected) {
      destroy();
      return;
    }
    if (state === 'joined') measureQuality();
  }, STATS_MS);
  window.addEventListener('hashchange', onHashChange);
  window.addEventListener('pagehide', destroy);
  document.addEventListener('pointerdown', onFirstGesture, true);

  const exposed = {
    get you() { return you; },
    get role() { return role; },
    get state() { return state; },
    get closeCode() { return closeCode; },
    get error() { return lastError; },
    get speaker() { return speaker; },
    get quality() { return quality; },
    get meeting() { return { ...meeting }; },
    participants: () => participants.map((p) => ({ ...p })),
    slots: () => ({
      video: { ...videoSlots },
      audio: { ...audioSlots },
      offered: { video: recvVideo.length, audio: recvAudio.length },
    }),
    tiles: () => tileStats(),
    cameraSender: () => cameraSender(),
    transport: () => selectedPair(),
    layersLog: () => layersLog.map((l) => ({ at: l.at, active: [...l.active] })),
    view: () => (lastView ? JSON.parse(lastView) : {}),
    cameras: () => (cameraList || []).map((c) => ({ id: c.id, name: c.name })),
    addCamera: (camera) => addCamera(camera),
    removeCamera: (camera) => removeCamera(camera),
    chat: () => chatLog.map((m) => ({ ...m })),
    get key() { return meetingKey; },
    votes: () => votes.list(),
    documents: () => documents.map((d) => ({ ...d })),
    castVote: (vote, option) => votes.cast(vote, option, true),
  };
  window.xasoMeeting = exposed;

  // ---- start -------------------------------------------------------------------------------
  if (!id) {
    setState('error');
    showError(t('meet.notFound'));
    return root;
  }
  if (typeof RTCPeerConnection !== 'function') {
    setState('error');
    showError(t('meet.unsupported'));
    return root;
  }
  if (me) {
    // the title for the device check (the socket tells guests after joining)
    api.get(`/api/meetings/${encodeURIComponent(id)}`).then((m) => {
      if (m && m.title) {
        meeting = { ...meeting, ...m };
        checkTitle.textContent = t('meet.checkTitleOf', { title: m.title });
      }
    }, () => {});
  }
  showCheck();
  drawToolbar();
  drawQuality(null, null);
  return root;
}
