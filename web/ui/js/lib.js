// Shared helpers of the Atoll UI: DOM building, API calls, formatting.

export const cfg = JSON.parse(document.body.dataset.config || '{}');

// h builds an element: h('div', {class: 'x', onclick: f}, child, [children], 'text').
export function h(tag, attrs, ...children) {
  const svg = tag.startsWith('svg:');
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4)) : document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'value' && !svg) el.value = v;
      else if (k === 'checked' && !svg) el.checked = !!v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export const s = (tag, attrs, ...children) => h('svg:' + tag, attrs, ...children);

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export class APIError extends Error {
  constructor(message, type, status) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

// api calls an endpoint of this process and unwraps Prometheus's envelope:
// it resolves to {data, warnings, infos} or throws an APIError.
export async function api(path, params, opts = {}) {
  const headers = {Accept: 'application/json'};
  if (opts.tenant) headers['X-Scope-OrgID'] = opts.tenant;
  let url = path;
  const init = {headers, signal: opts.signal, cache: 'no-store'};
  const body = params ? toSearch(params) : null;
  if (opts.post) {
    init.method = 'POST';
    init.body = body;
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
  } else if (body && body.toString()) {
    url += (url.includes('?') ? '&' : '?') + body.toString();
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new APIError('cannot reach Atoll: ' + e.message, 'network', 0);
  }
  const text = await resp.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new APIError(`${resp.status} ${resp.statusText}: ${text.trim().slice(0, 300) || 'empty answer'}`, 'bad_response', resp.status);
  }
  if (!resp.ok || json.status === 'error') {
    throw new APIError(json.error || `${resp.status} ${resp.statusText}`, json.errorType || 'error', resp.status);
  }
  // Endpoints outside the Prometheus envelope (the ring's JSON) come back as they are.
  if (json.status !== 'success') return {data: json, warnings: [], infos: []};
  return {data: json.data, warnings: json.warnings || [], infos: json.infos || []};
}

function toSearch(params) {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === '') continue;
    if (Array.isArray(v)) v.forEach(x => sp.append(k, x));
    else sp.append(k, v);
  }
  return sp;
}

// Settings kept in the browser.
const store = window.localStorage;
export const settings = {
  get utc() { return store.getItem('atoll.utc') === '1'; },
  set utc(v) { store.setItem('atoll.utc', v ? '1' : '0'); },
};

const pad = (n, w = 2) => String(n).padStart(w, '0');

// parts splits a time in ms into calendar fields, in UTC or local time.
export function parts(ms, utc = settings.utc) {
  const d = new Date(ms);
  return utc
    ? {Y: d.getUTCFullYear(), M: d.getUTCMonth() + 1, D: d.getUTCDate(), h: d.getUTCHours(), m: d.getUTCMinutes(), s: d.getUTCSeconds(), ms: d.getUTCMilliseconds()}
    : {Y: d.getFullYear(), M: d.getMonth() + 1, D: d.getDate(), h: d.getHours(), m: d.getMinutes(), s: d.getSeconds(), ms: d.getMilliseconds()};
}

// fmtTime formats a time in ms as 2026-12-07 21:04:05 (with milliseconds
// when there are any and withMs is set).
export function fmtTime(ms, withMs = false) {
  if (ms === null || ms === undefined || !isFinite(ms)) return '–';
  const p = parts(ms);
  let out = `${p.Y}-${pad(p.M)}-${pad(p.D)} ${pad(p.h)}:${pad(p.m)}:${pad(p.s)}`;
  if (withMs && p.ms) out += '.' + pad(p.ms, 3);
  return out;
}

// fmtRange writes a time range, leaving out the second date when it is
// the first one.
export function fmtRange(from, to) {
  const a = fmtTime(from), b = fmtTime(to);
  return `${a} → ${a.slice(0, 10) === b.slice(0, 10) ? b.slice(11) : b}`;
}

export const tzName = () => (settings.utc ? 'UTC' : 'local time');

// parseTime reads "2026-12-07 21:04:05" (or a prefix of it) in the chosen
// zone; it returns ms or NaN.
export function parseTime(str) {
  const m = /^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2})(?::(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,3}))?)?)?)?\s*(Z|UTC)?\s*$/i.exec(str);
  if (!m) return NaN;
  const f = m.slice(1, 8).map(x => (x === undefined ? 0 : +x));
  if (settings.utc || m[8]) return Date.UTC(f[0], f[1] - 1, f[2], f[3], f[4], f[5], f[6]);
  return new Date(f[0], f[1] - 1, f[2], f[3], f[4], f[5], f[6]).getTime();
}

const units = [['y', 365 * 86400], ['w', 7 * 86400], ['d', 86400], ['h', 3600], ['m', 60], ['s', 1], ['ms', 0.001]];

// parseDuration reads a Prometheus duration (1h30m, 90s, 2d) or a number of
// seconds; it returns seconds or NaN.
export function parseDuration(str) {
  str = String(str).trim();
  if (/^\d+(\.\d+)?$/.test(str)) return +str;
  const re = /(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)/g;
  let total = 0, pos = 0, m;
  while ((m = re.exec(str)) !== null) {
    if (m.index !== pos) return NaN;
    total += +m[1] * units.find(u => u[0] === m[2])[1];
    pos = re.lastIndex;
  }
  return pos === str.length && pos > 0 ? total : NaN;
}

// fmtDuration writes seconds as a Prometheus duration: 1h30m, 15s, 250ms.
export function fmtDuration(sec) {
  if (!isFinite(sec)) return '–';
  if (sec === 0) return '0s';
  let out = '';
  let rest = Math.round(sec * 1000) / 1000;
  for (const [u, n] of units) {
    if (u === 'ms') {
      const ms = Math.round(rest * 1000);
      if (ms) out += ms + 'ms';
      break;
    }
    const q = Math.floor(rest / n + 1e-9);
    if (q > 0) {
      out += q + u;
      rest = Math.round((rest - q * n) * 1000) / 1000;
    }
  }
  return out || '0s';
}

// fmtAgo writes how long ago a time was, coarsely: 3s ago, 5m ago.
export function fmtAgo(ms, now = Date.now()) {
  if (!ms || !isFinite(ms)) return 'never';
  const sec = Math.max(0, (now - ms) / 1000);
  if (sec < 1) return 'just now';
  if (sec < 90) return Math.round(sec) + 's ago';
  if (sec < 5400) return Math.round(sec / 60) + 'm ago';
  if (sec < 129600) return Math.round(sec / 3600) + 'h ago';
  return Math.round(sec / 86400) + 'd ago';
}

// fmtSpan writes a span in seconds with the two largest units: 2h 15m.
export function fmtSpan(sec) {
  if (!isFinite(sec)) return '–';
  if (sec < 1) return Math.round(sec * 1000) + 'ms';
  const out = [];
  let rest = Math.round(sec);
  for (const [u, n] of units.slice(0, 6)) {
    const q = Math.floor(rest / n);
    if (q > 0) { out.push(q + u); rest -= q * n; }
    if (out.length === 2) break;
  }
  return out.join(' ') || '0s';
}

const nf = new Intl.NumberFormat('en-US');
export const fmtInt = n => (n === null || n === undefined || !isFinite(n) ? '–' : nf.format(Math.round(n)));

// fmtSI writes a number with an SI prefix and 3 significant digits.
export function fmtSI(v) {
  if (v === null || v === undefined) return '–';
  if (!isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a === 0) return '0';
  const prefixes = [[1e15, 'P'], [1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
  for (const [n, p] of prefixes) if (a >= n) return trimNum(v / n) + p;
  if (a >= 1) return trimNum(v);
  const small = [[1e-3, 'm'], [1e-6, 'µ'], [1e-9, 'n']];
  for (const [n, p] of small) if (a >= n) return trimNum(v / n) + p;
  return v.toExponential(2);
}

function trimNum(v) {
  const a = Math.abs(v);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : 2;
  return String(+v.toFixed(digits));
}

export function fmtBytes(b) {
  if (b === null || b === undefined || !isFinite(b)) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (Math.abs(b) >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return (i === 0 ? b : b.toFixed(b >= 100 ? 0 : b >= 10 ? 1 : 2)) + ' ' + u[i];
}

// fmtValue writes a sample value as the API sent it, numbers grouped for
// reading.
export function fmtValue(str) {
  const v = Number(str);
  if (!isFinite(v)) return str;
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return nf.format(v);
  return String(v);
}

// Series labels.
export function seriesString(metric) {
  const name = metric.__name__ || '';
  const ls = Object.keys(metric).filter(k => k !== '__name__').sort()
    .map(k => `${k}=${JSON.stringify(metric[k])}`);
  if (!ls.length) return name || '{}';
  return `${name}{${ls.join(', ')}}`;
}

// seriesNode draws a series' labels, coloured like the editor.
export function seriesNode(metric, extraClass) {
  const name = metric.__name__ || '';
  const keys = Object.keys(metric).filter(k => k !== '__name__').sort();
  const parts = [];
  if (name) parts.push(h('span', {class: 'n'}, name));
  if (keys.length || !name) {
    parts.push(h('span', {class: 'p'}, '{'));
    keys.forEach((k, i) => {
      if (i) parts.push(h('span', {class: 'p'}, ', '));
      parts.push(h('span', {class: 'ln'}, k), h('span', {class: 'p'}, '='), h('span', {class: 'lv'}, JSON.stringify(metric[k])));
    });
    parts.push(h('span', {class: 'p'}, '}'));
  }
  return h('span', {class: 'series' + (extraClass ? ' ' + extraClass : '')}, parts);
}

export function labelChips(ls) {
  const keys = Object.keys(ls || {}).sort();
  if (!keys.length) return h('span', {class: 'faint'}, 'none');
  return keys.map(k => h('span', {class: 'chip'}, h('b', null, k), '=', h('i', null, ls[k])));
}

export function alertBox(kind, ...children) {
  return h('div', {class: 'alert ' + kind, role: kind === 'err' ? 'alert' : 'status'}, ...children);
}

export function statCard(value, label, title) {
  return h('div', {class: 'stat', title}, h('div', {class: 'v'}, value), h('div', {class: 'k'}, label));
}

export function usageBar(used, limit) {
  if (!limit) return null;
  const f = Math.min(1, used / limit);
  return h('div', {class: 'bar' + (f >= 1 ? ' full' : f >= 0.8 ? ' hot' : ''), title: `${(100 * used / limit).toFixed(1)}% of the limit`},
    h('span', {style: {width: (100 * f).toFixed(1) + '%'}}));
}

// poll calls f now and every ms while the page is visible; the returned
// function stops it.
export function poll(f, ms) {
  let timer = null, stopped = false;
  const run = async () => {
    if (stopped) return;
    if (document.visibilityState === 'visible') {
      try { await f(); } catch (e) { console.warn(e); }
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return () => { stopped = true; clearTimeout(timer); };
}

// Series colours: distinct on both colour schemes, in an order where
// neighbours differ.
export const palette = [
  '#1f77b4', '#e8710a', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf',
  '#bcbd22', '#3b5bdb', '#f59f00', '#0ca678', '#c2255c', '#7048e8', '#5c940d', '#1098ad',
];
export const colorOf = i => palette[i % palette.length];

export function pageHead(title, ...rest) {
  return h('div', {class: 'page-head'}, h('h1', null, title), ...rest);
}
