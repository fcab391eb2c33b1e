// Your model: input -> every layer's feature maps (filter k beside map k) -> probabilities;
// click a unit for its receptive field on the input and the kernel that made it.
"use strict";

(function () {
  const $ = id => document.getElementById(id);
  const state = {uploadId: null, model: null, result: null, version: 0};
  const MAP_CSS = 64;   // displayed width of a feature map, in CSS pixels

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // A conv filter (in, kh, kw) as a grid of in-channel tiles, one canvas pixel per weight.
  function filterCanvas(weights, bound) {
    const n = weights.length, kh = weights[0].length, kw = weights[0][0].length;
    const cols = Math.ceil(Math.sqrt(n)), rows = Math.ceil(n / cols);
    const h = rows * (kh + 1) - 1, w = cols * (kw + 1) - 1;
    const grid = [];
    for (let i = 0; i < h; i++) grid.push(new Array(w).fill(NaN));
    weights.forEach((tile, t) => {
      const top = Math.floor(t / cols) * (kh + 1), left = (t % cols) * (kw + 1);
      for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) grid[top + i][left + j] = tile[i][j];
    });
    const canvas = el("canvas", "filter");
    cnn.drawArray(canvas, grid, v => Number.isNaN(v) ? [200, 200, 200] : cnn.signedColour(v, bound));
    canvas.style.width = Math.max(2 * w, Math.round(MAP_CSS * w / Math.max(w, h) / 1.5)) + "px";
    canvas.title = `filter: ${n} input channel${n > 1 ? "s" : ""} of ${kh}×${kw}`;
    return canvas;
  }

  function maxAbs(nested) {
    let m = 0;
    const walk = a => { for (const v of a) { if (Array.isArray(v)) walk(v); else m = Math.max(m, Math.abs(v)); } };
    walk(nested);
    return m;
  }

  function renderLayer(layer, index) {
    const box = el("div", "layer");
    box.dataset.layer = index;
    box.appendChild(el("h3", null, `${index}. ${layer.name} · ${layer.kind} · output ${layer.shape.join("×")}` +
                                   ` · colour scale ±${cnn.format(layer.scale, 3)}`));
    const units = el("div", "units");
    const scale = layer.scale > 0 ? layer.scale : 1;
    if (layer.maps) {
      const filterBound = layer.filters ? maxAbs(layer.filters) : 0;
      layer.maps.forEach((map, k) => {
        const unit = el("div", "unit");
        unit.appendChild(el("span", "k", String(k)));
        if (layer.filters) unit.appendChild(filterCanvas(layer.filters[k], filterBound));
        const canvas = el("canvas", "map");
        cnn.drawArray(canvas, map, v => cnn.signedColour(v, scale));
        canvas.dataset.layer = index; canvas.dataset.channel = k;
        canvas.style.width = Math.max(MAP_CSS, 4 * map[0].length) + "px";
        canvas.title = `${layer.name} map ${k}`;
        canvas.addEventListener("click", e => pick(index, k, ...cnn.pixelAt(canvas, e)));
        unit.appendChild(canvas);
        units.appendChild(unit);
      });
    } else {
      const canvas = el("canvas", "vector");
      cnn.drawArray(canvas, [layer.vector], v => cnn.signedColour(v, scale));
      canvas.dataset.layer = index; canvas.dataset.vector = "1";
      canvas.style.width = Math.min(900, Math.max(120, 6 * layer.vector.length)) + "px";
      canvas.addEventListener("click", e => pick(index, cnn.pixelAt(canvas, e)[1], 0, 0));
      units.appendChild(canvas);
    }
    box.appendChild(units);
    return box;
  }

  function renderProbabilities(result) {
    const best = result.probabilities.indexOf(Math.max(...result.probabilities));
    $("m-probs").replaceChildren(...result.probabilities.map((p, k) => {
      const row = el("div", "prob");
      row.dataset.cls = k;
      row.appendChild(el("span", "name", result.classes[k]));
      const bar = el("span", "bar");
      bar.style.width = Math.round(160 * p) + "px";
      row.appendChild(bar);
      row.appendChild(el("span", k === best ? "value best" : "value", (100 * p).toFixed(1) + "%"));
      return row;
    }));
  }

  async function pick(layer, channel, row, col) {
    for (const old of document.querySelectorAll(".picked")) old.classList.remove("picked");
    const picked = document.querySelector(`canvas[data-layer="${layer}"][data-channel="${channel}"]`);
    if (picked) picked.parentElement.classList.add("picked");
    let unit;
    try { unit = await cnn.api("/api/model/unit", {layer, channel, row, col}); }
    catch (err) { cnn.showError(err); return; }
    const f = unit.receptive_field, lay = state.result.layers[layer];
    const value = lay.maps ? lay.maps[channel][row][col] : lay.vector[channel];
    const where = lay.maps ? `map ${channel} at (row ${row}, col ${col})` : `unit ${channel}`;
    $("m-unit-text").textContent = `${lay.name} ${where} = ${cnn.format(value, 4)}. ` +
      (f.whole ? "It depends on the whole input (a dense layer came before)." :
       `Receptive field: input rows ${f.rows[0]}–${f.rows[1]}, cols ${f.cols[0]}–${f.cols[1]} ` +
       `(${unit.size[0]}×${unit.size[1]}` +
       (f.padding ? "; part of its window lies on zero padding" : "") + ").");
    cnn.placeBox($("m-field-box"), $("m-input"), f.rows, f.cols);
    const holder = $("m-unit-kernel");
    holder.replaceChildren();
    if (unit.kernel) {
      holder.appendChild(el("p", "dim", `made by filter ${channel} of ${unit.kernel.name}` +
        (unit.kernel.bias !== null ? `, bias ${cnn.format(unit.kernel.bias, 4)}` : "") +
        " (one table per input channel):"));
      const stack = el("div", "kernel-stack");
      unit.kernel.weights.slice(0, 8).forEach((tile, c) => {
        const fig = el("figure");
        fig.appendChild(el("figcaption", null, `in ${c}`));
        const table = el("table", "numbers");
        cnn.fillTable(table, tile, 3);
        fig.appendChild(table);
        stack.appendChild(fig);
      });
      holder.appendChild(stack);
      if (unit.kernel.weights.length > 8)
        holder.appendChild(el("p", "dim", `… and ${unit.kernel.weights.length - 8} more input channels`));
    }
    $("m-unit").dataset.layer = layer; $("m-unit").dataset.channel = channel;
  }

  async function run() {
    const version = ++state.version;
    let result;
    const image = cnn.imageSpec($("m-source").value, $("m-index").value, state.uploadId);
    try { result = await cnn.api("/api/model/forward", {image}); cnn.showError(null); }
    catch (err) { cnn.showError(err); return; }
    if (version !== state.version) return;
    state.result = result;
    cnn.drawImage($("m-input"), result.input);
    $("m-input-shape").textContent = result.input.map(String).length ?
      `${result.input.length}×${result.input[0].length}×${result.input[0][0].length}` : "";
    $("m-label").textContent = result.label !== null ? `label: ${result.label}` : "";
    $("m-field-box").hidden = true;
    $("m-layers").replaceChildren(...result.layers.map(renderLayer));
    renderProbabilities(result);
    document.body.dataset.modelVersion = String(version);
  }

  cnn.info.then(async info => {
    const model = await cnn.api("/api/model");
    state.model = model;
    $("m-title").textContent = model.trained ?
      `${model.name}, trained: ${model.source} — input ${model.input_shape.join("×")}, ${model.classes.length} classes` :
      `An untrained ${model.name} (random weights, input ${model.input_shape.join("×")}): ` +
      "its maps show what random filters do. Train one (cnnkit train) and run cnnkit serve RUN_DIR to see yours.";
    $("m-title").classList.toggle("error", !model.trained);
    cnn.fillSources($("m-source"), info);
    if (info.datasets["digits"]) $("m-source").value = "digits";
    for (const id of ["m-source", "m-index"]) $(id).addEventListener("change", run);
    $("m-upload").addEventListener("change", async () => {
      const file = $("m-upload").files[0];
      if (!file) return;
      try {
        state.uploadId = (await cnn.upload(file)).id;
        if (![...$("m-source").options].some(o => o.value === "upload")) $("m-source").add(new Option("uploaded image", "upload"));
        $("m-source").value = "upload";
        run();
      } catch (err) { cnn.showError(err); }
    });
    run();
  }).catch(cnn.showError);
})();
