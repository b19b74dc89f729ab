// Tiny DOM helpers: no framework, just document.createElement.

/**
 * Create an element.  `props` keys:
 *   class     -> className
 *   testid    -> data-testid
 *   onXxx     -> event listener for "xxx"
 *   value / checked / disabled / selected / hidden -> DOM properties
 *   anything else -> attribute (skipped when null/undefined/false)
 * Children may be nodes, strings, numbers, arrays, or null/false (skipped).
 * Children are appended before properties are set, so a <select>'s value
 * can be given together with its options.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  append(el, children);
  for (const [key, val] of Object.entries(props || {})) {
    if (val === undefined || val === null) continue;
    if (key === 'class') el.className = val;
    else if (key === 'testid') el.dataset.testid = val;
    else if (key.startsWith('on') && typeof val === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), val);
    } else if (['value', 'checked', 'disabled', 'selected', 'hidden'].includes(key)) {
      el[key] = val;
    } else if (val !== false) {
      el.setAttribute(key, val === true ? '' : String(val));
    }
  }
  return el;
}

export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replace all children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}
