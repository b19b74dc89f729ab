// Administration, the tree of nodes: this node's parent link, its child nodes with their
// links (refreshed every 5 s while shown), registering a child (its join token is shown
// once) and removing one.
import { h, fill } from '../dom.js';
import { t, formatTime } from '../i18n.js';
import { api } from '../api.js';
import { field, runAction, statusLine } from '../components.js';
import { numberFormat } from '../meeting-format.js';

const REFRESH_MS = 5000;

/** The Admin page's card for the tree of nodes. */
export function nodesSection() {
  const status = statusLine('nodes-status');
  const parentBox = h('div', { testid: 'nodes-parent' });
  const childrenBox = h('div', { class: 'table-wrap' });
  const tokenBox = h('div');
  let data = null;
  let newToken = null; // {name, token}
  let timer = null;

  async function reload() {
    data = await api.get('/api/nodes');
    draw();
  }

  function schedule() {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(async () => {
      timer = null;
      if (!root.isConnected) return; // the page was left
      if (!document.hidden) await reload().catch((err) => status.error(err));
      schedule();
    }, REFRESH_MS);
  }

  function draw() {
    fill(parentBox, parentView(data));
    fill(childrenBox, childrenTable(data.children));
    fill(tokenBox, newToken && tokenNotice(newToken));
  }

  function stateBadge(state, testid) {
    return h('span', { class: `badge link-${state}`, testid }, t(`admin.nodes.state.${state}`));
  }

  function figures(l) {
    const parts = [];
    if (l.rtt_ms != null && l.state === 'up') parts.push(t('admin.nodes.rtt', { ms: l.rtt_ms.toFixed(1) }));
    parts.push(t('admin.nodes.bytes', { sent: kib(l.bytes_sent), received: kib(l.bytes_received) }));
    // what each end measured it can send (once the link was full that way): meetings ask
    // no more than fits
    if (l.rate_out_bps != null) parts.push(t('admin.nodes.rateOut', { mbps: mbps(l.rate_out_bps) }));
    if (l.rate_in_bps != null) parts.push(t('admin.nodes.rateIn', { mbps: mbps(l.rate_in_bps) }));
    return parts.join(' · ');
  }

  function mbps(bps) {
    return numberFormat(1).format(bps / 1e6); // "5,1" in Vietnamese
  }

  function kib(n) {
    return n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`;
  }

  function parentView(d) {
    if (!d.parent) return h('p', { class: 'muted', testid: 'nodes-no-parent' }, t('admin.nodes.noParent'));
    const p = d.parent;
    return h('div', { class: 'node-parent' },
      h('p', {},
        t('admin.nodes.parent'), ' ', h('code', {}, p.url), ' ', stateBadge(p.state, 'nodes-parent-state'),
        p.since ? ` ${t('admin.nodes.since', { time: formatTime(p.since) })}` : ''),
      d.name ? h('p', {}, t('admin.nodes.thisNode', { name: d.name, level: d.level })) : null,
      p.state === 'up' ? h('p', { class: 'muted' }, figures(p)) : null,
      p.error ? h('p', { class: 'status error', testid: 'nodes-parent-error' }, p.error) : null);
  }

  /** The nodes below a child, as one line of names (grandchildren in brackets). */
  function below(nodes) {
    return nodes.map((n) => `${n.name}${n.up ? '' : ` (${t('admin.nodes.state.down')})`}${n.nodes.length ? ` [${below(n.nodes)}]` : ''}`).join(', ');
  }

  function childrenTable(children) {
    if (!children.length) return h('p', { class: 'muted', testid: 'nodes-empty' }, t('admin.nodes.none'));
    return h('table', { class: 'table', testid: 'nodes-table' },
      h('thead', {}, h('tr', {},
        h('th', {}, t('admin.nodes.name')), h('th', {}, t('admin.nodes.level')),
        h('th', {}, t('admin.nodes.link')), h('th', {}, t('admin.nodes.below')),
        h('th', {}, t('admin.users.actions')))),
      h('tbody', {}, children.map((c) => h('tr', { testid: `node-row-${c.name}` },
        h('td', { class: 'strong' }, c.name),
        h('td', {}, c.level),
        h('td', {},
          stateBadge(c.state, `node-state-${c.name}`),
          c.since ? h('div', { class: 'muted small' }, t('admin.nodes.since', { time: formatTime(c.since) })) : null,
          c.state === 'up' ? h('div', { class: 'muted small' }, figures(c)) : null,
          c.address ? h('div', { class: 'muted small' }, c.address) : null),
        h('td', {}, c.nodes.length ? below(c.nodes) : '—'),
        h('td', { class: 'actions' }, h('button', {
          type: 'button', class: 'danger', testid: `node-remove-${c.name}`,
          onclick: () => {
            if (!window.confirm(t('admin.nodes.confirmRemove', { name: c.name }))) return;
            newToken = null;
            act(() => api.del(`/api/nodes/${c.id}`), 'admin.nodes.removed', { name: c.name });
          },
        }, t('admin.nodes.remove')))))));
  }

  const act = (fn, okKey, params) => runAction(status, reload, fn, okKey, params);

  function addForm() {
    const name = h('input', {
      id: 'node-add-name', testid: 'node-add-name', required: true, autocomplete: 'off',
      pattern: '[a-z0-9]([a-z0-9\\-]*[a-z0-9])?', maxlength: 63, placeholder: 'xa-tan-lap',
    });
    const level = h('input', {
      id: 'node-add-level', testid: 'node-add-level', required: true, autocomplete: 'off',
      list: 'node-levels', maxlength: 40,
    });
    const levels = h('datalist', { id: 'node-levels' },
      ['commune', 'district', 'province'].map((l) => h('option', { value: l })));
    const onsubmit = async (e) => {
      e.preventDefault();
      const n = name.value.trim();
      const ok = await act(async () => {
        const created = await api.post('/api/nodes', { name: n, level: level.value.trim() });
        newToken = { name: created.name, token: created.token };
      }, 'admin.nodes.added', { name: n });
      if (ok) name.value = '';
    };
    return h('form', { class: 'form-row', testid: 'node-add-form', onsubmit },
      field('node-add-name', t('admin.nodes.name'), name),
      field('node-add-level', t('admin.nodes.level'), level), levels,
      h('button', { type: 'submit', class: 'primary', testid: 'node-add-submit' }, t('admin.nodes.add')));
  }

  function tokenNotice({ name, token }) {
    return h('div', { class: 'notice' },
      h('p', {}, t('admin.nodes.showOnce', { name })),
      h('code', { class: 'token', testid: 'node-token' }, token),
      h('p', { class: 'muted' }, t('admin.nodes.howToJoin')),
      h('button', { type: 'button', class: 'small', onclick: () => { newToken = null; draw(); } }, t('common.close')));
  }

  const root = h('section', { class: 'card', testid: 'nodes-card' },
    h('h2', {}, t('admin.nodes.title')),
    h('p', { class: 'muted' }, t('admin.nodes.intro')),
    parentBox, addForm(), status.el, tokenBox, childrenBox);
  fill(childrenBox, h('p', { class: 'muted' }, t('common.loading')));
  reload().catch((err) => status.error(err)).finally(schedule);
  return root;
}
