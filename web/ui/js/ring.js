// The ring page: the members this process's ring knows, their health and
// their share of the key space.
import {cfg, h, clear, api, poll, fmtTime, alertBox, statCard, pageHead, colorOf} from './lib.js';

export async function render(main) {
  if (!cfg.ring) {
    main.append(pageHead('Ring'), h('div', {class: 'card no-ring'}, h('div', {class: 'card-body'},
      h('h2', null, 'There is no ring here'),
      h('p', null, cfg.component === 'all'
        ? 'atoll all is a single process: it takes every write, stores every series and answers every query itself, so it needs no hash ring.'
        : `atoll ${cfg.component} does not take part in a ring.`),
      h('p', {class: 'muted'}, 'In a cluster, receivers own token ranges of a consistent-hash ring gossiped between them; queriers and store gateways join the same gossip to find them. Their /ring page shows the members, their state, heartbeats and ownership.'))));
    return;
  }
  const body = h('div');
  const refreshed = h('span', {class: 'faint'});
  main.append(pageHead('Ring', h('span', {class: 'muted'}, 'Members as this process sees them through gossip.'),
    h('span', {class: 'spacer'}), refreshed, h('a', {href: '/ring?plain', class: 'plain-link'}, 'Plain page')), body);
  poll(async () => {
    let ring;
    try {
      ring = (await api('/ring')).data;
    } catch (e) {
      clear(body).append(alertBox('err', 'Cannot read the ring: ' + e.message));
      return;
    }
    draw(clear(body), ring);
    refreshed.textContent = 'Updated ' + new Date().toLocaleTimeString();
  }, 5000);
}

function draw(body, ring) {
  const members = ring.members || [];
  const receivers = members.filter(m => m.role === 'receiver');
  body.append(h('div', {class: 'stats'},
    statCard(String(members.length), 'members'),
    statCard(`${ring.healthy}/${members.length}`, 'healthy'),
    statCard(String(receivers.length), 'receivers'),
    statCard(String(ring.replication_factor), 'replication factor'),
    statCard(ring.self, 'seen by')));
  if (receivers.length) {
    const own = h('div', {class: 'own', title: 'Share of the key space each receiver owns as primary'});
    receivers.forEach((m, i) => own.append(h('span', {style: {width: m.ownership_percent + '%', background: colorOf(i), opacity: m.healthy ? 1 : 0.35},
      title: `${m.id}: ${m.ownership_percent.toFixed(1)}%`})));
    body.append(h('div', {class: 'card'}, h('div', {class: 'card-body'}, h('h3', null, 'Ownership'), own,
      h('div', {class: 'legend-row'}, receivers.map((m, i) => h('span', null, h('span', {class: 'sw', style: {background: colorOf(i)}}), `${m.id} ${m.ownership_percent.toFixed(1)}%`))))));
  }
  const rows = members.map(m => h('tr', {class: m.healthy ? null : 'unhealthy'},
    h('td', {class: 'mono'}, m.id, m.self ? h('span', {class: 'faint'}, ' (this process)') : null),
    h('td', null, m.role), h('td', null, h('span', {class: 'badge ' + (m.healthy ? 'ok' : 'err')}, m.state)),
    h('td', null, m.healthy ? 'healthy' : h('span', {style: {color: 'var(--err)'}}, 'unhealthy')),
    h('td', null, m.zone || h('span', {class: 'faint'}, '–')),
    h('td', {class: 'num'}, String(m.tokens)),
    h('td', {class: 'num'}, m.tokens ? m.ownership_percent.toFixed(1) + '%' : '–'),
    h('td', {class: 'num', title: fmtTime(Date.parse(m.heartbeat))}, m.heartbeat_age_seconds.toFixed(1) + 's ago'),
    h('td', {class: 'mono'}, m.grpc_address || '–'),
    h('td', {class: 'mono'}, m.http_address ? h('a', {href: `http://${m.http_address}/`}, m.http_address) : '–'),
    h('td', {class: 'mono'}, m.gossip_address || '–')));
  body.append(h('div', {class: 'card'}, h('div', {class: 'card-body flush scroll'},
    h('table', {class: 'data ring'}, h('thead', null, h('tr', null,
      ['Member', 'Role', 'State', 'Health', 'Zone', 'Tokens', 'Ownership', 'Last heartbeat', 'gRPC', 'HTTP', 'Gossip'].map(t => h('th', null, t)))),
    h('tbody', null, rows)))),
  h('p', {class: 'muted'}, 'Ownership is each receiver\'s share of the key space as primary owner; the keys of unhealthy members go to the next healthy ones for new writes.'));
}
