// xaso web UI: shell (header + navigation) and hash router.
import { h, fill } from './dom.js';
import { initI18n, setLang, otherLang, lang, t } from './i18n.js';
import { api, onUnauthenticated } from './api.js';
import { errorText } from './components.js';
import * as login from './pages/login.js';
import * as live from './pages/live.js';
import * as recordings from './pages/recordings.js';
import * as meetings from './pages/meetings.js';
import * as admin from './pages/admin.js';
import * as audit from './pages/audit.js';
import * as account from './pages/account.js';
import * as meetingRoom from './meeting-room.js';

// route -> page module, label key, whether only admins may open it
const ROUTES = {
  live: { page: live, label: 'nav.live', adminOnly: false },
  recordings: { page: recordings, label: 'nav.recordings', adminOnly: false },
  meetings: { page: meetings, label: 'nav.meetings', adminOnly: false },
  admin: { page: admin, label: 'nav.admin', adminOnly: true },
  audit: { page: audit, label: 'nav.audit', adminOnly: true },
  account: { page: account, label: null, adminOnly: false },
  // the meeting room, #/meet/{id}: not in the navigation; with ?t=TOKEN also for guests
  meet: { page: meetingRoom, label: null, adminOnly: false },
};
const DEFAULT_ROUTE = 'live';

const root = document.getElementById('app');
let me = null; // the signed-in user from GET /api/me, or null

function currentRoute() {
  const name = location.hash.replace(/^#\/?/, '').split(/[/?]/)[0];
  return Object.hasOwn(ROUTES, name) ? name : null;
}

function allowed(name) {
  return !ROUTES[name].adminOnly || (me && me.role === 'admin');
}

function langSwitch() {
  const target = otherLang();
  return h('button', {
    type: 'button', class: 'lang-switch', testid: 'lang-switch', lang: target,
    onclick: async () => {
      await setLang(target);
      render();
    },
  }, t('lang.switch'));
}

async function loadMe() {
  try {
    me = await api.get('/api/me');
  } catch (err) {
    me = null;
    if (err.status !== 401) throw err;
  }
}

async function logout() {
  try {
    await api.post('/api/logout');
  } catch {
    // the session is dropped locally either way
  }
  me = null;
  reminderList = null;
  history.replaceState(null, '', location.pathname);
  render();
}

function navBar(active) {
  const links = Object.entries(ROUTES)
    .filter(([name, r]) => r.label && allowed(name))
    .map(([name, r]) => h('a', {
      href: `#/${name}`, testid: `nav-${name}`,
      class: name === active ? 'active' : '',
      'aria-current': name === active ? 'page' : null,
    }, t(r.label)));
  return h('header', { class: 'topbar' },
    h('a', { class: 'brand', href: `#/${DEFAULT_ROUTE}` }, 'xaso'),
    h('nav', { class: 'nav', 'aria-label': t('nav.label') }, links),
    h('div', { class: 'user-box' },
      h('a', { href: '#/account', class: 'current-user', testid: 'current-user', title: t('nav.account') }, me.username),
      h('button', { type: 'button', testid: 'logout', onclick: logout }, t('nav.logout')),
      langSwitch()));
}

/** The top bar of a guest in a meeting room (no account: no navigation). */
function guestBar() {
  return h('header', { class: 'topbar' },
    h('span', { class: 'brand' }, 'xaso'),
    h('div', { class: 'nav' }),
    h('div', { class: 'user-box' }, langSwitch()));
}

function render() {
  // a guest's link (#/meet/{id}?t=TOKEN) opens the room without a login
  if (!me && currentRoute() === 'meet' && meetingRoom.parseMeetHash().token) {
    fill(root,
      guestBar(),
      h('main', { class: 'content meet-content' }, meetingRoom.render({ me: null })));
    return;
  }
  if (!me) {
    fill(root, login.render({
      langSwitch: langSwitch(),
      onLogin: async () => {
        await loadMe();
        render();
      },
    }));
    return;
  }
  let route = currentRoute();
  if (!route || !allowed(route)) {
    route = DEFAULT_ROUTE;
    history.replaceState(null, '', `#/${route}`);
  }
  const inRoom = route === 'meet';
  fill(root,
    navBar(inRoom ? 'meetings' : route),
    inRoom ? null : reminderBar,
    h('main', { class: inRoom ? 'content meet-content' : 'content' }, ROUTES[route].page.render({ me })));
  checkReminders();
}

// The reminder of a meeting that starts within 15 minutes (or has started and not ended),
// for its chair and invitees, on every page but the room itself; dismissed per meeting for
// the session. GET /api/meetings once a minute while signed in; a page change shows the
// reminder from the last list (it fetches only when that is a minute old).
const REMIND_MS = 15 * 60_000;
const REMIND_CHECK_MS = 60_000;
const reminderBar = h('div', { class: 'meeting-reminder', testid: 'meeting-reminder', hidden: true, role: 'status' });
let reminderTimer = null;
let reminderList = null; // {meetings, at}: the last GET /api/meetings

function dismissed(id) {
  try {
    return sessionStorage.getItem(`xaso.reminder.${id}`) === '1';
  } catch {
    return false;
  }
}

/** Shows the reminder due; `fresh`: from a new list (else from the last, unless it is a minute old). */
async function checkReminders(fresh = false) {
  if (!me) return;
  if (reminderTimer === null) reminderTimer = setInterval(() => checkReminders(true), REMIND_CHECK_MS);
  if (fresh || !reminderList || Date.now() - reminderList.at >= REMIND_CHECK_MS) {
    try {
      const list = await api.get('/api/meetings');
      reminderList = { meetings: list.meetings || [], at: Date.now() };
    } catch {
      return; // a reminder is a nicety: the next check tries again
    }
  }
  showReminder();
}

function showReminder() {
  if (!me || !reminderList) return; // signed out while the list was on its way
  const now = Date.now();
  const mine = reminderList.meetings.filter((m) => (m.chair.username === me.username || m.invitees.includes(me.username))
    && (m.phase === 'upcoming' || m.phase === 'now')
    && new Date(m.start) - now <= REMIND_MS && !dismissed(m.id));
  // The next to start first; then one already on.
  mine.sort((a, b) => (a.phase === 'upcoming' ? 0 : 1) - (b.phase === 'upcoming' ? 0 : 1)
    || new Date(a.start) - new Date(b.start));
  const m = mine[0];
  if (!m) {
    reminderBar.hidden = true;
    return;
  }
  const time = new Date(m.start).toLocaleTimeString(lang() === 'vi' ? 'vi-VN' : 'en-GB', { hour: '2-digit', minute: '2-digit' });
  fill(reminderBar,
    h('span', {}, t(m.phase === 'now' ? 'reminder.now' : 'reminder.soon', { title: m.title, time })),
    h('a', { href: `#/meet/${m.id}`, class: 'button', testid: 'meeting-reminder-join' }, t('reminder.join')),
    h('button', {
      type: 'button', testid: 'meeting-reminder-dismiss',
      onclick: () => {
        try {
          sessionStorage.setItem(`xaso.reminder.${m.id}`, '1');
        } catch {
          // private mode: dismissed until the next check
        }
        reminderBar.hidden = true;
      },
    }, t('reminder.dismiss')));
  reminderBar.dataset.meeting = String(m.id);
  reminderBar.hidden = false;
}

function fatal(err) {
  fill(root, h('div', { class: 'content' },
    h('p', { class: 'status error', testid: 'fatal-error' }, errorText(err)),
    h('button', { type: 'button', onclick: () => location.reload() }, t('common.retry'))));
}

async function start() {
  await initI18n();
  onUnauthenticated(() => {
    if (!me) return;
    me = null;
    render();
  });
  window.addEventListener('hashchange', () => render());
  await loadMe();
  render();
}

start().catch(fatal);
