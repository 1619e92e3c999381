// The blocks page: a timeline of the bucket's blocks, one row of lanes per
// group (external labels and resolution), with their marks; a click shows
// a block's meta.
import {h, s, clear, api, fmtTime, fmtSpan, fmtInt, fmtSI, fmtBytes, labelChips, alertBox, statCard, pageHead, fmtAgo} from './lib.js';
import {timeTicks} from './graph.js';

const LANE = 20, GAP = 4, AXIS = 34;
const levelColors = ['#86cdd3', '#3aa7b0', '#1f7fa0', '#2f5d9e', '#4b3f99', '#6b2f8c'];
const levelColor = l => levelColors[Math.min(levelColors.length, Math.max(1, l)) - 1];
const presets = [['All', 0], ['90d', 90], ['30d', 30], ['7d', 7], ['2d', 2], ['12h', 0.5]];

const size = m => (m.thanos.files || []).reduce((a, f) => a + (f.size_bytes || 0), 0);
const resName = r => (r === 0 ? 'raw' : r === 300000 ? '5m' : r === 3600000 ? '1h' : fmtSpan(r / 1000));
const labelString = ls => Object.keys(ls || {}).sort().map(k => `${k}="${ls[k]}"`).join(', ');

export async function render(main) {
  const st = {filter: '', days: 0, marked: true, selected: null, data: null};
  const body = h('div');
  const refreshed = h('span', {class: 'faint'});
  const filter = h('input', {type: 'search', class: 'filter', placeholder: 'Filter by label or ULID', 'aria-label': 'Filter blocks'});
  filter.addEventListener('input', () => { st.filter = filter.value.trim(); draw(); });
  const seg = h('span', {class: 'seg', role: 'group', 'aria-label': 'Time range'});
  for (const [name, days] of presets) {
    seg.append(h('button', {class: days === st.days ? 'on' : null, onclick: e => {
      st.days = days;
      for (const b of seg.children) b.classList.toggle('on', b === e.currentTarget);
      draw();
    }}, name));
  }
  const marked = h('input', {type: 'checkbox', checked: true});
  marked.addEventListener('change', () => { st.marked = marked.checked; draw(); });
  const refresh = h('button', {onclick: () => load(true)}, '↻ Refresh');
  main.append(pageHead('Blocks', h('span', {class: 'muted bucket-label'}), h('span', {class: 'spacer'}), refreshed),
    h('div', {class: 'toolbar'}, filter, seg, h('label', {class: 'check'}, marked, 'Show blocks marked for deletion'),
      h('span', {class: 'spacer'}), refresh), body);
  const drawer = h('aside', {class: 'drawer hidden', 'aria-label': 'Block details'});
  document.body.append(drawer);
  document.addEventListener('keydown', e => { if (e.key === 'Escape') select(null); });

  async function load(fresh) {
    refresh.disabled = true;
    try {
      st.data = (await api('/api/v1/blocks', fresh ? {refresh: 'true'} : null)).data;
    } catch (e) {
      clear(body).append(alertBox('err', 'Cannot list blocks: ' + e.message));
      return;
    } finally {
      refresh.disabled = false;
    }
    main.querySelector('.bucket-label').textContent = st.data.label ? 'Bucket ' + st.data.label : '';
    refreshed.textContent = 'Listed ' + fmtAgo(Date.parse(st.data.refreshedAt));
    refreshed.title = fmtTime(Date.parse(st.data.refreshedAt));
    draw();
  }

  function select(m) {
    st.selected = m ? m.ulid : null;
    body.querySelectorAll('.blk').forEach(g => g.classList.toggle('sel', g.dataset.ulid === st.selected));
    if (!m) { drawer.classList.add('hidden'); return; }
    details(clear(drawer), m, () => select(null));
    drawer.classList.remove('hidden');
  }

  function draw() {
    const d = st.data;
    if (!d) return;
    clear(body);
    if (d.err) body.append(alertBox('err', 'Listing the bucket failed: ' + d.err));
    const now = Date.now();
    let blocks = d.blocks;
    if (!st.marked) blocks = blocks.filter(m => !m.deletionMark);
    if (st.filter) {
      const f = st.filter.toLowerCase();
      blocks = blocks.filter(m => m.ulid.toLowerCase().includes(f) || labelString(m.thanos.labels).toLowerCase().includes(f));
    }
    if (st.days) blocks = blocks.filter(m => m.maxTime >= now - st.days * 86400e3);

    const all = d.blocks;
    body.append(h('div', {class: 'stats'},
      statCard(fmtInt(all.length), 'blocks'),
      statCard(fmtBytes(all.reduce((a, m) => a + size(m), 0)), 'size'),
      statCard(fmtSI(all.reduce((a, m) => a + m.stats.numSamples, 0)), 'samples'),
      statCard(fmtInt(all.filter(m => m.deletionMark).length), 'marked for deletion'),
      statCard(fmtInt(all.filter(m => m.noCompactMark).length), 'no-compact'),
      statCard(fmtInt(d.partial.length), 'partial uploads', d.partial.join('\n')),
      Object.keys(d.unreadable).length ? statCard(fmtInt(Object.keys(d.unreadable).length), 'unreadable metas') : null));
    for (const [id, err] of Object.entries(d.unreadable)) body.append(alertBox('err', `${id}: ${err}`));
    if (!blocks.length) {
      body.append(h('div', {class: 'card'}, h('div', {class: 'empty'}, all.length ? 'No block matches.' : 'The bucket holds no blocks yet.')));
      return;
    }

    // Groups: external labels and resolution, as the compactor plans them.
    const groups = new Map();
    for (const m of blocks) {
      const key = labelString(m.thanos.labels) + '|' + m.thanos.downsample.resolution;
      if (!groups.has(key)) groups.set(key, {labels: m.thanos.labels, res: m.thanos.downsample.resolution, blocks: []});
      groups.get(key).blocks.push(m);
    }
    const ordered = [...groups.values()].sort((a, b) => labelString(a.labels).localeCompare(labelString(b.labels)) || a.res - b.res);
    // reduce, not Math.min(...): a bucket can hold more blocks than a call takes arguments.
    let lo = blocks.reduce((a, m) => Math.min(a, m.minTime), Infinity), hi = blocks.reduce((a, m) => Math.max(a, m.maxTime), -Infinity);
    if (st.days) lo = Math.max(lo, now - st.days * 86400e3);
    const pad = (hi - lo) * 0.01;
    lo -= pad; hi += pad;

    const card = h('div', {class: 'card timeline'});
    body.append(card);
    card.append(h('div', {class: 'tl-head', style: {paddingBottom: '6px'}}, h('b', null, `${blocks.length} of ${all.length} blocks`),
      h('span', {class: 'meta'}, legend())));
    const width = Math.max(600, card.clientWidth - 2);
    const left = 12, right = 12;
    const pw = width - left - right;
    const x = t => left + ((t - lo) / (hi - lo)) * pw;
    const ticks = timeTicks(lo, hi, pw);

    const axis = s('svg', {width, height: AXIS, class: 'axis-svg'});
    const ag = s('g', {class: 'axis'});
    for (const tk of ticks) {
      ag.append(s('text', {x: x(tk.t), y: 14, 'text-anchor': 'middle'}, tk.label));
      if (tk.date) ag.append(s('text', {x: x(tk.t), y: 27, 'text-anchor': 'middle'}, tk.date));
    }
    axis.append(ag);
    card.append(h('div', {class: 'tl-axis'}, axis));

    for (const g of ordered) {
      const lanes = [];
      const placed = g.blocks.slice().sort((a, b) => a.minTime - b.minTime || b.compaction.level - a.compaction.level).map(m => {
        let lane = lanes.findIndex(end => end <= m.minTime);
        if (lane < 0) { lane = lanes.length; lanes.push(0); }
        lanes[lane] = m.maxTime;
        return {m, lane};
      });
      const height = lanes.length * (LANE + GAP) + GAP;
      const svg = s('svg', {width, height});
      const hatch = 'hatch' + Math.random().toString(36).slice(2);
      svg.append(s('defs', null, s('pattern', {id: hatch, width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)'},
        s('rect', {width: 6, height: 6, fill: '#f3d9d6'}), s('line', {x1: 0, y1: 0, x2: 0, y2: 6, stroke: '#cf5b50', 'stroke-width': 2}))));
      const grid = s('g', {class: 'grid'});
      for (const tk of ticks) grid.append(s('line', {x1: x(tk.t), x2: x(tk.t), y1: 0, y2: height}));
      svg.append(grid);
      if (now > lo && now < hi) svg.append(s('line', {class: 'now', x1: x(now), x2: x(now), y1: 0, y2: height}));
      for (const {m, lane} of placed) {
        const x0 = Math.max(left, x(m.minTime)), x1 = Math.min(left + pw, x(m.maxTime));
        const w = Math.max(2, x1 - x0 - 1);
        const y0 = GAP + lane * (LANE + GAP);
        const cls = 'blk' + (m.noCompactMark ? ' nocompact' : '') + (m.deletionMark ? ' deleted' : '') + (st.selected === m.ulid ? ' sel' : '');
        const blk = s('g', {class: cls, dataset: {ulid: m.ulid}},
          s('rect', {x: x0, y: y0, width: w, height: LANE, rx: 2, fill: m.deletionMark ? `url(#${hatch})` : levelColor(m.compaction.level)}),
          s('title', null, `${m.ulid}\n${fmtTime(m.minTime)} → ${fmtTime(m.maxTime)} (${fmtSpan((m.maxTime - m.minTime) / 1000)})\n` +
            `level ${m.compaction.level} · ${fmtInt(m.stats.numSeries)} series · ${fmtSI(m.stats.numSamples)} samples · ${fmtBytes(size(m))}` +
            (m.deletionMark ? `\nmarked for deletion ${fmtAgo(m.deletionMark.deletion_time * 1000)}` : '') +
            (m.noCompactMark ? `\nno-compact: ${m.noCompactMark.reason}` : '')));
        if (w > 58) blk.append(s('text', {x: x0 + 5, y: y0 + 14}, `L${m.compaction.level} · ${fmtSpan((m.maxTime - m.minTime) / 1000)}`));
        blk.addEventListener('click', () => select(m));
        svg.append(blk);
      }
      const total = g.blocks.reduce((a, m) => a + size(m), 0);
      card.append(h('div', {class: 'tl-group'},
        h('div', {class: 'tl-head'}, labelChips(g.labels), h('span', {class: 'badge info'}, resName(g.res)),
          h('span', {class: 'meta'}, `${g.blocks.length} block${g.blocks.length === 1 ? '' : 's'} · ${fmtBytes(total)} · ${fmtSI(g.blocks.reduce((a, m) => a + m.stats.numSamples, 0))} samples`)),
        svg));
    }
  }

  await load(false);
}

function legend() {
  return h('span', {class: 'legend-row'},
    [1, 2, 3, 4].map(l => h('span', null, h('span', {class: 'sw', style: {background: levelColor(l)}}), 'L' + l + (l === 4 ? '+' : ''))),
    h('span', null, h('span', {class: 'sw', style: {background: 'repeating-linear-gradient(45deg,#cf5b50 0 2px,#f3d9d6 2px 5px)'}}), 'marked for deletion'),
    h('span', null, h('span', {class: 'sw', style: {border: '2px dashed #d97706'}}), 'no-compact'));
}

function details(el, m, close) {
  const files = m.thanos.files || [];
  const index = files.find(f => f.rel_path === 'index');
  const chunks = files.filter(f => f.rel_path.startsWith('chunks/')).reduce((a, f) => a + (f.size_bytes || 0), 0);
  const kv = rows => h('table', {class: 'data kv'}, h('tbody', null, rows.filter(Boolean).map(([k, v]) => h('tr', null, h('td', null, k), h('td', null, v)))));
  const {deletionMark: dm, noCompactMark: nm, ...meta} = m;
  el.append(
    h('div', {class: 'd-head'}, h('h2', {class: 'mono'}, m.ulid), h('span', {style: {flex: 1}}), h('button', {class: 'icon', onclick: close, 'aria-label': 'Close'}, '✕')),
    h('div', {class: 'd-body'},
      dm ? alertBox('err', h('b', null, 'Marked for deletion '), fmtTime(dm.deletion_time * 1000), dm.details ? ': ' + dm.details : '') : null,
      nm ? alertBox('warn', h('b', null, 'No-compact: '), nm.reason, nm.details ? ' – ' + nm.details : '', ' (', fmtTime(nm.no_compact_time * 1000), ')') : null,
      kv([
        ['Time range', `${fmtTime(m.minTime)} → ${fmtTime(m.maxTime)}`],
        ['Duration', fmtSpan((m.maxTime - m.minTime) / 1000)],
        ['External labels', h('div', null, labelChips(m.thanos.labels))],
        ['Resolution', resName(m.thanos.downsample.resolution)],
        ['Compaction level', String(m.compaction.level)],
        ['Source', m.thanos.source || '–'],
        ['Series', fmtInt(m.stats.numSeries)],
        ['Samples', fmtInt(m.stats.numSamples)],
        ['Chunks', fmtInt(m.stats.numChunks)],
        ['Size', `${fmtBytes(size(m))} (index ${fmtBytes(index ? index.size_bytes : NaN)}, chunks ${fmtBytes(chunks)})`],
        ['Source blocks', h('div', {class: 'mono'}, (m.compaction.sources || []).map(id => h('div', null, id)))],
        m.compaction.parents ? ['Parents', h('div', {class: 'mono'}, m.compaction.parents.map(p => h('div', null, p.ulid)))] : null,
      ]),
      h('h3', {style: {marginTop: '14px'}}, 'meta.json'),
      h('pre', {class: 'json'}, JSON.stringify(meta, null, 2)),
      dm ? [h('h3', null, 'deletion-mark.json'), h('pre', {class: 'json'}, JSON.stringify(dm, null, 2))] : null,
      nm ? [h('h3', null, 'no-compact-mark.json'), h('pre', {class: 'json'}, JSON.stringify(nm, null, 2))] : null));
}
