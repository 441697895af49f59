// The whiteboard: a shared canvas the meeting orders. Shapes are drawn locally while the
// pointer moves and sent when it lifts; what everyone sees is what the meeting sends back, in
// its order. Opened late, the board asks for the shapes as of an event and applies the events
// after it. Exports as PNG (the canvas) and SVG (the shapes).

import { h, closer } from './dom.js';

const SIZE = 10000; // board units on both axes (myriad-proto's BOARD_SIZE)
const MAX_POINTS = 2000; // points in one shape; a longer stroke is sent in pieces
const TOOLS = [['pen', 'Pen'], ['line', 'Line'], ['rect', 'Box'], ['ellipse', 'Ellipse'], ['text', 'Text'], ['eraser', 'Eraser']];

export class Whiteboard {
  // `mayDraw()` and `moderator()` say what this client may do; `tell(text)` shows a notice.
  constructor({ signal, mayDraw, moderator, onClose }) {
    this.signal = signal;
    this.mayDraw = mayDraw;
    this.moderator = moderator;
    this.shapes = new Map(); // id -> { id, by, shape }
    this.loaded = false;
    this.asked = false; // the board was asked for
    this.early = []; // events that came before the board did
    this.tool = 'pen';
    this.drawing = null; // the shape under the pointer
    this.canvas = h('canvas', { id: 'board-canvas', width: 1280, height: 720 });
    this.color = h('input', { id: 'board-color', type: 'color', value: '#4c8dff', 'aria-label': 'Colour' });
    this.width = h('input', { id: 'board-width', type: 'range', min: 1, max: 24, value: 4, 'aria-label': 'Width' });
    this.text = h('input', { id: 'board-text', placeholder: 'Text to place', maxlength: 500 });
    this.toolBtns = Object.fromEntries(TOOLS.map(([t, label]) => [t,
      h('button', { class: 'tool', 'data-tool': t, onclick: () => this.pick(t) }, label)]));
    const op = (o) => signal.send({ type: 'board', op: o });
    this.undoBtn = h('button', { id: 'board-undo', onclick: () => op({ action: 'undo' }) }, 'Undo');
    this.clearBtn = h('button', { id: 'board-clear', class: 'danger', onclick: () => op({ action: 'clear' }) }, 'Clear');
    this.tools = h('div', { class: 'board-tools row wrap' }, ...Object.values(this.toolBtns), this.color, this.width, this.text, this.undoBtn, this.clearBtn);
    this.el = h('section', { id: 'whiteboard', class: 'board', hidden: true },
      h('div', { class: 'board-head row wrap' }, h('h2', {}, 'Whiteboard'), this.tools,
        h('button', { id: 'board-png', onclick: () => this.download('png') }, 'PNG'),
        h('button', { id: 'board-svg', onclick: () => this.download('svg') }, 'SVG'),
        closer(onClose)),
      this.canvas);
    this.op = op;
    this.canvas.addEventListener('pointerdown', (e) => this.down(e));
    this.canvas.addEventListener('pointermove', (e) => this.move(e));
    this.canvas.addEventListener('pointerup', (e) => this.up(e));
    this.pick('pen');
  }

  open() {
    this.el.hidden = false;
    if (!this.loaded && !this.asked) {
      this.asked = true;
      this.signal.send({ type: 'board_state' });
    }
    this.paint();
  }

  // The board as of event `seq`, then the events after it that came meanwhile.
  onBoard(msg) {
    this.shapes = new Map(msg.shapes.map((s) => [s.id, s]));
    this.loaded = true;
    for (const ev of this.early) if (ev.seq > msg.seq) this.apply(ev);
    this.early = [];
    this.paint();
  }

  // A board event (drawn, erased, board_cleared) in the meeting's order.
  apply(ev) {
    if (!this.loaded) {
      if (this.asked) this.early.push(ev);
      return;
    }
    if (ev.kind === 'drawn') this.shapes.set(ev.shape.id, ev.shape);
    if (ev.kind === 'erased') for (const id of ev.ids) this.shapes.delete(id);
    if (ev.kind === 'board_cleared') this.shapes.clear();
    if (!this.el.hidden) this.paint();
  }

  pick(tool) {
    this.tool = tool;
    for (const [t, b] of Object.entries(this.toolBtns)) b.classList.toggle('active', t === tool);
  }

  // Shows what this client may do (called when its role changes).
  render() {
    this.tools.hidden = !this.mayDraw();
    this.clearBtn.hidden = !this.moderator();
  }

  // Pointer position in board units.
  at(e) {
    const r = this.canvas.getBoundingClientRect();
    const clamp = (v) => Math.max(0, Math.min(SIZE, Math.round(v)));
    return [clamp(((e.clientX - r.left) / r.width) * SIZE), clamp(((e.clientY - r.top) / r.height) * SIZE)];
  }

  down(e) {
    if (!this.mayDraw()) return;
    const p = this.at(e);
    if (this.tool === 'eraser') return this.erase(p);
    if (this.tool === 'text') {
      const text = this.text.value.trim();
      if (text) this.send({ kind: 'text', points: [p], text });
      return;
    }
    // The stroke goes on outside the canvas (a pointer the page did not see down has none).
    try { this.canvas.setPointerCapture(e.pointerId); } catch { /* no capture */ }
    this.drawing = { kind: this.tool, color: this.color.value, width: Number(this.width.value), points: [p, p] };
    if (this.tool === 'pen') this.drawing.points = [p];
  }

  move(e) {
    const d = this.drawing;
    if (!d) return;
    const p = this.at(e);
    if (d.kind === 'pen') {
      const last = d.points[d.points.length - 1];
      if (Math.abs(last[0] - p[0]) + Math.abs(last[1] - p[1]) < 15) return;
      d.points.push(p);
      if (d.points.length >= MAX_POINTS) {
        // A long stroke goes in pieces, each starting where the last ended.
        this.send(d);
        this.drawing = { ...d, points: [p] };
      }
    } else {
      d.points[1] = p;
    }
    this.paint();
  }

  up() {
    const d = this.drawing;
    this.drawing = null;
    if (d) this.send(d);
  }

  send(d) {
    const shape = { kind: d.kind, color: d.color || this.color.value, width: d.width || Number(this.width.value), points: d.points };
    if (d.text) shape.text = d.text;
    this.op({ action: 'draw', shape });
  }

  // Erases the topmost shape near `p` (one's own; moderators anyone's: the server decides).
  erase(p) {
    const near = [...this.shapes.values()].reverse().find((s) => hits(s.shape, p));
    if (near) this.op({ action: 'erase', ids: [near.id] });
  }

  paint() {
    const c = this.canvas;
    const g = c.getContext('2d');
    g.fillStyle = '#ffffff';
    g.fillRect(0, 0, c.width, c.height);
    const sx = c.width / SIZE;
    const sy = c.height / SIZE;
    for (const s of [...this.shapes.values(), ...(this.drawing ? [{ shape: this.drawing }] : [])]) {
      const { kind, color, width, points, text } = s.shape;
      const pts = points.map(([x, y]) => [x * sx, y * sy]);
      g.strokeStyle = g.fillStyle = color;
      g.lineWidth = width;
      g.lineCap = g.lineJoin = 'round';
      g.beginPath();
      if (kind === 'pen' || kind === 'line') {
        g.moveTo(...pts[0]);
        for (const p of pts.slice(1)) g.lineTo(...p);
        if (pts.length === 1) g.lineTo(pts[0][0] + 0.1, pts[0][1]);
        g.stroke();
      } else if (kind === 'rect') {
        g.strokeRect(pts[0][0], pts[0][1], pts[1][0] - pts[0][0], pts[1][1] - pts[0][1]);
      } else if (kind === 'ellipse') {
        const [cx, cy, rx, ry] = ellipse(pts);
        g.ellipse(cx, cy, rx, ry, 0, 0, Math.PI * 2);
        g.stroke();
      } else if (kind === 'text') {
        g.font = `${width * 6}px system-ui, sans-serif`;
        g.fillText(text, pts[0][0], pts[0][1]);
      }
    }
  }

  // The board as SVG, drawn as on the canvas (its size, its pixels).
  svg() {
    const { width: cw, height: ch } = this.canvas;
    const [sx, sy] = [cw / SIZE, ch / SIZE];
    const r = (v) => Math.round(v * 10) / 10;
    const esc = (t) => t.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));
    const body = [...this.shapes.values()].map(({ shape: s }) => {
      const p = s.points.map(([x, y]) => [r(x * sx), r(y * sy)]);
      const stroke = `stroke="${s.color}" stroke-width="${s.width}" fill="none" stroke-linecap="round" stroke-linejoin="round"`;
      if (s.kind === 'pen' || s.kind === 'line') return `<path d="M${p.map(([x, y]) => `${x} ${y}`).join(' L')}" ${stroke}/>`;
      if (s.kind === 'rect') {
        return `<rect x="${Math.min(p[0][0], p[1][0])}" y="${Math.min(p[0][1], p[1][1])}" width="${r(Math.abs(p[1][0] - p[0][0]))}" height="${r(Math.abs(p[1][1] - p[0][1]))}" ${stroke}/>`;
      }
      if (s.kind === 'ellipse') {
        const [cx, cy, rx, ry] = ellipse(p).map(r);
        return `<ellipse cx="${cx}" cy="${cy}" rx="${rx}" ry="${ry}" ${stroke}/>`;
      }
      return `<text x="${p[0][0]}" y="${p[0][1]}" fill="${s.color}" font-size="${s.width * 6}" font-family="system-ui, sans-serif">${esc(s.text)}</text>`;
    });
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${cw}" height="${ch}" viewBox="0 0 ${cw} ${ch}">`
      + `<rect width="${cw}" height="${ch}" fill="#ffffff"/>${body.join('')}</svg>`;
  }

  download(kind) {
    this.paint();
    const url = kind === 'png'
      ? this.canvas.toDataURL('image/png')
      : URL.createObjectURL(new Blob([this.svg()], { type: 'image/svg+xml' }));
    const a = h('a', { href: url, download: `whiteboard.${kind}` });
    document.body.append(a);
    a.click();
    a.remove();
    this.exported = { kind, url };
  }
}

// Centre and radii of the ellipse in the box of two points.
function ellipse([[x0, y0], [x1, y1]]) {
  return [(x0 + x1) / 2, (y0 + y1) / 2, Math.abs(x1 - x0) / 2, Math.abs(y1 - y0) / 2];
}

// Whether board point `p` is on (or, for boxes, in) shape `s`.
function hits(s, [x, y]) {
  const reach = 150 + s.width * 10;
  const xs = s.points.map((q) => q[0]);
  const ys = s.points.map((q) => q[1]);
  if (s.kind === 'pen') return s.points.some(([px, py]) => Math.abs(px - x) < reach && Math.abs(py - y) < reach);
  if (s.kind === 'text') return Math.abs(xs[0] - x) < reach * 4 && y <= ys[0] + reach && y >= ys[0] - reach * 3;
  return x >= Math.min(...xs) - reach && x <= Math.max(...xs) + reach && y >= Math.min(...ys) - reach && y <= Math.max(...ys) + reach;
}
