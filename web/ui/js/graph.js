// The graph of a range query: SVG lines or stacked areas, time and value
// axes, a legend that isolates series, and a tooltip for the nearest point.
import {h, s, clear, parts, settings, fmtTime, fmtSI, seriesNode, seriesString, colorOf} from './lib.js';

const HEIGHT = 300;
const M = {top: 10, right: 16, bottom: 34};
const MAX_SERIES = 1000;

// niceTicks covers [lo, hi] with about n ticks at 1, 2 or 5 × 10^k.
function niceTicks(lo, hi, n = 6) {
  if (!isFinite(lo) || !isFinite(hi)) { lo = 0; hi = 1; }
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad; hi += pad;
  }
  const raw = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map(f => f * mag).find(st => raw <= st) || 10 * mag;
  const a = Math.floor(lo / step) * step;
  const b = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let v = a; v <= b + step / 2; v += step) ticks.push(Math.abs(v) < step / 1e6 ? 0 : v);
  return {lo: a, hi: b, step, ticks};
}

const SEC = 1000, MIN = 60 * SEC, HOUR = 60 * MIN, DAY = 24 * HOUR;
const timeSteps = [SEC, 2 * SEC, 5 * SEC, 10 * SEC, 15 * SEC, 30 * SEC, MIN, 2 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN,
  HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 90 * DAY, 365 * DAY];

const pad2 = n => String(n).padStart(2, '0');
const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

// timeTicks places ticks at round times of the displayed zone; each tick
// has a label and, where the day changes, the date under it.
export function timeTicks(start, end, width) {
  const want = Math.max(2, Math.floor(width / 105));
  const step = timeSteps.find(st => (end - start) / st <= want) || timeSteps[timeSteps.length - 1];
  const offset = settings.utc ? 0 : -new Date(start).getTimezoneOffset() * MIN;
  let t = Math.ceil((start + offset) / step) * step - offset;
  const ticks = [];
  let lastDay = null;
  for (; t <= end; t += step) {
    const p = parts(t);
    const day = `${p.Y}-${p.M}-${p.D}`;
    let label;
    if (step < MIN) label = `${pad2(p.h)}:${pad2(p.m)}:${pad2(p.s)}`;
    else if (step < DAY) label = `${pad2(p.h)}:${pad2(p.m)}`;
    else label = `${months[p.M - 1]} ${p.D}`;
    const date = step < DAY && day !== lastDay ? `${months[p.M - 1]} ${p.D}` : '';
    ticks.push({t, label, date});
    lastDay = day;
  }
  return ticks;
}

// points turns one series of a range result into [ms, value] pairs;
// native histograms are drawn by their count.
function points(series) {
  if (series.values) return series.values.map(([t, v]) => [t * 1000, Number(v)]);
  if (series.histograms) return series.histograms.map(([t, hv]) => [t * 1000, Number(hv.count)]);
  return [];
}

// Graph draws a matrix result into el. opts: start, end, step (ms),
// stacked, hidden (a Set of series strings the legend turned off, kept by
// the caller across redraws).
export class Graph {
  constructor(el, result, opts) {
    this.el = el;
    this.opts = opts;
    this.hidden = opts.hidden || new Set();
    this.series = result.slice(0, MAX_SERIES).map((r, i) => {
      const pts = points(r);
      const key = seriesString(r.metric);
      return {metric: r.metric, key, color: colorOf(i), pts, histogram: !r.values && !!r.histograms};
    });
    this.truncated = result.length > MAX_SERIES;
    this.highlight = null;
    this.draw();
  }

  visible() {
    return this.series.filter(sr => !this.hidden.has(sr.key));
  }

  draw() {
    const el = clear(this.el);
    const {start, end, step, stacked} = this.opts;
    const width = Math.max(360, el.clientWidth || el.parentElement.clientWidth || 900);
    const n = Math.floor((end - start) / step) + 1;
    const idx = t => Math.round((t - start) / step);
    const vis = this.visible();

    // Values per step index, and stacked bands.
    for (const sr of this.series) {
      sr.at = new Map();
      for (const [t, v] of sr.pts) sr.at.set(idx(t), v);
    }
    let lo = Infinity, hi = -Infinity;
    if (stacked) {
      const base = new Float64Array(n);
      for (const sr of vis) {
        sr.lower = new Map();
        sr.upper = new Map();
        for (const [k, v] of sr.at) {
          if (!isFinite(v) || k < 0 || k >= n) continue;
          sr.lower.set(k, base[k]);
          sr.upper.set(k, base[k] + v);
          base[k] += v;
          lo = Math.min(lo, base[k], sr.lower.get(k));
          hi = Math.max(hi, base[k], sr.lower.get(k));
        }
      }
      lo = Math.min(lo, 0);
    } else {
      for (const sr of vis) for (const [, v] of sr.pts) if (isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
    if (lo === Infinity) { lo = 0; hi = 1; }
    const yt = niceTicks(lo, hi, 6);
    const labels = yt.ticks.map(fmtSI);
    const left = Math.max(44, 12 + 6.6 * Math.max(...labels.map(l => l.length)));
    const pw = width - left - M.right;
    const ph = HEIGHT - M.top - M.bottom;
    const x = t => left + ((t - start) / (end - start || 1)) * pw;
    const y = v => M.top + ph - ((v - yt.lo) / (yt.hi - yt.lo)) * ph;
    this.geo = {x, y, left, pw, ph, idx, n, width};

    const svg = s('svg', {width, height: HEIGHT, class: 'plot', role: 'img', 'aria-label': 'graph'});
    const grid = s('g', {class: 'grid'});
    const axis = s('g', {class: 'axis'});
    yt.ticks.forEach((v, i) => {
      const yy = Math.round(y(v)) + 0.5;
      grid.append(s('line', {x1: left, x2: left + pw, y1: yy, y2: yy}));
      axis.append(s('text', {x: left - 6, y: yy + 3.5, 'text-anchor': 'end', class: 'ytick'}, labels[i]));
    });
    for (const tk of timeTicks(start, end, pw)) {
      const xx = Math.round(x(tk.t)) + 0.5;
      grid.append(s('line', {x1: xx, x2: xx, y1: M.top, y2: M.top + ph}));
      axis.append(s('text', {x: xx, y: M.top + ph + 14, 'text-anchor': 'middle', class: 'xtick'}, tk.label));
      if (tk.date) axis.append(s('text', {x: xx, y: M.top + ph + 27, 'text-anchor': 'middle', class: 'xdate'}, tk.date));
    }
    svg.append(grid, s('rect', {class: 'frame', x: left + 0.5, y: M.top + 0.5, width: pw, height: ph}), axis);

    const clip = 'clip' + Math.random().toString(36).slice(2);
    svg.append(s('defs', null, s('clipPath', {id: clip}, s('rect', {x: left, y: M.top - 2, width: pw, height: ph + 4}))));
    const body = s('g', {'clip-path': `url(#${clip})`});
    this.paths = new Map();
    for (const sr of vis) {
      const g = s('g', {class: 'sr'});
      if (stacked) {
        for (const seg of segments(sr.upper, n)) {
          const top = seg.map(k => `${x(start + k * step).toFixed(1)},${y(sr.upper.get(k)).toFixed(1)}`);
          const bottom = seg.slice().reverse().map(k => `${x(start + k * step).toFixed(1)},${y(sr.lower.get(k)).toFixed(1)}`);
          g.append(s('path', {class: 'area', fill: sr.color, d: 'M' + top.join('L') + 'L' + bottom.join('L') + 'Z'}));
          g.append(linePath(top, sr.color));
        }
      } else {
        const finite = new Map([...sr.at].filter(([, v]) => isFinite(v)));
        for (const seg of segments(finite, n)) {
          g.append(linePath(seg.map(k => `${x(start + k * step).toFixed(1)},${y(finite.get(k)).toFixed(1)}`), sr.color));
        }
      }
      this.paths.set(sr.key, g);
      body.append(g);
    }
    svg.append(body);
    this.cross = s('line', {class: 'cross hidden', y1: M.top, y2: M.top + ph});
    this.dot = s('circle', {r: 4, class: 'hidden', stroke: '#fff', 'stroke-width': 1.5});
    svg.append(this.cross, this.dot);
    this.tooltip = h('div', {class: 'tooltip hidden'});
    const wrap = h('div', {class: 'graph'}, svg, this.tooltip);
    svg.addEventListener('mousemove', e => this.hover(e, svg));
    svg.addEventListener('mouseleave', () => this.unhover());
    el.append(wrap);
    if (this.truncated) el.append(h('div', {class: 'legend-hint'}, `Only the first ${MAX_SERIES} series are drawn.`));
    const hist = this.series.filter(sr => sr.histogram).length;
    if (hist) el.append(h('div', {class: 'legend-hint'}, `${hist} native histogram series drawn as their observation count; histogram_quantile() or histogram_avg() graph them better.`));
    el.append(this.legend());
    this.applyHighlight();
  }

  legend() {
    const box = h('div', {class: 'legend'});
    for (const sr of this.series) {
      const item = h('div', {class: 'li' + (this.hidden.has(sr.key) ? ' off' : ''), title: 'Click to show only this series, Ctrl/⌘-click to toggle it', dataset: {key: sr.key}},
        h('span', {class: 'swatch', style: {background: sr.color}}), seriesNode(sr.metric));
      item.addEventListener('click', e => this.toggle(sr, e.ctrlKey || e.metaKey));
      item.addEventListener('mouseenter', () => { this.highlight = sr.key; this.applyHighlight(); });
      item.addEventListener('mouseleave', () => { this.highlight = null; this.applyHighlight(); });
      box.append(item);
    }
    if (this.series.length > 1) {
      return h('div', null, box, h('div', {class: 'legend-hint'}, 'Click a series to isolate it (again to show all); Ctrl/⌘-click to toggle one.'));
    }
    return box;
  }

  toggle(sr, additive) {
    if (additive) {
      if (this.hidden.has(sr.key)) this.hidden.delete(sr.key); else this.hidden.add(sr.key);
    } else {
      const onlyThis = this.series.every(o => (o === sr) !== this.hidden.has(o.key));
      this.hidden.clear();
      if (!onlyThis) for (const o of this.series) if (o !== sr) this.hidden.add(o.key);
    }
    this.draw();
  }

  applyHighlight() {
    for (const [key, g] of this.paths) g.classList.toggle('dim', this.highlight !== null && key !== this.highlight);
  }

  // hover finds the visible point nearest the pointer: the nearest step,
  // then the series whose value there is nearest vertically.
  hover(e, svg) {
    const {x, y, idx, n, left, pw} = this.geo;
    const {start, step, stacked} = this.opts;
    const r = svg.getBoundingClientRect();
    const mx = e.clientX - r.left, my = e.clientY - r.top;
    if (mx < left || mx > left + pw) { this.unhover(); return; }
    const t = start + ((mx - left) / pw) * (this.opts.end - start);
    const k0 = Math.min(n - 1, Math.max(0, idx(t)));
    let best = null;
    // Look outwards from the nearest step so a pointer over a gap still
    // finds the closest drawn point.
    for (let d = 0; d < n && !best; d++) {
      for (const k of d === 0 ? [k0] : [k0 - d, k0 + d]) {
        if (k < 0 || k >= n) continue;
        for (const sr of this.visible()) {
          const v = sr.at.get(k);
          if (v === undefined || !isFinite(v)) continue;
          const py = y(stacked ? sr.upper.get(k) : v);
          const dist = Math.abs(py - my);
          if (!best || dist < best.dist) best = {sr, k, v, py, dist};
        }
      }
      if (d > 0 && Math.abs(x(start + d * step) - x(start)) > 40) break;
    }
    if (!best) { this.unhover(); return; }
    const px = x(start + best.k * step);
    this.cross.setAttribute('x1', px); this.cross.setAttribute('x2', px);
    this.cross.classList.remove('hidden');
    this.dot.setAttribute('cx', px); this.dot.setAttribute('cy', best.py); this.dot.setAttribute('fill', best.sr.color);
    this.dot.classList.remove('hidden');
    const tt = clear(this.tooltip);
    tt.append(
      h('div', {class: 'tt-time'}, fmtTime(start + best.k * step, true)),
      h('div', {style: {display: 'flex', alignItems: 'center'}}, h('span', {class: 'swatch', style: {background: best.sr.color}}),
        h('span', {class: 'tt-val'}, String(best.v)), best.sr.histogram ? h('span', {class: 'faint'}, '\u00a0(count)') : null),
      seriesNode(best.sr.metric));
    tt.classList.remove('hidden');
    const tw = tt.offsetWidth, th = tt.offsetHeight;
    let tx = px + 14;
    if (tx + tw > this.geo.width) tx = px - tw - 14;
    tt.style.left = Math.max(0, tx) + 'px';
    tt.style.top = Math.max(0, Math.min(HEIGHT - th, best.py - th / 2)) + 'px';
    if (this.highlight !== best.sr.key) { this.highlight = best.sr.key; this.applyHighlight(); }
  }

  unhover() {
    this.cross.classList.add('hidden');
    this.dot.classList.add('hidden');
    this.tooltip.classList.add('hidden');
    if (this.highlight !== null) { this.highlight = null; this.applyHighlight(); }
  }
}

// segments splits the step indexes that have a value into runs without
// gaps: a missing step ends a line, so gaps are drawn as gaps.
function segments(at, n) {
  const ks = [...at.keys()].filter(k => k >= 0 && k < n).sort((a, b) => a - b);
  const out = [];
  let cur = [];
  for (const k of ks) {
    if (cur.length && k !== cur[cur.length - 1] + 1) { out.push(cur); cur = []; }
    cur.push(k);
  }
  if (cur.length) out.push(cur);
  return out;
}

function linePath(pts, color) {
  if (pts.length === 1) {
    const [cx, cy] = pts[0].split(',');
    return s('circle', {cx, cy, r: 2, fill: color});
  }
  return s('path', {class: 'line', stroke: color, d: 'M' + pts.join('L')});
}
