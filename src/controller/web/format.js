// How the page writes rates, times and events.
import { state } from './state.js';

export function rate(bytesPerSec) {
  const bits = bytesPerSec * 8;
  if (bits < 1) return '';
  const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s'];
  let v = bits;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

export function vmLabel(mac) {
  const vm = state.vms.get(mac);
  return vm && vm.name ? vm.name : mac.slice(-5);
}

export function describeEvent(e) {
  const p = e.payload;
  switch (e.type) {
    case 'host-changed': return `host ${p.host.id} ${p.host.state}`;
    case 'host-removed': return `host ${p.id} removed`;
    case 'hub-changed': return `hub ${p.hub} ${p.state}${p.previous ? ` (was ${p.previous})` : ''}`;
    case 'spoke-hub-changed': return `${p.host} on hub ${p.hub}${p.previous ? ` (was ${p.previous})` : ''}`;
    case 'vm-changed': return `VM ${vmLabel(p.vm.mac)} on ${p.vm.host ?? '—'} (${p.vm.state})`;
    case 'vm-removed': return `VM ${p.mac} removed`;
    case 'link-changed': return `${p.link.kind} link ${p.link.a}–${p.link.b} ${p.link.state}`;
    case 'link-removed': return `${p.kind} link ${p.a}–${p.b} removed`;
    case 'rules-changed': return `rules on ${p.host} → v${p.version}`;
    case 'topology-changed': return `topology: ${p.topology.class}`;
    case 'migration-changed': return `migration ${vmLabel(p.migration.vm)} → ${p.migration.to}: ${p.migration.phase} ${Math.round(p.migration.progress * 100)}%`;
    case 'placement-changed': return `placement: ${p.placement.moves.length} move(s) proposed`;
    case 'decision': return `decision: ${p.decision.reason}`;
    case 'operator-action': return `${p.actor}: ${p.action}`;
    case 'security': return p.report.kind === 'mac-conflict'
      ? `${p.host}: MAC ${p.report.mac} seen at ${p.report.seenAt}, lives at ${p.report.home} (${p.report.frames} frames)`
      : `${p.host}: port ${p.report.port} ${p.report.limit}, ${p.report.frames} frames dropped`;
    default: return e.type;
  }
}
