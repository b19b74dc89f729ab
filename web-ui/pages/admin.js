// Administration: users (role, disable, password, grants), cameras (with their status), API tokens,
// and the tree of nodes (admin-nodes.js).
import { h, fill } from '../dom.js';
import { t, formatTime } from '../i18n.js';
import { api } from '../api.js';
import { nodesSection } from './admin-nodes.js';
import { page, field, runAction, cameraLabel, statusLine, roleLabel, ROLES, statusPoller, statusView } from '../components.js';

export function render({ me }) {
  const state = { users: [], cameras: [], tokens: [], nodePaths: [], newToken: null };
  const usersStatus = statusLine('users-status');
  const camerasStatus = statusLine('cameras-status');
  const tokensStatus = statusLine('tokens-status');
  const usersBox = h('div', { class: 'table-wrap' });
  const camerasBox = h('div', { class: 'table-wrap' });
  const tokensBox = h('div', { class: 'table-wrap' });
  const tokenUser = h('select', { id: 'token-add-user', testid: 'token-add-user', required: true });
  const newTokenBox = h('div');
  // camera statuses, refreshed every 5 s while this page is shown
  const poller = statusPoller(camerasBox);
  let cameraEdit = null; // {id, row}: the camera being edited, kept across redraws

  async function reload() {
    const [users, cameras, tokens, nodes] = await Promise.all([
      api.get('/api/users'), api.get('/api/cameras'), api.get('/api/tokens'), api.get('/api/nodes'),
    ]);
    Object.assign(state, { users, cameras, tokens, nodePaths: nodePaths(nodes.children) });
    draw();
    poller.refresh();
  }

  /** Every node below this one, as grants name it (`huyen-a`, `huyen-a/xa-b`). */
  function nodePaths(nodes, prefix = '') {
    return nodes.flatMap((n) => {
      const p = prefix ? `${prefix}/${n.name}` : n.name;
      return [p, ...nodePaths(n.nodes || [], p)];
    });
  }

  /** Run an API action, report it in `status`, then reload everything. */
  const act = (status, fn, okKey, params) => runAction(status, reload, fn, okKey, params);

  function draw() {
    fill(usersBox, usersTable());
    fill(camerasBox, camerasTable());
    fill(tokensBox, tokensTable());
    const selected = tokenUser.value;
    fill(tokenUser, state.users.map((u) => h('option', { value: String(u.id) }, u.username)));
    if (selected) tokenUser.value = selected;
    fill(newTokenBox, state.newToken && newTokenNotice(state.newToken));
  }

  // ---- users ----------------------------------------------------------

  function usersTable() {
    return h('table', { class: 'table', testid: 'users-table' },
      h('thead', {}, h('tr', {},
        h('th', {}, t('admin.users.username')), h('th', {}, t('admin.users.email')), h('th', {}, t('admin.users.role')),
        h('th', {}, t('admin.users.status')), h('th', {}, t('admin.users.cameras')),
        h('th', {}, t('admin.users.actions')))),
      h('tbody', {}, state.users.map(userRow)));
  }

  function userRow(user) {
    const u = user.username;
    const roleSelect = h('select', {
      testid: `user-role-${u}`, 'aria-label': t('admin.users.role'),
      onchange: () => act(usersStatus, () => api.patch(`/api/users/${user.id}`, { role: roleSelect.value }),
        'admin.users.updated', { username: u }),
    }, ROLES.map((r) => h('option', { value: r }, roleLabel(r))));
    roleSelect.value = user.role;
    // where meeting reminders go: saved when the field is left or Enter is pressed
    const emailInput = h('input', {
      type: 'email', testid: `user-email-${u}`, 'aria-label': t('admin.users.email'),
      placeholder: t('admin.users.emailNone'), value: user.email || '', autocomplete: 'off',
      onchange: () => {
        if (!emailInput.checkValidity()) {
          usersStatus.error(t('admin.users.emailInvalid'));
          return;
        }
        act(usersStatus, () => api.patch(`/api/users/${user.id}`, { email: emailInput.value.trim() }),
          'admin.users.updated', { username: u });
      },
    });

    // Whole nodes first (each with everything below it), then single cameras.
    const nodeGrants = state.nodePaths.map((p) => h('label', { class: 'check node-grant' },
      h('input', { type: 'checkbox', value: p, testid: `grant-${u}-node-${p}`, checked: (user.node_paths || []).includes(p) }),
      t('admin.users.wholeNode', { node: p })));
    const cameraGrants = state.cameras.map((c) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', value: String(c.id), testid: `grant-${u}-${c.id}`, checked: user.camera_ids.includes(c.id) }),
      cameraLabel(c)));
    const grants = [...nodeGrants, ...cameraGrants];
    const checked = (labels) => labels.map((l) => l.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
    const saveGrants = () => {
      const body = { camera_ids: checked(cameraGrants).map(Number), node_paths: checked(nodeGrants) };
      return act(usersStatus, () => api.put(`/api/users/${user.id}/grants`, body),
        'admin.users.grantsSaved', { username: u });
    };

    const actions = h('td', { class: 'actions' });
    const showButtons = () => fill(actions,
      h('button', { type: 'button', testid: `user-reset-${u}`, onclick: showPasswordForm }, t('admin.users.resetPassword')),
      h('button', { type: 'button', class: 'danger', testid: `user-delete-${u}`, onclick: remove }, t('common.delete')));
    function showPasswordForm() {
      const input = h('input', { type: 'password', testid: `user-password-${u}`, autocomplete: 'new-password', placeholder: t('admin.users.newPassword'), required: true });
      fill(actions, h('form', {
        class: 'inline', onsubmit: (e) => {
          e.preventDefault();
          act(usersStatus, () => api.patch(`/api/users/${user.id}`, { password: input.value }),
            'admin.users.passwordReset', { username: u });
        },
      }, input,
      h('button', { type: 'submit', class: 'primary', testid: `user-password-save-${u}` }, t('common.save')),
      h('button', { type: 'button', onclick: showButtons }, t('common.cancel'))));
      input.focus();
    }
    function remove() {
      if (!window.confirm(t('admin.users.confirmDelete', { username: u }))) return;
      act(usersStatus, () => api.del(`/api/users/${user.id}`), 'admin.users.deleted', { username: u });
    }
    showButtons();

    return h('tr', { testid: `user-row-${u}`, class: user.disabled ? 'disabled' : '' },
      h('td', { class: 'strong' }, u, user.id === me.id ? h('span', { class: 'muted small' }, ` (${t('admin.users.you')})`) : null),
      h('td', {}, emailInput),
      h('td', {}, roleSelect),
      h('td', {},
        h('span', { class: user.disabled ? 'badge off' : 'badge on', testid: `user-disabled-${u}` },
          user.disabled ? t('admin.users.disabled') : t('admin.users.active')),
        ' ',
        h('button', {
          type: 'button', class: 'small', testid: `user-toggle-${u}`,
          onclick: () => act(usersStatus, () => api.patch(`/api/users/${user.id}`, { disabled: !user.disabled }),
            'admin.users.updated', { username: u }),
        }, user.disabled ? t('admin.users.enable') : t('admin.users.disable'))),
      h('td', { class: 'grants' },
        grants.length ? grants : h('span', { class: 'muted' }, t('cameras.none')),
        grants.length ? h('button', { type: 'button', class: 'small', testid: `grants-save-${u}`, onclick: saveGrants }, t('admin.users.saveGrants')) : null),
      actions);
  }

  function addUserForm() {
    const username = h('input', { id: 'user-add-username', testid: 'user-add-username', required: true, autocomplete: 'off' });
    const password = h('input', { id: 'user-add-password', testid: 'user-add-password', type: 'password', required: true, autocomplete: 'new-password' });
    const role = h('select', { id: 'user-add-role', testid: 'user-add-role', value: 'member' },
      ROLES.map((r) => h('option', { value: r }, roleLabel(r))));
    const email = h('input', { id: 'user-add-email', testid: 'user-add-email', type: 'email', autocomplete: 'off', placeholder: t('admin.users.emailNone') });
    const onsubmit = async (e) => {
      e.preventDefault();
      const name = username.value.trim();
      const ok = await act(usersStatus,
        () => api.post('/api/users', { username: name, password: password.value, role: role.value, email: email.value.trim() || null }),
        'admin.users.created', { username: name });
      if (ok) {
        username.value = '';
        password.value = '';
        email.value = '';
      }
    };
    return h('form', { class: 'form-row', testid: 'user-add-form', onsubmit },
      field('user-add-username', t('admin.users.username'), username),
      field('user-add-password', t('admin.users.password'), password),
      field('user-add-role', t('admin.users.role'), role),
      field('user-add-email', t('admin.users.email'), email),
      h('button', { type: 'submit', class: 'primary', testid: 'user-add-submit' }, t('admin.users.add')));
  }

  // ---- cameras --------------------------------------------------------

  const CAMERA_COLUMNS = 9;
  const TRANSPORTS = ['tcp', 'udp'];

  function transportSelect(id, value) {
    const select = h('select', { id, testid: id },
      TRANSPORTS.map((tr) => h('option', { value: tr }, t(`admin.cameras.transport.${tr}`))));
    select.value = value || 'tcp';
    return select;
  }

  function retentionInput(id, value) {
    return h('input', {
      id, testid: id, type: 'number', min: '1', max: '3650', step: '1', inputmode: 'numeric',
      placeholder: t('admin.cameras.default'), value: value === null || value === undefined ? '' : String(value),
    });
  }

  function quotaInput(id, value) {
    return h('input', {
      id, testid: id, type: 'number', min: '0.001', step: 'any', inputmode: 'decimal',
      placeholder: t('admin.cameras.noQuota'), value: value === null || value === undefined ? '' : String(value),
    });
  }

  function originBadge(c) {
    const origin = ['api', 'config', 'builtin', 'remote'].includes(c.origin) ? c.origin : 'api';
    return h('span', { class: `badge origin ${origin}`, testid: `camera-origin-${c.id}`, 'data-origin': origin },
      t(`admin.cameras.origin.${origin}`, { node: c.node || '' }));
  }

  /** Config and built-in cameras come back at the next start, and a remote camera is
   * managed at its node: no edit or delete here. */
  const editable = (c) => !c.origin || c.origin === 'api';

  function lockedHint(c) {
    return h('span', { class: 'muted small hint', testid: `camera-locked-${c.id}` }, lockedText(c));
  }

  function lockedText(c) {
    if (c.origin === 'remote') return t('admin.cameras.remoteHint', { node: c.node || '' });
    return t(c.origin === 'builtin' ? 'admin.cameras.builtinHint' : 'admin.cameras.configHint');
  }

  function camerasTable() {
    poller.keep(state.cameras.map((c) => c.id));
    if (cameraEdit && !state.cameras.some((c) => c.id === cameraEdit.id && editable(c))) cameraEdit = null;
    if (!state.cameras.length) return h('p', { class: 'muted', testid: 'cameras-empty' }, t('cameras.none'));
    return h('table', { class: 'table', testid: 'cameras-table' },
      h('thead', {}, h('tr', {},
        h('th', {}, t('admin.cameras.id')), h('th', {}, t('admin.cameras.name')), h('th', {}, t('admin.cameras.url')),
        h('th', {}, t('admin.cameras.transport')), h('th', {}, t('admin.cameras.record')),
        h('th', {}, t('admin.cameras.retention')), h('th', {}, t('admin.cameras.quota')),
        h('th', {}, t('admin.cameras.status')), h('th', {}, t('admin.users.actions')))),
      h('tbody', {}, state.cameras.map((c) => [
        cameraRow(c),
        cameraEdit && cameraEdit.id === c.id ? cameraEdit.row : null,
      ])));
  }

  function cameraRow(c) {
    const view = statusView(c.id);
    poller.watch(c.id, view);
    const canEdit = editable(c);
    return h('tr', { testid: `camera-row-${c.id}`, 'data-origin': c.origin || 'api' },
      h('td', {}, String(c.id)),
      h('td', { class: 'strong' }, c.name, ' ', originBadge(c)),
      h('td', { class: 'mono small url' },
        h('div', {}, c.url || ''),
        c.substream_url ? h('div', { class: 'muted', title: t('admin.cameras.substream') },
          `${t('admin.cameras.substreamShort')}: ${c.substream_url}`) : null),
      h('td', { testid: `camera-transport-${c.id}` }, (c.transport || 'tcp').toUpperCase()),
      h('td', {}, h('input', {
        type: 'checkbox', checked: Boolean(c.record), testid: `camera-record-${c.id}`,
        'aria-label': t('admin.cameras.record'), disabled: !canEdit,
        title: canEdit ? null : lockedText(c),
        onchange: (e) => act(camerasStatus, () => api.patch(`/api/cameras/${c.id}`, { record: e.target.checked }),
          'admin.cameras.updated', { name: c.name }),
      })),
      h('td', { class: 'nowrap', testid: `camera-retention-${c.id}` },
        c.retention_days != null ? t('admin.cameras.days', { n: c.retention_days })
          : h('span', { class: 'muted' }, t('admin.cameras.default'))),
      h('td', { class: 'nowrap', testid: `camera-quota-${c.id}` },
        c.quota_gb != null ? t('admin.cameras.gb', { n: c.quota_gb })
          : h('span', { class: 'muted' }, t('admin.cameras.noQuota'))),
      h('td', { class: 'cam-status' }, view.badge, view.details),
      h('td', { class: 'actions' }, canEdit ? [
        h('button', {
          type: 'button', testid: `camera-edit-${c.id}`,
          onclick: () => {
            cameraEdit = { id: c.id, row: editCameraRow(c) };
            draw();
            const first = cameraEdit.row.querySelector('input');
            if (first) first.focus();
          },
        }, t('admin.cameras.edit')),
        h('button', {
          type: 'button', class: 'danger', testid: `camera-delete-${c.id}`,
          onclick: () => {
            if (!window.confirm(t('admin.cameras.confirmDelete', { name: c.name }))) return;
            if (cameraEdit && cameraEdit.id === c.id) cameraEdit = null;
            act(camerasStatus, () => api.del(`/api/cameras/${c.id}`), 'admin.cameras.deleted', { name: c.name });
          },
        }, t('common.delete')),
      ] : lockedHint(c)));
  }

  /** Parse an optional number input: undefined when empty, NaN when invalid. */
  function numberValue(input) {
    if (input.validity.badInput) return NaN;
    const v = input.value.trim();
    if (v === '') return undefined;
    return input.validity.valid ? Number(v) : NaN;
  }

  /** An edit form (in its own table row) for an API camera; sends only what changed. */
  function editCameraRow(c) {
    const p = `camera-edit-${c.id}`;
    const name = h('input', { id: `${p}-name`, testid: `${p}-name`, required: true, autocomplete: 'off', value: c.name });
    const url = h('input', { id: `${p}-url`, testid: `${p}-url`, required: true, autocomplete: 'off', value: c.url || '' });
    const substream = h('input', { id: `${p}-substream`, testid: `${p}-substream`, autocomplete: 'off', placeholder: 'rtsp://…', value: c.substream_url || '' });
    const transport = transportSelect(`${p}-transport`, c.transport);
    const record = h('input', { id: `${p}-record`, testid: `${p}-record`, type: 'checkbox', checked: Boolean(c.record) });
    const retention = retentionInput(`${p}-retention`, c.retention_days);
    const quota = quotaInput(`${p}-quota`, c.quota_gb);

    function changes() {
      const patch = {};
      const n = name.value.trim();
      if (n !== c.name) patch.name = n;
      // The URLs come without credentials: send them only when the admin changed them.
      const u = url.value.trim();
      if (u !== (c.url || '')) patch.url = u;
      const sub = substream.value.trim();
      if (sub !== (c.substream_url || '')) patch.substream_url = sub; // "" removes it
      if (transport.value !== (c.transport || 'tcp')) patch.transport = transport.value;
      if (record.checked !== Boolean(c.record)) patch.record = record.checked;
      const days = numberValue(retention);
      if (Number.isNaN(days)) throw new Error(t('admin.cameras.badRetention'));
      if (days === undefined && c.retention_days != null) throw new Error(t('admin.cameras.cannotClear'));
      if (days !== undefined && days !== c.retention_days) patch.retention_days = days;
      const gb = numberValue(quota);
      if (Number.isNaN(gb)) throw new Error(t('admin.cameras.badQuota'));
      if (gb === undefined && c.quota_gb != null) throw new Error(t('admin.cameras.cannotClear'));
      if (gb !== undefined && gb !== c.quota_gb) patch.quota_gb = gb;
      return patch;
    }

    const onsubmit = async (e) => {
      e.preventDefault();
      camerasStatus.clear();
      let patch;
      try {
        patch = changes();
      } catch (err) {
        camerasStatus.error(err.message);
        return;
      }
      if (!Object.keys(patch).length) {
        cameraEdit = null;
        draw();
        camerasStatus.ok(t('admin.cameras.unchanged'));
        return;
      }
      const label = patch.name || c.name;
      await act(camerasStatus, async () => {
        await api.patch(`/api/cameras/${c.id}`, patch);
        cameraEdit = null;
      }, 'admin.cameras.updated', { name: label });
    };
    const cancel = () => {
      cameraEdit = null;
      draw();
    };

    return h('tr', { class: 'edit-row', testid: `${p}-row` },
      h('td', { colspan: String(CAMERA_COLUMNS) },
        h('form', { class: 'form-row', testid: `${p}-form`, onsubmit },
          field(`${p}-name`, t('admin.cameras.name'), name),
          field(`${p}-url`, t('admin.cameras.url'), url),
          field(`${p}-substream`, t('admin.cameras.substream'), substream),
          field(`${p}-transport`, t('admin.cameras.transport'), transport),
          field(`${p}-retention`, t('admin.cameras.retentionDays'), retention),
          field(`${p}-quota`, t('admin.cameras.quotaGb'), quota),
          h('label', { class: 'check' }, record, t('admin.cameras.record')),
          h('button', { type: 'submit', class: 'primary', testid: `${p}-save` }, t('common.save')),
          h('button', { type: 'button', testid: `${p}-cancel`, onclick: cancel }, t('common.cancel'))),
        h('p', { class: 'muted small hint' }, t('admin.cameras.urlHint'))));
  }

  function addCameraForm() {
    const name = h('input', { id: 'camera-add-name', testid: 'camera-add-name', required: true, autocomplete: 'off' });
    const url = h('input', { id: 'camera-add-url', testid: 'camera-add-url', required: true, autocomplete: 'off', placeholder: 'rtsp://…' });
    const substream = h('input', { id: 'camera-add-substream', testid: 'camera-add-substream', autocomplete: 'off', placeholder: 'rtsp://…' });
    const transport = transportSelect('camera-add-transport', 'tcp');
    const retention = retentionInput('camera-add-retention', null);
    const quota = quotaInput('camera-add-quota', null);
    const record = h('input', { id: 'camera-add-record', testid: 'camera-add-record', type: 'checkbox', checked: true });
    const onsubmit = async (e) => {
      e.preventDefault();
      const n = name.value.trim();
      const body = { name: n, url: url.value.trim(), record: record.checked, transport: transport.value };
      if (substream.value.trim()) body.substream_url = substream.value.trim();
      const days = numberValue(retention);
      const gb = numberValue(quota);
      if (Number.isNaN(days)) return camerasStatus.error(t('admin.cameras.badRetention'));
      if (Number.isNaN(gb)) return camerasStatus.error(t('admin.cameras.badQuota'));
      if (days !== undefined) body.retention_days = days;
      if (gb !== undefined) body.quota_gb = gb;
      const ok = await act(camerasStatus, () => api.post('/api/cameras', body), 'admin.cameras.created', { name: n });
      if (ok) {
        for (const input of [name, url, substream, retention, quota]) input.value = '';
        transport.value = 'tcp';
        record.checked = true;
      }
      return ok;
    };
    return h('form', { class: 'form-row', testid: 'camera-add-form', onsubmit },
      field('camera-add-name', t('admin.cameras.name'), name),
      field('camera-add-url', t('admin.cameras.url'), url),
      field('camera-add-substream', t('admin.cameras.substreamOptional'), substream),
      field('camera-add-transport', t('admin.cameras.transport'), transport),
      field('camera-add-retention', t('admin.cameras.retentionDays'), retention),
      field('camera-add-quota', t('admin.cameras.quotaGb'), quota),
      h('label', { class: 'check' }, record, t('admin.cameras.record')),
      h('button', { type: 'submit', class: 'primary', testid: 'camera-add-submit' }, t('admin.cameras.add')));
  }

  // ---- API tokens -----------------------------------------------------

  function tokensTable() {
    if (!state.tokens.length) return h('p', { class: 'muted', testid: 'tokens-empty' }, t('admin.tokens.none'));
    return h('table', { class: 'table', testid: 'tokens-table' },
      h('thead', {}, h('tr', {},
        h('th', {}, t('admin.tokens.name')), h('th', {}, t('admin.tokens.user')),
        h('th', {}, t('admin.tokens.createdAt')), h('th', {}, t('admin.tokens.lastUsed')),
        h('th', {}, t('admin.users.actions')))),
      h('tbody', {}, state.tokens.map((tok) => h('tr', { testid: `token-row-${tok.id}` },
        h('td', { class: 'strong' }, tok.name),
        h('td', {}, tok.username),
        h('td', {}, formatTime(tok.created_at)),
        h('td', {}, tok.last_used_at ? formatTime(tok.last_used_at) : t('admin.tokens.never')),
        h('td', { class: 'actions' }, h('button', {
          type: 'button', class: 'danger', testid: `token-revoke-${tok.id}`,
          onclick: () => {
            if (!window.confirm(t('admin.tokens.confirmRevoke', { name: tok.name }))) return;
            state.newToken = null;
            act(tokensStatus, () => api.del(`/api/tokens/${tok.id}`), 'admin.tokens.revoked', { name: tok.name });
          },
        }, t('admin.tokens.revoke')))))));
  }

  function addTokenForm() {
    const name = h('input', { id: 'token-add-name', testid: 'token-add-name', required: true, autocomplete: 'off' });
    const onsubmit = async (e) => {
      e.preventDefault();
      const n = name.value.trim();
      let created = null;
      const ok = await act(tokensStatus, async () => {
        created = await api.post('/api/tokens', { user_id: Number(tokenUser.value), name: n });
        state.newToken = created.token;
      }, 'admin.tokens.created', { name: n });
      if (ok) name.value = '';
    };
    return h('form', { class: 'form-row', testid: 'token-add-form', onsubmit },
      field('token-add-user', t('admin.tokens.user'), tokenUser),
      field('token-add-name', t('admin.tokens.name'), name),
      h('button', { type: 'submit', class: 'primary', testid: 'token-add-submit' }, t('admin.tokens.add')));
  }

  function newTokenNotice(token) {
    return h('div', { class: 'notice' },
      h('p', {}, t('admin.tokens.showOnce')),
      h('code', { class: 'token', testid: 'token-value' }, token),
      h('button', { type: 'button', class: 'small', onclick: () => { state.newToken = null; draw(); } }, t('common.close')));
  }

  // ---- layout ---------------------------------------------------------

  const root = page('admin.title',
    h('section', { class: 'card' },
      h('h2', {}, t('admin.users.title')),
      addUserForm(), usersStatus.el, usersBox),
    h('section', { class: 'card' },
      h('h2', {}, t('admin.cameras.title')),
      addCameraForm(), camerasStatus.el, camerasBox),
    h('section', { class: 'card' },
      h('h2', {}, t('admin.tokens.title')),
      addTokenForm(), tokensStatus.el, newTokenBox, tokensBox),
    nodesSection());

  fill(usersBox, h('p', { class: 'muted' }, t('common.loading')));
  reload().catch((err) => usersStatus.error(err));
  return root;
}
