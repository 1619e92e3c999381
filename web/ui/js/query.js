// The query page: panels of PromQL, each with a table and a graph, all
// kept in the URL so a view can be shared.
import {cfg, h, s, clear, api, fmtTime, parseTime, parseDuration, fmtDuration, fmtInt, fmtValue, fmtSI,
  seriesNode, alertBox, tzName} from './lib.js';
import {Editor} from './editor.js';
import {Graph} from './graph.js';

const ranges = [60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800, 1209600, 2419200, 7776000, 31536000];
const MAX_ROWS = 10000;

// defaults of a new panel
const fresh = () => ({expr: '', tab: 'table', range: 3600, end: null, step: null, stacked: false,
  dedup: true, partial: true, res: '', tenant: ''});

// utcString writes a time in ms for the URL: always UTC, so a shared
// link shows the same moment in every zone.
function utcString(ms) {
  const d = new Date(ms);
  const p = n => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
}

function parseUTC(str) {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?/.exec(str || '');
  if (!m) return NaN;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
}

// readPanels reads g0.expr, g0.tab, ... as Prometheus and Thanos write them.
function readPanels(search) {
  const q = new URLSearchParams(search);
  const out = [];
  for (let i = 0; i < 50; i++) {
    const g = k => q.get(`g${i}.${k}`);
    if (g('expr') === null && g('tab') === null) {
      if (i > 0) break;
      continue;
    }
    const st = fresh();
    st.expr = g('expr') || '';
    const tab = g('tab');
    st.tab = tab === '0' || tab === 'graph' ? 'graph' : 'table';
    const r = parseDuration(g('range_input') || '');
    if (isFinite(r) && r > 0) st.range = r;
    const end = parseUTC(g('end_input') || g('moment_input'));
    if (isFinite(end)) st.end = end;
    const step = parseDuration(g('step_input') || '');
    if (isFinite(step) && step > 0) st.step = step;
    st.stacked = g('stacked') === '1' || g('display_mode') === 'stacked';
    st.dedup = g('deduplicate') !== '0';
    st.partial = g('partial_response') !== '0';
    st.res = g('max_source_resolution') || '';
    st.tenant = g('tenant') || '';
    out.push(st);
  }
  return out;
}

function writePanels(states) {
  const q = new URLSearchParams();
  states.forEach((st, i) => {
    const p = `g${i}.`;
    q.set(p + 'expr', st.expr);
    q.set(p + 'tab', st.tab);
    if (st.tab === 'graph') q.set(p + 'range_input', fmtDuration(st.range));
    if (st.end !== null) q.set(p + 'end_input', utcString(st.end));
    if (st.step) q.set(p + 'step_input', String(st.step));
    if (st.stacked) q.set(p + 'stacked', '1');
    if (!st.dedup) q.set(p + 'deduplicate', '0');
    if (!st.partial) q.set(p + 'partial_response', '0');
    if (st.res) q.set(p + 'max_source_resolution', st.res);
    if (st.tenant) q.set(p + 'tenant', st.tenant);
  });
  return q.toString();
}

export async function render(main) {
  const page = new QueryPage(main);
  page.start();
}

class QueryPage {
  constructor(main) {
    this.main = main;
    this.panels = [];
    this.list = h('div');
    this.datalist = h('datalist', {id: 'tenant-list'});
    main.append(this.datalist, this.list,
      h('button', {class: 'add-panel', onclick: () => { const p = this.add(fresh()); p.editor.focus(); this.save(); }}, '+ Add panel'));
  }

  start() {
    const states = readPanels(location.search);
    if (!states.length) states.push(fresh());
    for (const st of states) this.add(st);
    this.panels[0].editor.focus();
    for (const p of this.panels) if (p.st.expr.trim()) p.run();
    this.loadTenants();
    // Graphs fill the panel: draw them again when the width changes.
    let timer, width = this.list.clientWidth;
    new ResizeObserver(() => {
      if (this.list.clientWidth === width) return;
      width = this.list.clientWidth;
      clearTimeout(timer);
      timer = setTimeout(() => this.panels.forEach(p => p.graph?.draw()), 120);
    }).observe(this.list);
  }

  add(st) {
    const p = new Panel(this, st);
    this.panels.push(p);
    this.list.append(p.el);
    return p;
  }

  remove(p) {
    if (this.panels.length === 1) {
      p.reset();
    } else {
      this.panels.splice(this.panels.indexOf(p), 1);
      p.el.remove();
    }
    this.save();
  }

  save() {
    const qs = writePanels(this.panels.map(p => p.st));
    history.replaceState(null, '', location.pathname + '?' + qs);
  }

  // loadTenants offers the tenants receivers know in the tenant fields.
  async loadTenants() {
    if (!cfg.tenantScope) return;
    try {
      const r = await api('/api/v1/tenants');
      const ids = new Set();
      for (const rc of r.data.receivers || []) for (const t of rc.tenants || []) ids.add(t.tenant);
      for (const id of [...ids].sort()) this.datalist.append(h('option', {value: id}));
    } catch (e) {
      // Tenant suggestions are a convenience; the field works without.
    }
  }
}

class Panel {
  constructor(page, st) {
    this.page = page;
    this.st = st;
    this.hidden = new Set();
    this.editor = new Editor({
      value: st.expr,
      tenant: () => this.st.tenant,
      onExecute: () => this.run(),
      onChange: v => { this.st.expr = v; page.save(); },
    });
    this.el = h('section', {class: 'panel'});
    this.build();
  }

  reset() {
    this.st = Object.assign(this.st, fresh());
    this.editor.value = '';
    this.graph = null;
    this.build();
  }

  build() {
    const st = this.st;
    const el = clear(this.el);
    const change = (f, rerun = true) => () => { f(); this.page.save(); if (rerun && this.st.expr.trim()) this.run(); };

    const tenant = h('input', {type: 'text', class: 'tenant', list: 'tenant-list', value: st.tenant, size: 14,
      placeholder: cfg.allTenants ? 'all tenants' : cfg.defaultTenant, title: 'Tenant queried (sent as X-Scope-OrgID)'});
    tenant.addEventListener('change', change(() => { st.tenant = tenant.value.trim(); }));
    const check = (label, key, title) => {
      const box = h('input', {type: 'checkbox', checked: st[key]});
      box.addEventListener('change', change(() => { st[key] = box.checked; }));
      return h('label', {class: 'check', title}, box, label);
    };
    const res = h('select', {title: 'Coarsest downsampled data the query may read (max_source_resolution)'},
      [['', 'default'], ['auto', 'auto'], ['0s', 'raw only'], ['5m', 'up to 5m'], ['1h', 'up to 1h']].map(([v, t]) =>
        h('option', {value: v, selected: st.res === v ? 'selected' : null}, t)));
    res.addEventListener('change', change(() => { st.res = res.value; }));

    el.append(
      h('div', {class: 'panel-top'},
        this.editor.el,
        h('button', {class: 'primary execute', onclick: () => this.run(), title: 'Run the query (Enter)'}, 'Execute'),
        h('button', {class: 'icon', title: 'Remove this panel', 'aria-label': 'Remove panel', onclick: () => this.page.remove(this)}, '✕')));
    const options = h('div', {class: 'panel-options'},
      h('span', {class: 'field'}, 'Tenant', tenant),
      check('Deduplicate', 'dedup', 'Merge the replicas of each series (dedup)'),
      check('Partial response', 'partial', 'Answer with a warning when a store fails, instead of failing (partial_response)'),
      h('span', {class: 'field'}, 'Source resolution', res));

    const tabs = h('div', {class: 'tabs', role: 'tablist'});
    for (const [id, title] of [['table', 'Table'], ['graph', 'Graph']]) {
      tabs.append(h('button', {role: 'tab', class: st.tab === id ? 'on' : null, dataset: {tab: id}, onclick: () => {
        if (st.tab === id) return;
        st.tab = id;
        for (const b of tabs.children) b.classList.toggle('on', b.dataset.tab === id);
        this.graph = null;
        clear(this.out);
        this.stats.classList.add('hidden');
        clear(this.messages);
        this.renderBar(change);
        this.page.save();
        if (st.expr.trim()) this.run();
      }}, title));
    }
    tabs.append(options);
    this.barBox = h('div');
    this.messages = h('div', {class: 'messages', style: {padding: '0 12px'}});
    this.out = h('div', {class: 'result'}, h('div', {class: 'empty'}, 'Write an expression and press Execute.'));
    this.stats = h('div', {class: 'qstats hidden'});
    el.append(tabs, this.barBox, this.messages, this.out, this.stats);
    this.renderBar(change);
  }

  renderBar(change) {
    clear(this.barBox).append(this.st.tab === 'graph' ? this.graphBar(change) : this.tableBar(change));
  }

  // endControls: « [time] » now, moving by the range (graph) or by a
  // tenth of it (table).
  endControls(change, stepOf, label) {
    const st = this.st;
    const input = h('input', {type: 'text', class: 'end', size: 19, value: st.end === null ? '' : fmtTime(st.end),
      placeholder: label, title: `Evaluation end, ${tzName()}: YYYY-MM-DD HH:MM:SS; empty means now`});
    input.addEventListener('change', change(() => {
      const v = input.value.trim();
      const t = parseTime(v);
      st.end = v === '' || !isFinite(t) ? null : t;
      input.value = st.end === null ? '' : fmtTime(st.end);
    }));
    const move = dir => change(() => {
      const base = st.end === null ? Date.now() : st.end;
      st.end = base + dir * stepOf() * 1000;
      if (st.end > Date.now()) st.end = null;
      input.value = st.end === null ? '' : fmtTime(st.end);
    });
    return h('span', {class: 'group'},
      h('button', {class: 'icon', title: 'Earlier', onclick: move(-1)}, '«'), input,
      h('button', {class: 'icon', title: 'Later', onclick: move(1)}, '»'),
      h('button', {class: 'icon', title: 'Now', onclick: change(() => { st.end = null; input.value = ''; })}, 'now'));
  }

  tableBar(change) {
    return h('div', {class: 'result-bar'},
      h('span', {class: 'field'}, 'Evaluation time', this.endControls(change, () => Math.max(60, this.st.range / 10), 'now')),
      h('span', {class: 'faint', style: {fontSize: '12px'}}, 'Times in ' + tzName()));
  }

  graphBar(change) {
    const st = this.st;
    const rangeIn = h('input', {type: 'text', class: 'range', size: 5, value: fmtDuration(st.range), title: 'Range: a duration like 1h, 30m, 2d'});
    rangeIn.addEventListener('change', change(() => {
      const r = parseDuration(rangeIn.value);
      if (isFinite(r) && r > 0) st.range = r;
      rangeIn.value = fmtDuration(st.range);
    }));
    const zoom = dir => change(() => {
      st.range = dir < 0
        ? [...ranges].reverse().find(r => r < st.range) || ranges[0]
        : ranges.find(r => r > st.range) || ranges[ranges.length - 1];
      rangeIn.value = fmtDuration(st.range);
      stepIn.placeholder = fmtDuration(autoStep(st.range));
    });
    const stepIn = h('input', {type: 'text', class: 'step', size: 6, value: st.step ? fmtDuration(st.step) : '',
      placeholder: fmtDuration(autoStep(st.range)), title: 'Query resolution (step); empty picks one from the range'});
    stepIn.addEventListener('change', change(() => {
      const v = parseDuration(stepIn.value);
      st.step = stepIn.value.trim() && isFinite(v) && v > 0 ? v : null;
      stepIn.value = st.step ? fmtDuration(st.step) : '';
    }));
    const mode = h('span', {class: 'seg', role: 'group', 'aria-label': 'Display mode'});
    for (const [id, title] of [['lines', 'Lines'], ['stacked', 'Stacked']]) {
      mode.append(h('button', {class: (id === 'stacked') === st.stacked ? 'on' : null, dataset: {mode: id}, onclick: () => {
        st.stacked = id === 'stacked';
        for (const b of mode.children) b.classList.toggle('on', b.dataset.mode === id);
        this.page.save();
        if (this.graph) {
          this.graph.opts.stacked = st.stacked;
          this.graph.draw();
        }
      }}, title));
    }
    return h('div', {class: 'result-bar'},
      h('span', {class: 'group'}, h('button', {class: 'icon', title: 'Shorter range', onclick: zoom(-1)}, '−'), rangeIn,
        h('button', {class: 'icon', title: 'Longer range', onclick: zoom(1)}, '+')),
      h('span', {class: 'field'}, 'End', this.endControls(change, () => st.range / 2, 'now')),
      h('span', {class: 'field'}, 'Step', stepIn),
      mode,
      h('span', {class: 'faint', style: {fontSize: '12px'}}, 'Times in ' + tzName()));
  }

  params() {
    const st = this.st;
    const p = {query: st.expr, stats: 'all', dedup: String(st.dedup), partial_response: String(st.partial)};
    if (st.res) p.max_source_resolution = st.res;
    return p;
  }

  async run() {
    const st = this.st;
    if (!st.expr.trim()) return;
    this.abort?.abort();
    const ctl = new AbortController();
    this.abort = ctl;
    const end = st.end === null ? Date.now() : st.end;
    const p = this.params();
    let path;
    let step = 0;
    if (st.tab === 'graph') {
      step = st.step || autoStep(st.range);
      Object.assign(p, {start: (end / 1000 - st.range).toFixed(3), end: (end / 1000).toFixed(3), step: String(step)});
      path = '/api/v1/query_range';
    } else {
      p.time = (end / 1000).toFixed(3);
      path = '/api/v1/query';
    }
    this.out.classList.add('loading');
    const t0 = performance.now();
    let res;
    try {
      // GET like any link; POST only for expressions too long for a URL.
      res = await api(path, p, {tenant: st.tenant, post: st.expr.length > 2000, signal: ctl.signal});
    } catch (e) {
      if (e.name === 'AbortError') return;
      this.out.classList.remove('loading');
      clear(this.messages).append(alertBox('err', e.message));
      clear(this.out);
      this.stats.classList.add('hidden');
      return;
    }
    const took = performance.now() - t0;
    this.out.classList.remove('loading');
    const msgs = clear(this.messages);
    for (const w of res.warnings) msgs.append(alertBox('warn', h('b', null, 'Warning: '), w));
    for (const i of res.infos) msgs.append(alertBox('info', h('b', null, 'Info: '), i));
    const data = res.data;
    clear(this.out);
    if (st.tab === 'graph') this.showGraph(data, end, step);
    else this.showTable(data);
    this.showStats(data, took, step);
  }

  showGraph(data, end, step) {
    this.graph = null;
    const result = data.resultType === 'matrix' ? data.result : [];
    if (!result.length) {
      this.out.append(h('div', {class: 'empty'}, 'Empty query result'));
      return;
    }
    const start = end - this.st.range * 1000;
    // Points sit on start + k*step, as the API evaluates them.
    const holder = h('div');
    this.out.append(holder);
    this.graph = new Graph(holder, result, {start, end, step: step * 1000, stacked: this.st.stacked, hidden: this.hidden});
  }

  showTable(data) {
    const out = this.out;
    if (data.resultType === 'scalar' || data.resultType === 'string') {
      out.append(table([[h('span', {class: 'muted'}, data.resultType), h('td', {class: 'val'}, fmtValue(data.result[1]))]]));
      return;
    }
    const result = data.result || [];
    if (!result.length) {
      out.append(h('div', {class: 'empty'}, 'Empty query result'));
      return;
    }
    const rows = result.slice(0, MAX_ROWS).map(r => {
      let cell;
      if (data.resultType === 'vector') {
        cell = r.histogram ? h('td', {class: 'hist-cell'}, histogramChart(r.histogram[1])) : h('td', {class: 'val'}, fmtValue(r.value[1]));
      } else {
        const lines = (r.values || []).map(([t, v]) => h('div', null, fmtValue(v), h('span', {class: 'faint'}, ' @' + t)))
          .concat((r.histograms || []).map(([t, hv]) => h('div', null, `count ${hv.count} sum ${hv.sum}`, h('span', {class: 'faint'}, ' @' + t))));
        cell = h('td', {class: 'val'}, h('div', {style: {maxHeight: '160px', overflow: 'auto'}}, lines));
      }
      return [seriesNode(r.metric), cell];
    });
    out.append(h('div', {class: 'table-result'}, table(rows)));
    if (result.length > MAX_ROWS) out.append(alertBox('warn', `Showing ${fmtInt(MAX_ROWS)} of ${fmtInt(result.length)} series.`));
  }

  showStats(data, took, step) {
    const st = data.stats;
    const n = Array.isArray(data.result) ? (data.resultType === 'scalar' || data.resultType === 'string' ? 1 : data.result.length) : 0;
    const items = [['Load time', `${Math.round(took)} ms`]];
    if (step) items.push(['Step', fmtDuration(step)]);
    items.push(['Result series', fmtInt(n)]);
    if (st && st.samples) {
      items.push(['Samples', fmtInt(st.samples.totalQueryableSamples)]);
      items.push(['Peak samples', fmtInt(st.samples.peakSamples)]);
    }
    if (st && st.timings) items.push(['Evaluation', `${(st.timings.evalTotalTime * 1000).toFixed(1)} ms`]);
    const box = clear(this.stats);
    box.classList.remove('hidden');
    for (const [k, v] of items) box.append(h('span', {class: 'stat-' + k.toLowerCase().replace(/ /g, '-')}, k + ': ', h('b', null, v)));
  }
}

// autoStep is Prometheus's choice: about 250 points over the range.
function autoStep(range) {
  return Math.max(Math.floor(range / 250), 1);
}

function table(rows) {
  return h('table', {class: 'data'},
    h('thead', null, h('tr', null, h('th', null, 'Series'), h('th', {class: 'num'}, 'Value'))),
    h('tbody', null, rows.map(([a, b]) => h('tr', null, h('td', null, a), b instanceof HTMLTableCellElement ? b : h('td', null, b)))));
}

// histogramChart draws a native histogram's buckets as bars, one per
// bucket, with the count and sum beside.
function histogramChart(hv) {
  const buckets = (hv.buckets || []).map(([rule, lo, hi, c]) => ({rule, lo: Number(lo), hi: Number(hi), c: Number(c)}));
  const w = Math.max(160, Math.min(560, 24 + buckets.length * 14));
  const H = 96, top = 6, bottom = 20, left = 4;
  const max = Math.max(1, ...buckets.map(b => b.c));
  const bw = buckets.length ? (w - left * 2) / buckets.length : 0;
  const svg = s('svg', {width: w, height: H, class: 'hist-chart', role: 'img', 'aria-label': 'histogram buckets'});
  svg.append(s('line', {x1: left, x2: w - left, y1: H - bottom + 0.5, y2: H - bottom + 0.5, stroke: 'currentColor', opacity: 0.3}));
  buckets.forEach((b, i) => {
    const bh = ((H - top - bottom) * b.c) / max;
    const open = ['(', '[', '(', '['][b.rule] || '(';
    const close = [']', ')', ')', ']'][b.rule] || ']';
    svg.append(s('rect', {class: 'b', x: left + i * bw + 0.5, y: H - bottom - bh, width: Math.max(1, bw - 1.5), height: Math.max(0.5, bh)},
      s('title', null, `${open}${fmtSI(b.lo)}, ${fmtSI(b.hi)}${close}: ${b.c}`)));
  });
  if (buckets.length) {
    const marks = buckets.length > 2 ? [0, Math.floor(buckets.length / 2), buckets.length - 1] : buckets.map((_, i) => i);
    for (const i of marks) {
      const anchor = i === 0 ? 'start' : i === buckets.length - 1 ? 'end' : 'middle';
      const x = i === buckets.length - 1 ? left + (i + 1) * bw : left + i * bw + (anchor === 'middle' ? bw / 2 : 0);
      svg.append(s('text', {x, y: H - 6, 'text-anchor': anchor}, fmtSI(i === buckets.length - 1 ? buckets[i].hi : buckets[i].lo)));
    }
  }
  return h('div', {class: 'hist'}, svg,
    h('div', {class: 'hsum'}, h('div', null, 'count ', h('b', null, fmtValue(hv.count))), h('div', null, 'sum ', h('b', null, fmtValue(hv.sum))),
      h('div', null, `${buckets.length} buckets`)));
}
