// The toy explorer of the chapter "The toy Gaussian problem" (notebooks/toy_explorer.py): the iteration of
// lifcore.toy.run in the page's own JavaScript, in float64 and in the same order of operations, so that it
// runs in the published book with no kernel (anywidget's ESM, re-executed by @jupyter-widgets/html-manager)
// and in a live Jupyter alike. Constants and update rules: lifcore/toy.py.

const CENTER = [1.0, 1.5];
const COUPLING = 0.7;
const TARGET_X2 = 3.0;
const OPTIMUM = [CENTER[0] - COUPLING * (TARGET_X2 - CENTER[1]), TARGET_X2];
const METHODS = ["alternating", "disjoint", "lagrange", "penalty"];
const EXTENT = [-4, 6, -4, 6]; // x1 from, to; x2 from, to (the chapter's basin maps)

function bump(x1, x2) {
  const d1 = x1 - CENTER[0], d2 = x2 - CENTER[1];
  return Math.exp(-(d1 * d1 + 2 * COUPLING * d1 * d2 + d2 * d2));
}

function ascentGradient(x1, x2) { // grad(-f) = 2 f P (x - u), as lifcore.toy.ascent_gradient
  const d1 = x1 - CENTER[0], d2 = x2 - CENTER[1];
  const twoF = 2.0 * Math.exp(-(d1 * d1 + 2 * COUPLING * d1 * d2 + d2 * d2));
  return [twoF * (d1 + COUPLING * d2), twoF * (COUPLING * d1 + d2)];
}

// lifcore.toy.run for one start: the trajectory [[x1, x2], ...] after 0, every, 2 every, ... iterations
export function run(method, x1, x2, steps, lr, frLr, multiplierLr, rho, rateWeight, every) {
  let multiplier = 0.0;
  const kept = [[x1, x2]];
  for (let i = 1; i <= steps; i++) {
    const [g1, g2] = ascentGradient(x1, x2);
    if (method === "alternating") {
      x1 = x1 - lr * g1;
      x2 = x2 - lr * g2;
      x2 = x2 - frLr * rateWeight * 2.0 * (x2 - TARGET_X2);
    } else if (method === "disjoint") {
      x2 = x2 - frLr * rateWeight * 2.0 * (x2 - TARGET_X2);
      x1 = x1 - lr * g1;
    } else if (method === "lagrange") {
      const error = x2 - TARGET_X2;
      x1 = x1 - lr * g1;
      x2 = x2 - lr * (g2 + multiplier + rho * error);
      multiplier = multiplier + multiplierLr * error;
    } else {
      x1 = x1 - lr * g1;
      x2 = x2 - lr * (g2 + rateWeight * 2.0 * (x2 - TARGET_X2));
    }
    if (i % every === 0 || i === steps) kept.push([x1, x2]);
  }
  return kept;
}

// lifcore.toy.alternating_stationary_point: bisection on one equation in x2 near 3 (null where it has no root)
export function stationaryPoint(lr, frLr) {
  if (!(frLr > 0 && frLr < 0.5)) return null;
  const k = 1.0 - COUPLING ** 2;
  const residual = (x2) => {
    const d = x2 - CENTER[1];
    return 2 * frLr * (x2 - TARGET_X2) + (1 - 2 * frLr) * lr * 2 * k * d * Math.exp(-k * d * d);
  };
  let low = TARGET_X2 - 1.0, high = TARGET_X2 + 1.0;
  if (residual(low) * residual(high) > 0) return null;
  for (let i = 0; i < 200; i++) {
    const mid = 0.5 * (low + high);
    if (residual(low) * residual(mid) > 0) low = mid; else high = mid;
  }
  const x2 = 0.5 * (low + high);
  return [CENTER[0] - COUPLING * (x2 - CENTER[1]), x2];
}

const SLIDERS = [ // trait, label, step (the range is the widget's `limits`, toy_explorer.py's LIMITS)
  ["x1", "start x1", 0.01],
  ["x2", "start x2", 0.01],
  ["lr", "lr (first optimiser)", 0.0005],
  ["fr_lr", "fr_lr (second optimiser)", 0.005],
  ["multiplier_lr", "multiplier lr (Lagrange)", 0.005],
  ["iterations", "iterations", 10],
];
// every trait the drawing depends on
const TRAITS = ["method", "x1", "x2", "lr", "fr_lr", "multiplier_lr", "rho", "rate_weight", "iterations"];

function render({ model, el }) {
  const size = 360;
  const root = document.createElement("div");
  root.className = "toy-explorer";
  root.style.cssText = "display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start;font:13px sans-serif";
  const canvas = document.createElement("canvas");
  canvas.width = size; canvas.height = size;
  canvas.style.cssText = "border:1px solid #bbb;cursor:crosshair";
  canvas.title = "click to start here";
  const panel = document.createElement("div");
  panel.style.cssText = "display:grid;grid-template-columns:auto 160px auto;gap:4px 8px;align-items:center";
  const method = document.createElement("select");
  method.className = "toy-method";
  for (const m of METHODS) {
    const option = document.createElement("option");
    option.value = m; option.textContent = m;
    method.appendChild(option);
  }
  const methodLabel = document.createElement("label");
  methodLabel.textContent = "method";
  panel.append(methodLabel, method, document.createElement("span"));
  const inputs = {}, shown = {};
  const limits = model.get("limits");
  for (const [name, label, step] of SLIDERS) {
    const [min, max] = limits[name];
    const text = document.createElement("label");
    text.textContent = label;
    const input = document.createElement("input");
    Object.assign(input, { type: "range", min, max, step });
    input.className = `toy-${name.replace("_", "-")}`;
    const value = document.createElement("span");
    value.style.cssText = "font-variant-numeric:tabular-nums;min-width:4em";
    input.addEventListener("input", () => {
      model.set(name, name === "iterations" ? parseInt(input.value, 10) : parseFloat(input.value));
      model.save_changes();
    });
    panel.append(text, input, value);
    inputs[name] = input; shown[name] = value;
  }
  method.addEventListener("change", () => { model.set("method", method.value); model.save_changes(); });
  const result = document.createElement("output");
  result.className = "toy-end";
  result.style.cssText = "grid-column:1 / span 3;margin-top:6px";
  panel.appendChild(result);
  root.append(canvas, panel);
  el.appendChild(root);

  const toPixel = (x1, x2) => [(x1 - EXTENT[0]) / (EXTENT[1] - EXTENT[0]) * size,
                               (EXTENT[3] - x2) / (EXTENT[3] - EXTENT[2]) * size];
  const toPoint = (px, py) => [EXTENT[0] + px / size * (EXTENT[1] - EXTENT[0]), EXTENT[3] - py / size * (EXTENT[3] - EXTENT[2])];

  const background = (() => { // the bump's levels in grey, computed once
    const image = new ImageData(size, size);
    for (let py = 0; py < size; py++) {
      for (let px = 0; px < size; px++) {
        const [x1, x2] = toPoint(px + 0.5, py + 0.5);
        const level = Math.floor(bump(x1, x2) * 12) / 12;
        const grey = 255 - Math.round(150 * level);
        const k = 4 * (py * size + px);
        image.data[k] = image.data[k + 1] = image.data[k + 2] = grey;
        image.data[k + 3] = 255;
      }
    }
    return image;
  })();

  canvas.addEventListener("click", (event) => {
    const box = canvas.getBoundingClientRect();
    const [x1, x2] = toPoint((event.clientX - box.left) * size / box.width, (event.clientY - box.top) * size / box.height);
    model.set("x1", Math.round(x1 * 100) / 100);
    model.set("x2", Math.round(x2 * 100) / 100);
    model.save_changes();
  });

  function marker(ctx, [x1, x2], color, radius, label) {
    const [px, py] = toPixel(x1, x2);
    ctx.fillStyle = color;
    ctx.beginPath(); ctx.arc(px, py, radius, 0, 2 * Math.PI); ctx.fill();
    if (label) { ctx.fillText(label, px + radius + 3, py - radius); }
  }

  function draw() {
    const p = Object.fromEntries(TRAITS.map((name) => [name, model.get(name)]));
    method.value = p.method;
    for (const [name] of SLIDERS) {
      inputs[name].value = p[name];
      shown[name].textContent = name === "iterations" ? String(p[name]) : Number(p[name]).toPrecision(3);
    }
    const every = Math.max(1, Math.ceil(p.iterations / 2000));
    const path = run(p.method, p.x1, p.x2, p.iterations, p.lr, p.fr_lr, p.multiplier_lr, p.rho, p.rate_weight, every);
    const end = path[path.length - 1];
    const distance = Math.hypot(end[0] - OPTIMUM[0], end[1] - OPTIMUM[1]);
    const ctx = canvas.getContext("2d");
    ctx.putImageData(background, 0, 0);
    ctx.font = "11px sans-serif";
    ctx.strokeStyle = "#d62728"; ctx.setLineDash([4, 3]); ctx.lineWidth = 1;
    const [, lineY] = toPixel(0, TARGET_X2);
    ctx.beginPath(); ctx.moveTo(0, lineY); ctx.lineTo(size, lineY); ctx.stroke();
    ctx.setLineDash([]);
    ctx.strokeStyle = "#1f77b4"; ctx.lineWidth = 1.6;
    ctx.beginPath();
    path.forEach(([x1, x2], k) => { const [px, py] = toPixel(x1, x2); if (k === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py); });
    ctx.stroke();
    marker(ctx, path[0], "#1f77b4", 4, "start");
    marker(ctx, OPTIMUM, "#2ca02c", 5, "constrained optimum");
    const fixed = stationaryPoint(p.lr, p.fr_lr);
    if (fixed && p.method === "alternating") marker(ctx, fixed, "#ff7f0e", 4, "");
    marker(ctx, end, "#000", 3, "");
    result.dataset.x1 = String(end[0]);
    result.dataset.x2 = String(end[1]);
    result.dataset.distance = String(distance);
    result.textContent = `${p.method}, ${p.iterations} iterations: ends at (${end[0].toFixed(4)}, ${end[1].toFixed(4)}), `
      + `${distance.toPrecision(3)} from the constrained optimum (${OPTIMUM[0].toFixed(2)}, ${OPTIMUM[1].toFixed(0)})`
      + (fixed && p.method === "alternating" ? `; the two optimisers' stationary point (orange) is (${fixed[0].toFixed(4)}, ${fixed[1].toFixed(4)})` : "");
  }

  for (const name of TRAITS) model.on(`change:${name}`, draw);
  draw();
  return () => { for (const name of TRAITS) model.off(`change:${name}`, draw); };
}

export default { render };
