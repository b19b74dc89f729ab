// Translations: one JSON catalogue per language in /i18n/<lang>.json,
// all with the same keys.  Vietnamese is the default.

export const LANGS = ['vi', 'en'];
const STORAGE_KEY = 'xaso.lang';

let current = 'vi';
let catalogue = {};

function storedLang() {
  try {
    const l = localStorage.getItem(STORAGE_KEY);
    return LANGS.includes(l) ? l : 'vi';
  } catch {
    return 'vi';
  }
}

async function load(lang) {
  const res = await fetch(`/i18n/${lang}.json`);
  if (!res.ok) throw new Error(`cannot load /i18n/${lang}.json: ${res.status}`);
  catalogue = await res.json();
  current = lang;
  document.documentElement.lang = lang;
  document.title = t('app.title');
}

export async function initI18n() {
  await load(storedLang());
}

export function lang() {
  return current;
}

/** The language the switch button offers. */
export function otherLang() {
  return current === 'vi' ? 'en' : 'vi';
}

export async function setLang(lang) {
  if (!LANGS.includes(lang)) return;
  await load(lang);
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // private mode: the choice just won't persist
  }
}

/** Translate `key`, replacing `{name}` placeholders from `params`. */
export function t(key, params = {}) {
  const text = Object.hasOwn(catalogue, key) ? catalogue[key] : key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/** Whether the catalogue has `key` (for optional labels such as audit actions). */
export function has(key) {
  return Object.hasOwn(catalogue, key);
}

/** Format an RFC 3339 timestamp in the user's local time zone. */
export function formatTime(rfc3339) {
  if (!rfc3339) return '';
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339;
  return d.toLocaleString(current === 'vi' ? 'vi-VN' : 'en-GB', {
    year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}
