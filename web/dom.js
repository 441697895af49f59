// Small DOM helpers shared by the client's views.

// An element with attributes (`on…` are listeners) and children.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v !== false && v !== undefined && v !== null) el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c);
  return el;
}

// A panel's own close button: on a phone panels cover the meeting.
export const closer = (onclick) => h('button', { class: 'panel-close', 'aria-label': 'Close', onclick }, '✕');
