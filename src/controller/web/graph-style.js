// The cytoscape style sheet. Label policy at scale: a label is drawn only when it would be
// readable on screen (cytoscape's min-zoomed-font-size), VM and host labels are cut to their
// node's slot with an ellipsis (so no two labels overlap at any zoom), and site labels grow as
// the drawing shrinks so the sites stay named in the overview.
import { VM_STEP } from './layout.js';

/** Labels rendered smaller than these (screen px) are not drawn. */
export const MIN_LABEL_PX = { vm: 8, host: 7, edge: 8 };

/**
 * The style sheet for `zoom`, with label sizes multiplied by `k` (VM labels by at most 1.15, so a
 * label stays within its VM's slot of the host's grid).
 */
export function styleSheet(k, zoom) {
  const fs = (px, cap = k) => Math.round(px * Math.min(k, cap) * 10) / 10;
  // Site names stay at least 13 px on screen, up to 4x their normal size.
  const siteFs = Math.min(60, Math.max(fs(15), 13 / Math.max(zoom, 0.01)));
  return [
    { selector: 'node', style: { 'font-family': 'system-ui, sans-serif', color: '#1f2937' } },
    {
      selector: 'node.site',
      style: {
        shape: 'round-rectangle', 'background-color': '#f1f5f9', 'border-width': 1, 'border-color': '#cbd5e1', 'border-style': 'dashed',
        label: 'data(label)', 'text-valign': 'top', 'text-halign': 'center', 'text-margin-y': -6, 'font-size': siteFs, 'font-weight': 600, color: '#475569',
        padding: 22,
      },
    },
    {
      selector: 'node.site.collapsed',
      style: {
        width: 150, height: 80, 'border-style': 'solid', 'border-width': 2, 'background-color': '#e2e8f0',
        'text-valign': 'center', 'text-wrap': 'wrap', 'text-max-width': 140, 'text-margin-y': 0,
      },
    },
    { selector: 'node.site.focus', style: { 'border-color': '#0ea5e9', 'border-width': 2, 'border-style': 'solid' } },
    {
      selector: 'node.host',
      style: {
        shape: 'round-rectangle', 'background-color': '#ffffff', 'border-width': 2, 'border-color': '#0f766e',
        label: 'data(label)', 'text-valign': 'top', 'text-halign': 'center', 'text-margin-y': -4, 'font-size': fs(13), 'font-weight': 600,
        'text-wrap': 'ellipsis', 'text-max-width': 160, 'min-zoomed-font-size': MIN_LABEL_PX.host,
        padding: 14, width: 70, height: 40,
      },
    },
    { selector: 'node.host:childless', style: { 'text-valign': 'center', 'text-margin-y': 0 } },
    { selector: 'node.host.hub', style: { 'border-color': '#1d4ed8', 'border-width': 3, 'background-color': '#eff6ff' } },
    { selector: 'node.host.down', style: { 'border-color': '#dc2626', 'background-color': '#fef2f2', 'border-style': 'dashed' } },
    {
      selector: 'node.vm',
      style: {
        shape: 'ellipse', width: 30, height: 30, 'background-color': '#14b8a6', 'border-width': 2, 'border-color': '#0f766e',
        label: 'data(label)', 'font-size': fs(11, 1.15), 'text-valign': 'bottom', 'text-margin-y': 3, color: '#374151',
        'text-wrap': 'ellipsis', 'text-max-width': VM_STEP - 6, 'min-zoomed-font-size': MIN_LABEL_PX.vm,
      },
    },
    { selector: 'node.vm.centre', style: { 'background-color': '#8b5cf6', 'border-color': '#5b21b6' } },
    { selector: 'node.vm.migrating', style: { 'background-color': '#f59e0b', 'border-color': '#b45309' } },
    // A running migration's progress as a pie over the VM's node (data(progress): 0..100).
    {
      selector: 'node.vm.migrating[progress >= 0]',
      style: { 'pie-size': '100%', 'pie-1-background-color': '#b45309', 'pie-1-background-size': 'data(progress)', 'pie-1-background-opacity': 0.9 },
    },
    { selector: 'node.vm.stopped', style: { 'background-color': '#d1d5db', 'border-color': '#9ca3af' } },
    {
      selector: 'edge.link, edge.link-bundle',
      style: {
        'curve-style': 'bezier', width: 'data(width)', 'line-color': '#64748b', opacity: 0.85,
        label: 'data(label)', 'font-size': fs(11), color: '#334155', 'text-background-color': '#ffffff', 'text-background-opacity': 0.85,
        'text-background-padding': 2, 'text-rotation': 'autorotate', 'min-zoomed-font-size': MIN_LABEL_PX.edge,
      },
    },
    { selector: 'edge.link-bundle', style: { 'line-style': 'solid', opacity: 0.6, 'line-cap': 'round' } },
    { selector: 'edge.link-bundle.has-fast', style: { 'line-color': '#ea580c' } },
    {
      selector: 'edge.fast-path',
      style: { 'line-color': '#ea580c', opacity: 1, 'z-index': 5, 'curve-style': 'unbundled-bezier', 'control-point-distances': 'data(arc)', 'control-point-weights': 0.5 },
    },
    { selector: 'edge.pending, edge.connecting', style: { 'line-style': 'dashed', opacity: 0.7 } },
    { selector: 'edge.down', style: { 'line-style': 'dotted', opacity: 0.5 } },
    {
      selector: 'edge.app',
      style: { 'curve-style': 'unbundled-bezier', 'control-point-distances': 30, width: 'data(width)', 'line-color': '#7c3aed', 'line-style': 'dashed', opacity: 0.55 },
    },
    {
      selector: 'edge.app-bundle',
      style: {
        'curve-style': 'bezier', width: 'data(width)', 'line-color': '#7c3aed', 'line-style': 'solid', opacity: 0.35,
        label: 'data(label)', 'font-size': fs(10), color: '#5b21b6', 'text-rotation': 'autorotate', 'min-zoomed-font-size': MIN_LABEL_PX.edge,
      },
    },
    { selector: 'node:selected, edge:selected', style: { 'underlay-color': '#0ea5e9', 'underlay-opacity': 0.25, 'underlay-padding': 6 } },
    {
      selector: 'edge.migration',
      style: {
        'curve-style': 'unbundled-bezier', 'control-point-distances': 'data(arc)', 'control-point-weights': 0.5,
        width: 2, 'line-color': '#f59e0b', 'line-style': 'dashed',
        'target-arrow-shape': 'triangle', 'target-arrow-color': '#f59e0b', label: 'data(label)', 'font-size': fs(10), color: '#b45309',
        'text-background-color': '#ffffff', 'text-background-opacity': 0.85,
      },
    },
  ];
}
