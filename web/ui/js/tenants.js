// The tenants page: each tenant's head series, samples per second and
// limits, summed over the receivers that hold it, with the receivers'
// parts a click away.
import {cfg, h, clear, api, poll, fmtRange, fmtInt, fmtSI, alertBox, statCard, pageHead, usageBar} from './lib.js';

export async function render(main) {
  const body = h('div');
  const refreshed = h('span', {class: 'faint'});
  const filter = h('input', {type: 'search', class: 'filter', placeholder: 'Filter tenants', 'aria-label': 'Filter tenants'});
  const open = new Set();
  let last = null;
  filter.addEventListener('input', () => last && draw(clear(body), last, filter.value, open));
  const what = cfg.tenantScope === 'cluster'
    ? 'Every receiver in the ring, asked now. Figures count every replica: with replication factor 3 a series is in 3 heads.'
    : 'The tenant TSDBs of this process.';
  main.append(pageHead('Tenants', h('span', {class: 'muted'}, what), h('span', {class: 'spacer'}), refreshed),
    h('div', {class: 'toolbar'}, filter), body);
  let again = null;
  poll(async () => {
    try {
      last = (await api('/api/v1/tenants')).data;
    } catch (e) {
      clear(body).append(alertBox('err', 'Cannot list tenants: ' + e.message));
      return;
    }
    draw(clear(body), last, filter.value, open);
    refreshed.textContent = 'Updated ' + new Date().toLocaleTimeString();
    // Rates need two readings: ask again soon after the first.
    const pending = last.receivers.some(r => r.tenants.some(t => t.samplesPerSecond === null));
    clearTimeout(again);
    if (pending) {
      again = setTimeout(async () => {
        try {
          last = (await api('/api/v1/tenants')).data;
          draw(clear(body), last, filter.value, open);
        } catch (e) {
          // The next regular refresh tries again.
        }
      }, 1500);
    }
  }, 5000);
}

// merge sums every tenant over the receivers.
function merge(receivers) {
  const byID = new Map();
  for (const rc of receivers) {
    for (const t of rc.tenants) {
      let m = byID.get(t.tenant);
      if (!m) {
        m = {id: t.tenant, series: 0, rate: null, blocks: 0, min: Infinity, max: -Infinity, parts: [], limits: t.limits, usage: 0, rateUsage: 0};
        byID.set(t.tenant, m);
      }
      m.series += t.headSeries;
      if (t.samplesPerSecond !== null) m.rate = (m.rate || 0) + t.samplesPerSecond;
      m.blocks += t.blocks;
      if (t.headMaxTime) { m.min = Math.min(m.min, t.headMinTime); m.max = Math.max(m.max, t.headMaxTime); }
      if (t.limits.maxSeries) m.usage = Math.max(m.usage, t.headSeries / t.limits.maxSeries);
      if (t.limits.ingestionRate && t.samplesPerSecond !== null) m.rateUsage = Math.max(m.rateUsage, t.samplesPerSecond / t.limits.ingestionRate);
      m.parts.push({rc, t});
    }
  }
  return [...byID.values()].sort((a, b) => b.series - a.series || a.id.localeCompare(b.id));
}

function limitCell(used, limit, unit) {
  if (!limit) return h('td', {class: 'num'}, h('span', {class: 'faint'}, 'no limit'));
  return h('td', {class: 'num'}, h('div', null, `${fmtSI(limit)}${unit}`), usageBar(used, limit));
}

function draw(body, data, query, open) {
  const receivers = data.receivers || [];
  for (const rc of receivers) if (rc.error) body.append(alertBox('err', h('b', null, `${rc.name || rc.address}: `), rc.error));
  const tenants = merge(receivers);
  const total = tenants.reduce((a, t) => a + t.series, 0);
  const rate = tenants.reduce((a, t) => a + (t.rate || 0), 0);
  body.append(h('div', {class: 'stats'},
    statCard(String(tenants.length), 'tenants'),
    statCard(fmtInt(total), 'head series'),
    statCard(tenants.some(t => t.rate !== null) ? fmtSI(rate) : '…', 'samples/s stored'),
    cfg.tenantScope === 'cluster' ? statCard(`${receivers.filter(r => !r.error).length}/${receivers.length}`, 'receivers answering') : null));
  const shown = tenants.filter(t => !query || t.id.includes(query));
  if (!shown.length) {
    body.append(h('div', {class: 'card'}, h('div', {class: 'empty'}, tenants.length ? 'No tenant matches.' : 'No tenant has written yet.')));
    return;
  }
  const rows = [];
  for (const t of shown) {
    const multi = cfg.tenantScope === 'cluster';
    const row = h('tr', {class: 'tenant-row' + (multi ? ' click' : ''), dataset: {tenant: t.id}},
      h('td', null, multi ? h('span', {class: 'faint'}, open.has(t.id) ? '▾ ' : '▸ ') : null, h('b', {class: 'mono'}, t.id)),
      h('td', {class: 'num'}, fmtInt(t.series)),
      h('td', {class: 'num rate'}, t.rate === null ? h('span', {class: 'faint', title: 'Measured between two refreshes'}, 'measuring…') : fmtSI(t.rate)),
      limitCell(t.usage * (t.limits.maxSeries || 0), t.limits.maxSeries, ' series'),
      limitCell(t.rateUsage * (t.limits.ingestionRate || 0), t.limits.ingestionRate, '/s'),
      h('td', {class: 'num'}, t.limits.ingestionBurst ? fmtSI(t.limits.ingestionBurst) : h('span', {class: 'faint'}, t.limits.ingestionRate ? '1s of rate' : '–')),
      h('td', {class: 'nowrap'}, isFinite(t.min) ? fmtRange(t.min, t.max) : h('span', {class: 'faint'}, 'empty')),
      h('td', {class: 'num'}, String(t.blocks)),
      multi ? h('td', {class: 'num'}, String(t.parts.length)) : null);
    if (multi) {
      row.addEventListener('click', () => {
        if (open.has(t.id)) open.delete(t.id); else open.add(t.id);
        draw(clear(body), data, query, open);
      });
    }
    rows.push(row);
    if (multi && open.has(t.id)) {
      for (const {rc, t: p} of t.parts) {
        rows.push(h('tr', {class: 'sub'},
          h('td', {class: 'mono', style: {paddingLeft: '28px'}}, rc.name, rc.address ? h('span', {class: 'faint'}, ' ' + rc.address) : null),
          h('td', {class: 'num'}, fmtInt(p.headSeries)),
          h('td', {class: 'num'}, p.samplesPerSecond === null ? '…' : fmtSI(p.samplesPerSecond)),
          limitCell(p.headSeries, p.limits.maxSeries, ' series'),
          limitCell(p.samplesPerSecond || 0, p.limits.ingestionRate, '/s'),
          h('td', {class: 'num'}, p.limits.ingestionBurst ? fmtSI(p.limits.ingestionBurst) : '–'),
          h('td', {class: 'nowrap'}, p.headMaxTime ? fmtRange(p.headMinTime, p.headMaxTime) : '–'),
          h('td', {class: 'num'}, String(p.blocks)), h('td')));
      }
    }
  }
  body.append(h('div', {class: 'card'}, h('div', {class: 'card-body flush scroll'},
    h('table', {class: 'data tenants'},
      h('thead', null, h('tr', null, h('th', null, 'Tenant'), h('th', {class: 'num'}, 'Head series'), h('th', {class: 'num'}, 'Samples/s'),
        h('th', {class: 'num', title: 'max_series per receiver, and the use of the fullest receiver'}, 'Series limit'),
        h('th', {class: 'num', title: 'ingestion_rate per receiver'}, 'Rate limit'), h('th', {class: 'num'}, 'Burst'),
        h('th', null, 'Head time range'), h('th', {class: 'num', title: 'Blocks on local disk'}, 'Local blocks'),
        cfg.tenantScope === 'cluster' ? h('th', {class: 'num'}, 'Receivers') : null)),
      h('tbody', null, rows)))),
  h('p', {class: 'muted'}, 'Limits apply per receiver (--receive.limits-config-file): a tenant writing through N receivers may reach N times the rate. Bars show the use of the fullest receiver.'));
}
