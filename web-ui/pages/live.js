import { h } from '../dom.js';
import { t } from '../i18n.js';
import { page, cameraList } from '../components.js';

/** The cameras the user may watch, with their recording status (refreshed every 5 s). */
export function render() {
  return page('live.title',
    h('p', { class: 'note', testid: 'live-note' }, t('live.note')),
    cameraList({ withStatus: true }));
}
