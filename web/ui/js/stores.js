// The stores page: every store the querier uses, and what the ring says
// about them.
import {cfg, h, clear, api, poll, fmtTime, fmtAgo, labelChips, alertBox, statCard, pageHead} from './lib.js';

const order = ['all', 'receive', 'store', 'sidecar', 'rule', 'unknown'];
const names = {all: 'All-in-one', receive: 'Receivers', store: 'Store gateways', sidecar: 'Sidecars', rule: 'Rulers', unknown: 'Not answering yet'};
const MAX = 9e18; // beyond it a time bound means "open"

// timeCells shows a store's time range: "no data" for an empty store,
// "live" for a store still taking writes.
function timeCells(st) {
  if (st.minTime >= MAX) return [h('td', {class: 'faint'}, 'no data'), h('td', {class: 'faint'}, 'no data')];
  const at = ms => (ms <= -MAX ? h('span', {class: 'faint'}, '–') : h('span', {class: 'nowrap'}, fmtTime(ms)));
  return [h('td', null, at(st.minTime)),
    h('td', null, st.maxTime >= MAX ? h('span', {class: 'muted', title: 'Still taking writes'}, 'live') : at(st.maxTime))];
}

export async function render(main) {
  const body = h('div');
  const refreshed = h('span', {class: 'faint'});
  main.append(pageHead('Stores', h('span', {class: 'muted'}, 'The Store API endpoints this querier reads, checked in the background.'),
    h('span', {class: 'spacer'}), refreshed), body);
  poll(async () => {
    const [stores, ring] = await Promise.all([
      api('/api/v1/stores').then(r => r.data, e => e),
      cfg.ring ? api('/ring').then(r => r.data, () => null) : Promise.resolve(null),
    ]);
    draw(clear(body), stores, ring);
    refreshed.textContent = 'Updated ' + new Date().toLocaleTimeString();
  }, 10000);
}

function draw(body, stores, ring) {
  if (stores instanceof Error) {
    body.append(alertBox('err', 'Cannot list stores: ' + stores.message));
    return;
  }
  const byAddr = new Map();
  if (ring) for (const m of ring.members || []) if (m.grpc_address) byAddr.set(m.grpc_address, m);
  const all = Object.values(stores).flat();
  const healthy = all.filter(st => st.healthy).length;
  body.append(h('div', {class: 'stats'},
    statCard(String(all.length), 'stores'),
    statCard(String(healthy), 'healthy'),
    statCard(String(all.length - healthy), 'unhealthy'),
    ring ? statCard(`${ring.healthy}/${(ring.members || []).length}`, 'ring members healthy') : null,
    ring ? statCard(String(ring.replication_factor), 'replication factor') : null));

  const comps = Object.keys(stores).sort((a, b) => (order.indexOf(a) + 99 * (order.indexOf(a) < 0)) - (order.indexOf(b) + 99 * (order.indexOf(b) < 0)));
  if (!comps.length) body.append(h('div', {class: 'card'}, h('div', {class: 'empty'}, 'No stores yet: the querier has found no receiver or store gateway.')));
  for (const c of comps) {
    const rows = stores[c].map(st => {
      const m = byAddr.get(st.name);
      return h('tr', {class: 'store-row', dataset: {name: st.name}},
        h('td', null, h('div', {class: 'mono'}, st.name), st.lastError ? h('div', {class: 'alert err', style: {margin: '4px 0 0', padding: '3px 8px', fontSize: '12px'}}, st.lastError) : null),
        h('td', null, h('span', {class: 'badge ' + (st.healthy ? 'ok' : 'err')}, st.healthy ? 'UP' : 'DOWN')),
        h('td', null, h('span', {class: 'badge', title: sourceTitle(st.source)}, st.source || '–')),
        h('td', {class: 'nowrap', title: st.lastCheck ? fmtTime(Date.parse(st.lastCheck)) : ''}, st.lastCheck && !st.lastCheck.startsWith('0001') ? fmtAgo(Date.parse(st.lastCheck)) : 'never'),
        timeCells(st),
        h('td', null, st.labelSets.length ? st.labelSets.map(ls => h('div', null, labelChips(ls))) : h('span', {class: 'faint'}, 'none')),
        cfg.ring ? h('td', null, m ? ringCell(m) : h('span', {class: 'faint'}, st.source === 'static' ? 'not in ring' : '–')) : null);
    });
    body.append(h('div', {class: 'card'},
      h('div', {class: 'card-head'}, h('h2', null, names[c] || c), h('span', {class: 'badge'}, String(stores[c].length))),
      h('div', {class: 'card-body flush scroll'}, h('table', {class: 'data stores'},
        h('thead', null, h('tr', null, h('th', null, 'Endpoint'), h('th', null, 'Health'), h('th', null, 'Source'), h('th', null, 'Last check'),
          h('th', null, 'Min time'), h('th', null, 'Max time'), h('th', null, 'External label sets'), cfg.ring ? h('th', null, 'Ring member') : null)),
        h('tbody', null, rows)))));
  }

  if (ring) body.append(ringView(ring, new Set(all.map(st => st.name))));
}

function sourceTitle(src) {
  return {local: 'In this process', static: 'Given with --store', ring: 'Announced in the ring'}[src] || '';
}

function ringCell(m) {
  return h('span', null, h('span', {class: 'mono'}, m.id), ' ',
    h('span', {class: 'badge ' + (m.healthy ? 'ok' : 'err')}, m.state), m.zone ? h('span', {class: 'faint'}, ' zone ' + m.zone) : null);
}

// ringView lists the ring's members with a Store API and whether this
// querier uses them: a receiver the ring knows but the querier does not
// read is a gap in every answer.
function ringView(ring, used) {
  const members = (ring.members || []).filter(m => m.role !== 'querier');
  const rows = members.map(m => h('tr', null,
    h('td', {class: 'mono'}, m.id, m.self ? h('span', {class: 'faint'}, ' (this process)') : null),
    h('td', null, m.role), h('td', null, h('span', {class: 'badge ' + (m.healthy ? 'ok' : 'err')}, m.state)),
    h('td', null, m.zone || h('span', {class: 'faint'}, '–')),
    h('td', {class: 'mono'}, m.grpc_address || '–'),
    h('td', {class: 'num'}, m.heartbeat_age_seconds.toFixed(1) + 's'),
    h('td', null, m.grpc_address && used.has(m.grpc_address) ? h('span', {class: 'badge ok'}, 'queried')
      : h('span', {class: 'badge ' + (m.healthy ? 'warn' : '')}, m.healthy ? 'not queried' : 'left out'))));
  return h('div', {class: 'card'},
    h('div', {class: 'card-head'}, h('h2', null, "The ring's view"), h('span', {class: 'muted'}, `as seen by ${ring.self}`),
      h('span', {class: 'spacer', style: {flex: 1}}), h('a', {href: '/ring'}, 'Ring page →')),
    h('div', {class: 'card-body flush scroll'}, members.length
      ? h('table', {class: 'data'}, h('thead', null, h('tr', null, ['Member', 'Role', 'State', 'Zone', 'gRPC address', 'Heartbeat age', 'Used by this querier'].map(t => h('th', null, t)))),
        h('tbody', null, rows))
      : h('div', {class: 'empty'}, 'The ring has no receivers or store gateways.')));
}
