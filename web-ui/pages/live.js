import { h } from '../dom.js';
import { t } from '../i18n.js';
import { page, cameraList } from '../components.js';

export function render() {
  return page('live.title',
    h('p', { class: 'note', testid: 'live-note' }, t('live.note')),
    cameraList());
}
