// The traffic-matrix view: a canvas heat map of the controller's smoothed VM × VM matrix
// (GET /api/v1/matrix; rows send, columns receive), in the order the operator picks
// (matrix-order.js), with a readout of the cell under the pointer.
import { rate } from './format.js';
import { heatColour, matrixOrder } from './matrix-order.js';
import { state } from './state.js';

/** Cells at least this big get the VMs' names along the axes. */
const NAMED_CELL = 12;
const LABEL_MARGIN = 78;
const EMPTY = '#f8fafc';
const DIAGONAL = '#e2e8f0';

/** What was drawn, for the pointer readout (and the browser test: window.vnetMatrix). */
export const matrixView = { order: 'structure', macs: [], cell: 0, x0: 0, y0: 0, max: 0, rates: new Map(), matrix: null };

/** The latest GET /api/v1/matrix answer. */
export function setMatrix(m) {
  matrixView.matrix = m;
}

function vmName(mac) {
  const v = state.vms.get(mac);
  return v && v.name ? v.name : mac.slice(-5);
}

/** The VMs the heat map shows (the page's VMs) with their sites, for ordering. */
function matrixVms() {
  return [...state.vms.values()].map((v) => ({
    mac: v.mac,
    name: v.name ?? v.mac,
    host: v.host,
    site: v.host !== null ? state.hosts.get(v.host)?.site ?? null : null,
  }));
}

/** Draw the heat map into #matrix-canvas, sized to its panel. */
export function renderMatrix() {
  const canvas = document.getElementById('matrix-canvas');
  const wrap = canvas.parentElement;
  const traffic = matrixView.matrix?.edges ?? [];
  matrixView.order = document.getElementById('matrix-order').value;
  matrixView.macs = matrixOrder(matrixView.order, matrixVms(), state.topology, traffic);
  matrixView.rates = new Map(traffic.map((t) => [`${t.src}>${t.dst}`, t.bytesPerSec]));
  matrixView.max = Math.max(0, ...traffic.map((t) => t.bytesPerSec));
  const n = matrixView.macs.length;
  const dpr = window.devicePixelRatio || 1;
  const w = wrap.clientWidth;
  const h = wrap.clientHeight;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const side = Math.min(w, h) - 16;
  let cell = n === 0 ? 0 : Math.max(1, Math.floor(side / n));
  const named = cell >= NAMED_CELL || (n > 0 && Math.floor((side - LABEL_MARGIN) / n) >= NAMED_CELL);
  if (named) cell = Math.floor((side - LABEL_MARGIN) / n);
  const margin = named ? LABEL_MARGIN : 0;
  Object.assign(matrixView, { cell, x0: Math.floor((w - n * cell - margin) / 2) + margin, y0: 8 + margin });
  Object.assign(canvas.dataset, { order: matrixView.order, cells: String(n), cell: String(cell), x0: String(matrixView.x0), y0: String(matrixView.y0) });
  document.getElementById('matrix-empty').hidden = n > 0;
  if (n === 0) return;
  drawCells(ctx, n, cell);
  if (named) drawNames(ctx, n, cell);
  document.getElementById('matrix-scale').textContent = matrixView.max > 0
    ? `busiest ${rate(matrixView.max)} · log scale over 3 decades · rows send, columns receive`
    : 'no traffic measured yet';
}

function drawCells(ctx, n, cell) {
  const { x0, y0, macs, rates, max } = matrixView;
  ctx.fillStyle = EMPTY;
  ctx.fillRect(x0, y0, n * cell, n * cell);
  const index = new Map(macs.map((m, i) => [m, i]));
  ctx.fillStyle = DIAGONAL;
  for (let i = 0; i < n; i++) ctx.fillRect(x0 + i * cell, y0 + i * cell, cell, cell);
  for (const [key, v] of rates) {
    const [src, dst] = key.split('>');
    const i = index.get(src);
    const j = index.get(dst);
    const colour = heatColour(v, max);
    if (i === undefined || j === undefined || colour === null) continue;
    ctx.fillStyle = colour;
    ctx.fillRect(x0 + j * cell, y0 + i * cell, cell, cell);
  }
  if (cell >= 6) {
    ctx.strokeStyle = 'rgba(255,255,255,0.7)';
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let k = 0; k <= n; k++) {
      ctx.moveTo(x0 + k * cell + 0.5, y0);
      ctx.lineTo(x0 + k * cell + 0.5, y0 + n * cell);
      ctx.moveTo(x0, y0 + k * cell + 0.5);
      ctx.lineTo(x0 + n * cell, y0 + k * cell + 0.5);
    }
    ctx.stroke();
  }
  ctx.strokeStyle = '#cbd5e1';
  ctx.strokeRect(x0 - 0.5, y0 - 0.5, n * cell + 1, n * cell + 1);
}

function drawNames(ctx, n, cell) {
  const { x0, y0, macs } = matrixView;
  ctx.fillStyle = '#374151';
  ctx.font = `${Math.min(12, cell - 2)}px system-ui, sans-serif`;
  ctx.textBaseline = 'middle';
  ctx.textAlign = 'right';
  for (let i = 0; i < n; i++) ctx.fillText(vmName(macs[i]).slice(0, 12), x0 - 4, y0 + (i + 0.5) * cell, LABEL_MARGIN - 6);
  ctx.save();
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = 'left';
  for (let j = 0; j < n; j++) ctx.fillText(vmName(macs[j]).slice(0, 12), -(y0 - 4), x0 + (j + 0.5) * cell, LABEL_MARGIN - 6);
  ctx.restore();
}

/** The readout for the cell under the pointer (canvas coordinates in CSS pixels). */
export function readoutAt(x, y) {
  const { x0, y0, cell, macs, rates } = matrixView;
  const el = document.getElementById('matrix-readout');
  const j = Math.floor((x - x0) / cell);
  const i = Math.floor((y - y0) / cell);
  if (cell === 0 || i < 0 || j < 0 || i >= macs.length || j >= macs.length) {
    el.textContent = 'point at a cell: sender → receiver';
    delete el.dataset.src;
    delete el.dataset.dst;
    return;
  }
  const src = macs[i];
  const dst = macs[j];
  const v = rates.get(`${src}>${dst}`) ?? 0;
  Object.assign(el.dataset, { src, dst, bytesPerSec: String(v) });
  el.textContent = `${vmName(src)} → ${vmName(dst)}: ${v > 0 ? rate(v) : 'no traffic'}`;
}
