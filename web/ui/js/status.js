// The status page: build, runtime, TSDB head, rules and alerts (where a
// ruler answers), and the command-line flags.
import {cfg, h, clear, api, fmtTime, fmtInt, fmtSpan, fmtBytes, alertBox, statCard, pageHead, seriesNode, labelChips, fmtAgo} from './lib.js';

const kv = rows => h('table', {class: 'data kv'}, h('tbody', null, rows.map(([k, v]) => h('tr', null, h('td', null, k), h('td', {class: 'mono'}, v)))));

function card(title, id, ...body) {
  return h('div', {class: 'card', id}, h('div', {class: 'card-head'}, h('h2', null, title)), h('div', {class: 'card-body'}, ...body));
}

async function section(box, f) {
  try {
    await f();
  } catch (e) {
    box.append(alertBox('err', e.message));
  }
}

export async function render(main) {
  const left = h('div'), right = h('div');
  const nav = h('div', {class: 'toolbar'}, [['build', 'Build'], ['runtime', 'Runtime'], cfg.optional.tsdb && ['tsdb', 'TSDB head'],
    cfg.optional.rules && ['rules', 'Rules'], cfg.optional.alerts && ['alerts', 'Alerts'], ['flags', 'Flags']].filter(Boolean)
    .map(([id, t]) => h('a', {href: '#' + id, class: 'btn'}, t)));
  main.append(pageHead('Status', h('span', {class: 'muted'}, `atoll ${cfg.component}${cfg.instance ? ' · ' + cfg.instance : ''}`)), nav,
    h('div', {class: 'twocol'}, left, right));
  const flagsBox = h('div');
  const rulesBox = h('div');
  main.append(rulesBox, flagsBox);

  await Promise.all([
    section(left, async () => {
      const b = (await api('/api/v1/status/buildinfo')).data;
      left.append(card('Build information', 'build', kv([['Version', b.version], ['Revision', b.revision || '–'], ['Branch', b.branch || '–'],
        ['Build user', b.buildUser || '–'], ['Build date', b.buildDate || '–'], ['Go version', b.goVersion]])));
    }),
    section(right, async () => {
      const r = (await api('/api/v1/status/runtimeinfo')).data;
      const start = Date.parse(r.startTime);
      right.append(card('Runtime information', 'runtime', kv([
        ['Start time', `${fmtTime(start)} (up ${fmtSpan((Date.now() - start) / 1000)})`],
        ['Working directory', r.CWD], ['Hostname', r.hostname || '–'],
        ['Goroutines', fmtInt(r.goroutineCount)], ['GOMAXPROCS', String(r.GOMAXPROCS)],
        ['GOMEMLIMIT', r.GOMEMLIMIT && r.GOMEMLIMIT < 9e18 ? fmtBytes(r.GOMEMLIMIT) : 'none'],
        ['GOGC', r.GOGC || 'default'], ['GODEBUG', r.GODEBUG || '–'],
        ['Storage retention', r.storageRetention || '–']])));
    }),
  ]);
  if (cfg.optional.tsdb) await section(left, () => tsdb(left));
  if (cfg.optional.rules) await section(rulesBox, () => rules(rulesBox));
  if (cfg.optional.alerts) await section(rulesBox, () => alerts(rulesBox));
  await section(flagsBox, () => flags(flagsBox));
  if (location.hash) document.querySelector(location.hash)?.scrollIntoView();
}

async function tsdb(box) {
  const t = (await api('/api/v1/status/tsdb', {limit: 10})).data;
  const hs = t.headStats || {};
  const top = (title, list, bytes) => list && list.length ? h('div', null, h('h3', {style: {marginTop: '12px'}}, title),
    h('table', {class: 'data'}, h('tbody', null, list.map(e => h('tr', null, h('td', {class: 'mono'}, e.name), h('td', {class: 'num'}, bytes ? fmtBytes(e.value) : fmtInt(e.value))))))) : null;
  box.append(card('TSDB head', 'tsdb',
    h('div', {class: 'stats'}, statCard(fmtInt(hs.numSeries), 'series'), statCard(fmtInt(hs.chunkCount), 'chunks'),
      statCard(fmtInt(hs.numLabelPairs), 'label pairs')),
    hs.numSeries ? h('p', {class: 'muted'}, `Samples from ${fmtTime(hs.minTime)} to ${fmtTime(hs.maxTime)}`) : null,
    top('Series by metric name', t.seriesCountByMetricName),
    top('Values by label name', t.labelValueCountByLabelName),
    top('Memory by label name', t.memoryInBytesByLabelName, true),
    top('Series by label pair', t.seriesCountByLabelValuePair)));
}

const healthBadge = hl => h('span', {class: 'badge ' + (hl === 'ok' ? 'ok' : hl === 'err' ? 'err' : '')}, hl || 'unknown');
const stateBadge = st => h('span', {class: 'badge ' + (st === 'firing' ? 'err' : st === 'pending' ? 'warn' : 'ok')}, st);

async function rules(box) {
  const groups = (await api('/api/v1/rules')).data.groups || [];
  const body = groups.length ? groups.map(g => h('div', {style: {marginBottom: '14px'}},
    h('div', {class: 'toolbar'}, h('b', null, g.name), h('span', {class: 'faint'}, g.file), h('span', {class: 'spacer'}),
      h('span', {class: 'faint'}, `every ${fmtSpan(g.interval)} · last ${fmtAgo(Date.parse(g.lastEvaluation))} · took ${(g.evaluationTime * 1000).toFixed(1)} ms`)),
    h('table', {class: 'data'}, h('thead', null, h('tr', null, ['Rule', 'Type', 'Health', 'State', 'Last evaluation'].map(t => h('th', null, t)))),
      h('tbody', null, (g.rules || []).map(r => h('tr', null,
        h('td', null, h('div', null, h('b', {class: 'mono'}, r.name)), h('div', {class: 'mono muted'}, r.query), r.lastError ? alertBox('err', r.lastError) : null),
        h('td', null, r.type), h('td', null, healthBadge(r.health)), h('td', null, r.state ? stateBadge(r.state) : '–'),
        h('td', {class: 'nowrap'}, r.lastEvaluation ? fmtAgo(Date.parse(r.lastEvaluation)) : '–')))))))
    : h('div', {class: 'empty'}, 'No rule groups are loaded.');
  box.append(card('Rules', 'rules', body));
}

async function alerts(box) {
  const list = (await api('/api/v1/alerts')).data.alerts || [];
  box.append(card('Alerts', 'alerts', list.length
    ? h('table', {class: 'data'}, h('thead', null, h('tr', null, ['Alert', 'State', 'Active since', 'Value', 'Annotations'].map(t => h('th', null, t)))),
      h('tbody', null, list.map(a => h('tr', null, h('td', null, seriesNode(a.labels)), h('td', null, stateBadge(a.state)),
        h('td', {class: 'nowrap'}, a.activeAt ? fmtTime(Date.parse(a.activeAt)) : '–'), h('td', {class: 'mono'}, a.value),
        h('td', null, labelChips(a.annotations))))))
    : h('div', {class: 'empty'}, 'No alerts are pending or firing.')));
}

async function flags(box) {
  const f = (await api('/api/v1/status/flags')).data;
  const filter = h('input', {type: 'search', class: 'filter', placeholder: 'Filter flags', 'aria-label': 'Filter flags'});
  const tbody = h('tbody');
  const draw = () => {
    const q = filter.value.toLowerCase();
    clear(tbody).append(...Object.keys(f).sort().filter(k => !q || k.includes(q) || String(f[k]).toLowerCase().includes(q))
      .map(k => h('tr', null, h('td', {class: 'mono'}, '--' + k), h('td', {class: 'mono'}, f[k] === '' ? h('span', {class: 'faint'}, '(empty)') : f[k]))));
  };
  filter.addEventListener('input', draw);
  draw();
  box.append(h('div', {class: 'card', id: 'flags'}, h('div', {class: 'card-head'}, h('h2', null, 'Command-line flags'), h('span', {style: {flex: 1}}), filter),
    h('div', {class: 'card-body flush scroll', style: {maxHeight: '520px'}}, h('table', {class: 'data kv'}, tbody))));
}
