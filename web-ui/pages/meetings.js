// Meetings ("Cuộc họp"): the signed-in user's meetings (GET /api/meetings: those they chair
// or are invited to; admins see all) in three sections by phase (now, upcoming, past), a
// form to schedule one (POST /api/meetings: the caller becomes its chair; the nodes below
// this one, GET /api/nodes/below, may be invited by ticking them), each meeting's
// guest link (join_url, shown to its chair and admins) with a copy button, and a link into
// the room (#/meet/{id}, meeting-room.js). Contract: docs/design/meetings.md.
//
// #/meetings?record=ID: the meeting's record ("Biên bản", GET /api/meetings/{id}/record; the
// chair and admins, who get the link from the list): attendance, chat, documents and votes
// with their tallies and, unless secret, who chose what.
import { h, fill } from '../dom.js';
import { t, has, lang, formatTime } from '../i18n.js';
import { api } from '../api.js';
import { page, errorText, statusLine, field } from '../components.js';
import { formatSize } from '../meeting-format.js';
import { voteResults } from '../meeting-votes.js';

const SECTIONS = [
  { key: 'now', phases: ['now'], label: 'meetings.now', order: 1 },
  { key: 'upcoming', phases: ['upcoming'], label: 'meetings.upcoming', order: 1 },
  { key: 'past', phases: ['past', 'ended'], label: 'meetings.past', order: -1 },
];
const DEFAULT_LENGTH_MS = 60 * 60 * 1000;

const pad = (n) => String(n).padStart(2, '0');

/** A `datetime-local` input value ("YYYY-MM-DDTHH:MM", local time) for `d`. */
function localInputValue(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** RFC 3339 with the local offset ("2025-03-04T09:00:00+07:00") for a `datetime-local` value; null if invalid. */
export function rfc3339FromLocal(value) {
  if (!value) return null;
  const d = new Date(value); // a date-time without an offset is local time
  if (Number.isNaN(d.getTime())) return null;
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const a = Math.abs(off);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
    + `${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

/** "alice, bob;carol" -> ["alice", "bob", "carol"] (trimmed, no empties, no repeats). */
function splitList(text) {
  return [...new Set(text.split(/[,;\n]/).map((s) => s.trim()).filter(Boolean))];
}

function when(rfc3339) {
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339 || '';
  return d.toLocaleString(lang() === 'vi' ? 'vi-VN' : 'en-GB', {
    weekday: 'short', day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit',
  });
}

function timeOnly(rfc3339) {
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339 || '';
  return d.toLocaleTimeString(lang() === 'vi' ? 'vi-VN' : 'en-GB', { hour: '2-digit', minute: '2-digit' });
}

function sameDay(a, b) {
  const x = new Date(a);
  const y = new Date(b);
  return x.toDateString() === y.toDateString();
}

/** The full address of a join link ("/#/meet/1?t=…" -> "http://box/#/meet/1?t=…"). */
function absoluteUrl(url) {
  try {
    return new URL(url, location.origin).href;
  } catch {
    return url;
  }
}

async function copyText(input) {
  const text = input.value;
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // fall back below
    }
  }
  input.focus();
  input.select();
  try {
    return document.execCommand('copy');
  } catch {
    return false;
  }
}

function meetingCard(m, status) {
  const phase = m.phase || 'upcoming';
  const range = sameDay(m.start, m.end) ? `${when(m.start)} – ${timeOnly(m.end)}` : `${when(m.start)} – ${when(m.end)}`;
  const people = [];
  if (m.chair && m.chair.username) people.push(h('div', {}, t('meetings.chair', { name: m.chair.username })));
  if (m.invitees && m.invitees.length) people.push(h('div', {}, t('meetings.invitees', { names: m.invitees.join(', ') })));
  if (m.guests && m.guests.length) people.push(h('div', {}, t('meetings.guests', { names: m.guests.join(', ') })));
  const nodes = (m.nodes || []).filter(Boolean);
  if (!m.from_parent && nodes.length) {
    people.push(h('div', { testid: `meeting-nodes-${m.id}` }, t('meetings.nodes', { names: nodes.join(', ') })));
  }

  // a link with its copy button (the shared one, and each invited guest's own)
  const linkRow = (inputId, url, label) => {
    const input = h('input', {
      id: inputId, testid: inputId, readonly: true, value: absoluteUrl(url),
      class: 'mono', onfocus: () => input.select(),
    });
    const copy = h('button', {
      type: 'button', class: 'small', testid: inputId.replace('-link-', '-copy-'),
      onclick: async () => {
        if (await copyText(input)) status.ok(t('meetings.copied', { title: m.title }));
        else status.error(t('meetings.copyFailed'));
      },
    }, t('meetings.copy'));
    return h('div', { class: 'meeting-link' },
      h('label', { for: inputId }, label),
      h('div', { class: 'meeting-link-row' }, input, copy));
  };
  let link = null;
  if (m.join_url) {
    const own = (m.guest_links || []).map((g, i) => linkRow(`meeting-guest-link-${m.id}-${i}`, g.join_url, g.guest));
    link = h('div', {},
      linkRow(`meeting-link-${m.id}`, m.join_url, t('meetings.joinLink')),
      own.length ? h('details', { class: 'meeting-guest-links', testid: `meeting-guest-links-${m.id}` },
        h('summary', {}, t('meetings.guestLinks')), own) : null);
  }

  const join = phase === 'ended' ? null : h('a', {
    class: `button-link${phase === 'now' ? ' primary' : ''}`, href: `#/meet/${encodeURIComponent(m.id)}`,
    testid: `meeting-join-${m.id}`,
  }, t('meetings.join'));
  // the record: for the chair and admins (the ones the server gives the join link to)
  const record = m.join_url ? h('a', {
    class: 'button-link', href: `#/meetings?record=${encodeURIComponent(m.id)}`, testid: `meeting-record-link-${m.id}`,
  }, t('meetings.record')) : null;

  return h('li', { class: `card meeting-card phase-${phase}`, testid: `meeting-${m.id}`, 'data-phase': phase },
    h('div', { class: 'meeting-head' },
      h('span', { class: 'meeting-title' }, m.title),
      h('span', { class: `badge meeting-phase ${phase}`, testid: `meeting-phase-${m.id}` }, has(`meetings.phase.${phase}`) ? t(`meetings.phase.${phase}`) : phase),
      m.locked ? h('span', { class: 'badge off' }, t('meetings.locked')) : null,
      m.from_parent ? h('span', { class: 'badge', testid: `meeting-from-parent-${m.id}` }, t('meetings.fromParent')) : null,
      m.participants > 0 && phase !== 'ended'
        ? h('span', { class: 'badge on', testid: `meeting-present-${m.id}` }, t('meetings.present', { n: m.participants })) : null,
      h('span', { class: 'meeting-actions' }, record, join)),
    h('div', { class: 'muted small meeting-when' }, range),
    h('div', { class: 'small meeting-people' }, people),
    link);
}

/** The `record` parameter of `#/meetings?record=ID`, or null. */
function recordParam(hash = location.hash) {
  const q = hash.indexOf('?');
  if (q < 0) return null;
  return new URLSearchParams(hash.slice(q + 1)).get('record') || null;
}

function table(testid, headers, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'table', testid },
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
      h('tbody', {}, rows)));
}

function recordSection(key, testid, count, ...content) {
  return h('section', { class: 'card record-section', testid },
    h('h2', {}, t(key), h('span', { class: 'muted small' }, ` (${count})`)),
    ...content);
}

function drawRecord(r) {
  const m = r.meeting || {};
  const range = m.start && m.end
    ? (sameDay(m.start, m.end) ? `${when(m.start)} – ${timeOnly(m.end)}` : `${when(m.start)} – ${when(m.end)}`) : '';
  const attendance = Array.isArray(r.attendance) ? r.attendance : [];
  const chat = Array.isArray(r.chat) ? r.chat : [];
  const documents = Array.isArray(r.documents) ? r.documents : [];
  const votes = Array.isArray(r.votes) ? r.votes : [];
  const people = new Set(attendance.map((a) => `${a.guest ? 'g' : 'u'}:${a.name}`));

  const head = h('div', { class: 'card record-head' },
    h('div', { class: 'meeting-head' },
      h('span', { class: 'meeting-title', testid: 'record-meeting-title' }, m.title || ''),
      m.phase ? h('span', { class: `badge meeting-phase ${m.phase}` }, has(`meetings.phase.${m.phase}`) ? t(`meetings.phase.${m.phase}`) : m.phase) : null),
    h('div', { class: 'muted small' }, range),
    m.chair && m.chair.username ? h('div', { class: 'small' }, t('meetings.chair', { name: m.chair.username })) : null,
    h('div', { class: 'small', testid: 'record-summary' }, t('meetings.record.summary', {
      people: people.size, documents: documents.length, votes: votes.length, messages: chat.length,
    })));

  const attendanceBody = attendance.length
    ? table('record-attendance',
      [t('meetings.record.name'), t('meetings.record.kind'), t('meetings.record.role'), t('meetings.record.joined'), t('meetings.record.left')],
      attendance.map((a) => h('tr', { testid: 'record-attendance-row' },
        h('td', { class: 'strong' }, a.name),
        h('td', {}, a.guest ? t('meetings.record.guest') : t('meetings.record.user')),
        h('td', {}, has(`meetings.record.role.${a.role}`) ? t(`meetings.record.role.${a.role}`) : (a.role || '')),
        h('td', { class: 'nowrap' }, formatTime(a.joined)),
        h('td', { class: 'nowrap' }, a.left ? formatTime(a.left)
          : (m.phase === 'now' ? t('meetings.record.stillIn') : t('meetings.record.leftUnknown'))))))
    : h('p', { class: 'muted' }, t('meetings.record.noAttendance'));

  const chatBody = chat.length
    ? h('ol', { class: 'record-chat', testid: 'record-chat' }, chat.map((c) => h('li', {},
      h('span', { class: 'muted small nowrap' }, formatTime(c.at)), ' ',
      h('span', { class: 'strong' }, c.from), ': ',
      h('span', { class: 'record-chat-text' }, c.text))))
    : h('p', { class: 'muted' }, t('meetings.record.noChat'));

  const documentsBody = documents.length
    ? table('record-documents',
      [t('meetings.record.document'), t('meetings.record.size'), t('meetings.record.from'), t('meetings.record.at')],
      documents.map((d) => h('tr', { testid: `record-document-${d.id}` },
        h('td', {}, h('a', { href: d.url, download: true, testid: `record-document-link-${d.id}` }, d.name)),
        h('td', { class: 'nowrap' }, formatSize(d.size)),
        h('td', {}, d.from),
        h('td', { class: 'nowrap' }, formatTime(d.at)))))
    : h('p', { class: 'muted' }, t('meetings.record.noDocuments'));

  const votesBody = votes.length
    ? h('ol', { class: 'record-votes' }, votes.map((v) => {
      const options = Array.isArray(v.options) ? v.options : [];
      const ballots = Array.isArray(v.ballots) ? v.ballots : null;
      return h('li', { class: 'record-vote', testid: `record-vote-${v.id}`, 'data-open': String(!!v.open) },
        h('div', { class: 'meeting-head' },
          h('span', { class: 'strong', testid: `record-vote-${v.id}-question` }, v.question),
          v.secret ? h('span', { class: 'badge off' }, t('meet.vote.secretBadge')) : null,
          v.open ? h('span', { class: 'badge on' }, t('meetings.record.voteOpen')) : null),
        h('div', { class: 'muted small' },
          t('meetings.record.voteTimes', {
            opened: formatTime(v.opened_at),
            closed: v.closed_at ? formatTime(v.closed_at) : t('meetings.record.voteNotClosed'),
          }),
          ' · ', t('meetings.record.voteCast', { n: v.cast || 0 })),
        voteResults(v, `record-vote-${v.id}`),
        ballots && ballots.length
          ? h('details', { class: 'record-ballots', open: true },
            h('summary', {}, t('meetings.record.ballots')),
            table(`record-vote-${v.id}-ballots`, [t('meetings.record.name'), t('meetings.record.choice')],
              ballots.map((b) => h('tr', {},
                h('td', {}, b.name),
                h('td', {}, options[b.option] !== undefined ? options[b.option] : String(b.option))))))
          : null,
        !v.secret && v.open ? h('p', { class: 'muted small' }, t('meetings.record.ballotsAfterClose')) : null);
    }))
    : h('p', { class: 'muted' }, t('meetings.record.noVotes'));

  return [
    head,
    recordSection('meetings.record.attendance', 'record-attendance-section', attendance.length, attendanceBody),
    recordSection('meetings.record.votes', 'record-votes', votes.length, votesBody),
    recordSection('meetings.record.documents', 'record-documents-section', documents.length, documentsBody),
    recordSection('meetings.record.chat', 'record-chat-section', chat.length, chatBody),
  ];
}

/** The record view: `#/meetings?record=ID`. */
function renderRecord(id) {
  const box = h('div', { class: 'record-box' }, h('p', { class: 'muted' }, t('common.loading')));
  const root = h('section', { class: 'page meeting-record', testid: 'meeting-record', 'data-state': 'loading' },
    h('div', { class: 'record-actions' },
      h('a', { href: '#/meetings', class: 'button-link', testid: 'record-back' }, t('meetings.record.back')),
      h('button', { type: 'button', testid: 'record-print', onclick: () => window.print() }, t('meetings.record.print'))),
    h('h1', {}, t('meetings.record.title')),
    box);
  api.get(`/api/meetings/${encodeURIComponent(id)}/record`).then((r) => {
    fill(box, drawRecord(r || {}));
    root.dataset.state = 'ready';
  }, (err) => {
    root.dataset.state = 'error';
    fill(box, h('p', { class: 'status error', testid: 'record-error' },
      err.status === 403 ? t('meetings.record.denied') : err.status === 404 ? t('meetings.record.notFound') : '',
      err.status === 403 || err.status === 404 ? ' ' : '', errorText(err)));
  });
  return root;
}

export function render() {
  const recordId = recordParam();
  if (recordId) return renderRecord(recordId);
  const status = statusLine('meetings-status');
  const listBox = h('div', { class: 'meetings-box', testid: 'meetings-list' }, h('p', { class: 'muted' }, t('common.loading')));

  // ---- the form ---------------------------------------------------------------------
  const start = new Date(Math.ceil(Date.now() / (15 * 60 * 1000)) * 15 * 60 * 1000); // next quarter hour
  const titleInput = h('input', { id: 'meetings-form-title', testid: 'meetings-form-title', required: true, maxlength: '200' });
  const startInput = h('input', {
    id: 'meetings-form-start', testid: 'meetings-form-start', type: 'datetime-local', required: true,
    value: localInputValue(start),
  });
  const endInput = h('input', {
    id: 'meetings-form-end', testid: 'meetings-form-end', type: 'datetime-local', required: true,
    value: localInputValue(new Date(start.getTime() + DEFAULT_LENGTH_MS)),
  });
  const inviteesInput = h('input', {
    id: 'meetings-form-invitees', testid: 'meetings-form-invitees', placeholder: t('meetings.form.inviteesHint'),
  });
  const guestsInput = h('input', {
    id: 'meetings-form-guests', testid: 'meetings-form-guests', placeholder: t('meetings.form.guestsHint'),
  });
  // the nodes below this one (federation), invited by ticking them; none: no such row
  const nodesBox = h('div', { class: 'form-row meetings-form-nodes', testid: 'meetings-form-nodes', hidden: true });
  const pickedNodes = () => [...nodesBox.querySelectorAll('input:checked')].map((i) => i.value);
  api.get('/api/nodes/below').then((data) => {
    const nodes = (data && data.nodes) || [];
    if (!nodes.length) return;
    fill(nodesBox, h('fieldset', {},
      h('legend', {}, t('meetings.form.nodes')),
      nodes.map((n) => h('label', { class: 'check' },
        h('input', { type: 'checkbox', value: n.path, testid: `meetings-form-node-${n.path}` }),
        ` ${n.path} `,
        h('span', { class: 'muted small' }, n.up ? t('meetings.form.nodeUp', { level: n.level }) : t('meetings.form.nodeDown', { level: n.level }))))));
    nodesBox.hidden = false;
  }).catch(() => {});
  const submit = h('button', { type: 'submit', class: 'primary', testid: 'meetings-form-submit' }, t('meetings.form.submit'));
  const formStatus = statusLine('meetings-form-status');
  // keep the length when the start moves
  let lastStart = startInput.value;
  startInput.addEventListener('change', () => {
    const before = new Date(lastStart).getTime();
    const end = new Date(endInput.value).getTime();
    const now = new Date(startInput.value).getTime();
    if (!Number.isNaN(before) && !Number.isNaN(end) && !Number.isNaN(now) && end > before) {
      endInput.value = localInputValue(new Date(now + (end - before)));
    }
    lastStart = startInput.value;
  });

  async function onSubmit(event) {
    event.preventDefault();
    formStatus.clear();
    const title = titleInput.value.trim();
    const startAt = rfc3339FromLocal(startInput.value);
    const endAt = rfc3339FromLocal(endInput.value);
    if (!title) {
      formStatus.error(t('meetings.needTitle'));
      return;
    }
    if (!startAt || !endAt) {
      formStatus.error(t('meetings.needTimes'));
      return;
    }
    if (new Date(endAt) <= new Date(startAt)) {
      formStatus.error(t('meetings.badOrder'));
      return;
    }
    submit.disabled = true;
    try {
      const m = await api.post('/api/meetings', {
        title, start: startAt, end: endAt,
        invitees: splitList(inviteesInput.value),
        guests: splitList(guestsInput.value),
        nodes: pickedNodes(),
      });
      formStatus.ok(t('meetings.created', { title: (m && m.title) || title }));
      titleInput.value = '';
      inviteesInput.value = '';
      guestsInput.value = '';
      nodesBox.querySelectorAll('input:checked').forEach((i) => { i.checked = false; });
      await load(m && m.id);
    } catch (err) {
      formStatus.error(err);
    } finally {
      submit.disabled = false;
    }
  }

  const form = h('form', { class: 'card meetings-form', testid: 'meetings-form', onsubmit: onSubmit },
    h('h2', {}, t('meetings.schedule')),
    h('div', { class: 'form-row' },
      field('meetings-form-title', t('meetings.form.title'), titleInput),
      field('meetings-form-start', t('meetings.form.start'), startInput),
      field('meetings-form-end', t('meetings.form.end'), endInput)),
    h('div', { class: 'form-row' },
      field('meetings-form-invitees', t('meetings.form.invitees'), inviteesInput),
      field('meetings-form-guests', t('meetings.form.guests'), guestsInput),
      submit),
    nodesBox,
    formStatus.el);

  // ---- the list ---------------------------------------------------------------------
  async function load(highlightId = null) {
    let data;
    try {
      data = await api.get('/api/meetings');
    } catch (err) {
      if (err.status === 403) fill(listBox, h('p', { class: 'notice', testid: 'no-access' }, t('common.noAccess')));
      else fill(listBox, h('p', { class: 'status error', testid: 'page-error' }, errorText(err)));
      return;
    }
    const meetings = (data && data.meetings) || [];
    if (!meetings.length) {
      fill(listBox, h('p', { class: 'muted', testid: 'meetings-empty' }, t('meetings.none')));
      return;
    }
    const sections = SECTIONS.map((s) => {
      const items = meetings.filter((m) => s.phases.includes(m.phase))
        .sort((a, b) => s.order * (new Date(a.start).getTime() - new Date(b.start).getTime()));
      if (!items.length) return null;
      return h('section', { class: 'meetings-section', testid: `meetings-${s.key}` },
        h('h2', {}, t(s.label), h('span', { class: 'muted small' }, ` (${items.length})`)),
        h('ul', { class: 'meeting-list' }, items.map((m) => meetingCard(m, status))));
    });
    // a phase this page does not know yet: listed with the past ones rather than lost
    const known = SECTIONS.flatMap((s) => s.phases);
    const others = meetings.filter((m) => !known.includes(m.phase));
    if (others.length) {
      sections.push(h('section', { class: 'meetings-section', testid: 'meetings-other' },
        h('ul', { class: 'meeting-list' }, others.map((m) => meetingCard(m, status)))));
    }
    fill(listBox, sections);
    if (highlightId !== null && highlightId !== undefined) {
      const card = listBox.querySelector(`[data-testid="meeting-${CSS.escape(String(highlightId))}"]`);
      if (card) {
        card.classList.add('highlight');
        card.scrollIntoView({ block: 'nearest' });
      }
    }
  }

  load();
  return page('meetings.title', form, status.el, listBox);
}
