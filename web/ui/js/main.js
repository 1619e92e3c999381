// Entry point: draws the top bar and the page the server named.
import {cfg, h, clear, settings} from './lib.js';

const logo = () => {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 32 32');
  svg.innerHTML = '<circle cx="16" cy="16" r="15" fill="#0b6e79"/><circle cx="16" cy="16" r="10.5" fill="none" stroke="#f4d58d" stroke-width="4.5" stroke-dasharray="52 6 6 6"/><circle cx="16" cy="16" r="5.5" fill="#5cc8d0"/>';
  return svg;
};

const loaders = {
  '/query': () => import('./query.js'),
  '/stores': () => import('./stores.js'),
  '/ring': () => import('./ring.js'),
  '/tenants': () => import('./tenants.js'),
  '/blocks': () => import('./blocks.js'),
  '/status': () => import('./status.js'),
};

function topbar() {
  const bar = clear(document.getElementById('topbar'));
  const tz = h('button', {class: 'tz', title: 'Show times in UTC or in local time', onclick: () => {
    settings.utc = !settings.utc;
    location.reload();
  }}, settings.utc ? 'UTC' : 'Local time');
  bar.append(
    h('a', {class: 'brand', href: '/'}, logo(), 'Atoll'),
    h('nav', {class: 'nav'}, (cfg.pages || []).map(p =>
      h('a', {href: p.path, class: p.path === cfg.page ? 'active' : null}, p.title))),
    h('div', {class: 'spacer'}),
    h('div', {class: 'who'},
      h('span', {class: 'badge', title: 'The atoll subcommand this process runs'}, 'atoll ' + cfg.component),
      cfg.instance ? h('span', {title: 'Instance'}, cfg.instance) : null,
      cfg.version ? h('span', {class: 'faint'}, 'v' + cfg.version.replace(/^v/, '')) : null),
    tz);
}

async function main() {
  topbar();
  const main = document.getElementById('main');
  const load = loaders[cfg.page];
  if (!load) {
    clear(main).append(h('p', {class: 'muted'}, 'No such page.'));
    return;
  }
  const mod = await load();
  clear(main);
  await mod.render(main);
}

main();
