/* gpt-live.js: the book's own model, running in the reader's browser.
 *
 * Chapter authors put placeholders in markdown cells:
 *
 *   <div class="gpt-live" data-demo="attention"></div>      (optional: data-text, data-layer, data-head)
 *   <div class="gpt-live" data-demo="generate" data-prompt="Juliet."></div>
 *
 * On a page that has one, this script loads onnxruntime-web (an ES module, from the URL in its
 * own data-ort attribute) and the model that the book's build exported with gptlib.export: an
 * ONNX file whose graph maps token ids [1, T] to logits [1, T, V] and attention [1, L, H, T, T],
 * and the JSON beside it (vocabulary, config, what each head does). The model computes every
 * number; this file only encodes characters, samples (as gptlib.generate.next_token_probs
 * does) and draws. window.__gptLive holds what was computed and drawn, for the browser test.
 *
 * Error messages print characters as Python's repr() does. Which characters repr() escapes
 * depends on the Unicode version of the Python that builds the book, so the build writes that
 * Python's list of non-printable characters beside the model (the script's data-printable
 * attribute), and the page loads it with the model.
 */
(function () {
  "use strict";

  const script = document.currentScript;
  const ORT_URL = script.dataset.ort;
  const META_URL = new URL(script.dataset.model, script.src).href;
  const PRINTABLE_URL = new URL(script.dataset.printable, script.src).href;
  const FORMAT = "gptlib-live/1";
  const PRINTABLE_FORMAT = "python-printable/1";
  const live = (window.__gptLive = {
    model: null, demos: [], ready: null, loadMs: null, nextTokenProbs, sampleFrom, pyRepr, sortByCodePoint,
  });

  // ---------------------------------------------------------------- characters, as Python sees them

  /** The code points where the building Python's str.isprintable() changes, in increasing order:
   *  [first non-printable, first printable after it, next non-printable, ...]. Set by loadModel. */
  let printableBounds = null;

  function isPrintable(code) {
    if (!printableBounds) throw new Error("gpt-live: the table of printable characters has not loaded");
    let low = 0, high = printableBounds.length; // how many bounds are <= code: odd inside a non-printable run
    while (low < high) {
      const mid = (low + high) >> 1;
      if (printableBounds[mid] <= code) low = mid + 1;
      else high = mid;
    }
    return low % 2 === 0;
  }

  const hex = (code, digits) => code.toString(16).padStart(digits, "0");

  /** Python's repr() of a string, as gptlib's error messages print characters: the same quotes
   *  and the same escapes (\xhh, \uhhhh or \Uhhhhhhhh for each character that str.isprintable()
   *  calls non-printable). A JS string is UTF-16, so it is read by code point, as Python reads a str. */
  function pyRepr(text) {
    const chars = [...text];
    const quote = chars.includes("'") && !chars.includes('"') ? '"' : "'";
    const named = { "\t": "\\t", "\n": "\\n", "\r": "\\r" };
    const body = chars.map((c) => {
      const code = c.codePointAt(0);
      if (c === quote || c === "\\") return `\\${c}`;
      if (named[c]) return named[c];
      if (code < 0x20 || code === 0x7f) return `\\x${hex(code, 2)}`;
      if (code < 0x7f || isPrintable(code)) return c;
      if (code <= 0xff) return `\\x${hex(code, 2)}`;
      return code <= 0xffff ? `\\u${hex(code, 4)}` : `\\U${hex(code, 8)}`;
    });
    return quote + body.join("") + quote;
  }

  /** Python's order of strings: by code point. (JS's sort() compares UTF-16 code units, which
   *  puts a character outside the BMP, a surrogate pair from 0xD800, before U+E000 to U+FFFF.) */
  function compareCodePoints(a, b) {
    const x = [...a], y = [...b];
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      const d = x[i].codePointAt(0) - y[i].codePointAt(0);
      if (d) return d;
    }
    return x.length - y.length;
  }

  /** Python's sorted() of strings. */
  function sortByCodePoint(strings) {
    return [...strings].sort(compareCodePoints);
  }

  // ---------------------------------------------------------------- the model

  /** A character as the explorers show it: a space and a newline stay visible. */
  function showChar(c) {
    return { " ": "\u2423", "\n": "\u21b5", "\t": "\u21e5" }[c] || c;
  }

  class LiveModel {
    constructor(ort, session, meta) {
      this.ort = ort;
      this.session = session;
      this.meta = meta;
      this.config = meta.config;
      this.chars = meta.chars;
      this.stoi = new Map(meta.chars.map((c, i) => [c, i]));
      this.queue = Promise.resolve(); // one run at a time: a session does not run twice at once
    }

    /** Characters to ids, with the error of gptlib's CharTokenizer.encode. */
    encode(text) {
      const unknown = sortByCodePoint(new Set([...text].filter((c) => !this.stoi.has(c))));
      if (unknown.length) {
        const shown = unknown.slice(0, 10).map(pyRepr).join(", ");
        throw new Error(`${unknown.length} character(s) not in this tokenizer's vocabulary of ${this.chars.length}: ${shown}`);
      }
      return [...text].map((c) => this.stoi.get(c));
    }

    /** The length check of gptlib's check_token_ids. */
    checkLength(T) {
      const block = this.config.block_size;
      if (T === 0) throw new Error("the text is empty; give at least one character");
      if (T > block) {
        throw new Error(`sequence length ${T} is longer than block_size ${block}; crop the input to its last ${block} tokens`);
      }
    }

    /** One forward pass over ids (T of them): {T, logits [T * V], attention [L * H * T * T]}. */
    run(ids) {
      this.checkLength(ids.length);
      const job = this.queue.then(async () => {
        const idx = new this.ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]);
        const out = await this.session.run({ idx });
        return { T: ids.length, logits: out.logits.data, attention: out.attention.data };
      });
      this.queue = job.catch(() => {});
      return job;
    }

    /** The logits of position t, a Float32Array of V. */
    logitsAt(out, t) {
      const V = this.config.vocab_size;
      return out.logits.subarray(t * V, (t + 1) * V);
    }

    /** The T x T pattern of one head, row by row (row i: how position i attends to each j). */
    pattern(out, layer, head) {
      const T = out.T, start = (layer * this.config.n_head + head) * T * T;
      return out.attention.subarray(start, start + T * T);
    }

    head(layer, head) {
      return this.meta.heads[layer * this.config.n_head + head];
    }
  }

  async function fetchOk(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response;
  }

  async function loadModel() {
    // The model file downloads while onnxruntime-web loads, not after it.
    const metaReady = fetchOk(META_URL).then((r) => r.json());
    const onnxReady = metaReady.then((meta) => fetchOk(new URL(meta.onnx, META_URL).href)).then((r) => r.arrayBuffer());
    const printableReady = fetchOk(PRINTABLE_URL).then((r) => r.json());
    const [ort, meta, onnx, printable] = await Promise.all([import(ORT_URL), metaReady, onnxReady, printableReady]);
    if (meta.format !== FORMAT) throw new Error(`${META_URL} is not a ${FORMAT} file`);
    if (printable.format !== PRINTABLE_FORMAT) throw new Error(`${PRINTABLE_URL} is not a ${PRINTABLE_FORMAT} file`);
    let at = 0; // the file holds the gaps between bounds
    printableBounds = printable.gaps.map((gap) => (at += gap));
    ort.env.wasm.numThreads = 1; // threads need cross-origin isolation, which a static site does not have
    ort.env.wasm.wasmPaths = ORT_URL.slice(0, ORT_URL.lastIndexOf("/") + 1); // the .wasm beside the module
    const session = await ort.InferenceSession.create(new Uint8Array(onnx), { executionProviders: ["wasm"] });
    return new LiveModel(ort, session, meta);
  }

  // ---------------------------------------------------------------- sampling (gptlib.generate)

  function argmax(values) {
    let best = 0;
    for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
    return best;
  }

  /** gptlib.generate.TOP_P_TOLERANCE: a set of tokens reaches p when its mass is within this of
   *  p, so that a rounding error in the running sum does not decide whether a token is kept. */
  const TOP_P_TOLERANCE = 1e-6;
  live.TOP_P_TOLERANCE = TOP_P_TOLERANCE;

  /** gptlib.generate.next_token_probs for one row of logits: temperature, then top-k (every token
   *  tied with the k-th is kept), then top-p (the most likely tokens, until those ranked above a
   *  token reach p). temperature 0 puts all probability on the most likely token (greedy). */
  function nextTokenProbs(logits, temperature = 1, topK = null, topP = null) {
    const V = logits.length;
    if (temperature === 0) {
      const probs = new Array(V).fill(0);
      probs[argmax(logits)] = 1;
      return probs;
    }
    let z = Array.from(logits, (x) => x / temperature);
    if (topK !== null && topK < V) {
      const kth = [...z].sort((a, b) => b - a)[topK - 1]; // the k-th largest
      z = z.map((x) => (x < kth ? -Infinity : x));
    }
    const top = Math.max(...z);
    let probs = z.map((x) => Math.exp(x - top));
    let total = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / total);
    if (topP !== null && topP < 1) {
      const order = probs.map((_, i) => i).sort((a, b) => probs[b] - probs[a]); // tied tokens by index
      // (gptlib's torch.sort promises no order among tied tokens: where a tie straddles p, it may keep another one)
      const kept = new Array(V).fill(0);
      let cumulative = 0;
      for (const i of order) {
        cumulative += probs[i];
        const before = cumulative - probs[i]; // the mass of the tokens ranked above, computed as gptlib does
        if (before < topP - TOP_P_TOLERANCE) kept[i] = probs[i];
      }
      total = kept.reduce((a, b) => a + b, 0);
      probs = kept.map((p) => p / total);
    }
    return probs;
  }

  /** Draw one token from probs with a uniform number u in [0, 1). */
  function sampleFrom(probs, u) {
    let cumulative = 0, last = 0;
    for (let i = 0; i < probs.length; i++) {
      if (probs[i] <= 0) continue;
      cumulative += probs[i];
      last = i;
      if (u < cumulative) return i;
    }
    return last; // u within rounding of 1
  }

  // ---------------------------------------------------------------- small helpers for the page

  function make(tag, attributes = {}, children = []) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (key === "text") el.textContent = value;
      else el.setAttribute(key, value);
    }
    for (const child of children) el.append(child);
    return el;
  }

  function labelled(text, control) {
    return make("label", {}, [make("span", { text }), control]);
  }

  function options(select, count, chosen) {
    for (let i = 0; i < count; i++) select.append(make("option", { value: String(i), text: String(i) }));
    select.value = String(Math.min(Math.max(chosen, 0), count - 1));
  }

  const nextPaint = () => new Promise((resolve) => setTimeout(resolve, 0));

  // ---------------------------------------------------------------- attention explorer

  const MASKED = "#dddddd"; // positions after the query: the causal mask
  const DARK = [8, 48, 107]; // weight 1; weight 0 is white, linear in between

  function weightColour(w) {
    const [r, g, b] = DARK.map((c) => Math.round(255 - (255 - c) * w));
    return `rgb(${r}, ${g}, ${b})`;
  }

  function mountAttention(el, model) {
    const { n_layer, n_head, block_size } = model.config;
    const input = make("input", { type: "text", maxlength: String(block_size), spellcheck: "false", "aria-label": "text" });
    input.value = el.dataset.text || model.meta.default_text;
    const layer = make("select", { class: "gpt-live-layer" });
    const head = make("select", { class: "gpt-live-head" });
    // Start on the head the placeholder names, or else on the first head with a known role.
    const named = model.meta.heads.find((h) => h.role !== "other") || model.meta.heads[0];
    const chosen = "layer" in el.dataset || "head" in el.dataset ? { layer: 0, head: 0 } : named;
    options(layer, n_layer, Number(el.dataset.layer ?? chosen.layer));
    options(head, n_head, Number(el.dataset.head ?? chosen.head));
    const hint = make("p", { class: "gpt-live-hint" });
    const error = make("p", { class: "gpt-live-error", role: "alert" });
    const canvas = make("canvas", { role: "img" });
    const info = make("p", { class: "gpt-live-info", text: "Point at a square to read its weight." });
    el.replaceChildren(
      make("div", { class: "gpt-live-controls" }, [
        make("label", { class: "gpt-live-text" }, [make("span", { text: "Text" }), input]),
        labelled("Layer", layer),
        labelled("Head", head),
      ]),
      hint,
      error,
      make("div", { class: "gpt-live-canvas-box" }, [canvas]),
      make("p", { class: "gpt-live-caption", text: "Row: the character that attends (query). Column: the character it attends to (key). " +
        "Darker is more attention; grey squares are later characters, hidden by the causal mask." }),
      info,
    );
    const demo = { kind: "attention", element: el, output: null, drawn: null, error: null, updates: 0 };

    function draw() {
      const out = demo.output, l = Number(layer.value), h = Number(head.value);
      const weights = model.pattern(out, l, h), T = out.T, chars = [...out.text];
      const width = canvas.parentElement.clientWidth || 300;
      const cell = Math.max(2, Math.min(24, Math.floor((width - 16) / (T + 1))));
      const labels = cell >= 7; // room for a character beside each row and above each column
      const margin = labels ? cell + 4 : 0;
      const size = margin + T * cell, dpr = window.devicePixelRatio || 1;
      canvas.width = size * dpr;
      canvas.height = size * dpr;
      canvas.style.width = canvas.style.height = `${size}px`;
      const ctx = canvas.getContext("2d");
      ctx.scale(dpr, dpr);
      for (let i = 0; i < T; i++) {
        for (let j = 0; j < T; j++) {
          ctx.fillStyle = j > i ? MASKED : weightColour(weights[i * T + j]);
          ctx.fillRect(margin + j * cell, margin + i * cell, cell, cell);
        }
      }
      if (labels) {
        ctx.fillStyle = getComputedStyle(el).color;
        ctx.font = `${Math.min(cell - 1, 14)}px monospace`;
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        chars.forEach((c, i) => {
          ctx.fillText(showChar(c), margin / 2, margin + (i + 0.5) * cell); // rows: queries
          ctx.fillText(showChar(c), margin + (i + 0.5) * cell, margin / 2); // columns: keys
        });
      }
      const role = model.head(l, h);
      canvas.setAttribute("aria-label", `Attention pattern of layer ${l}, head ${h} over "${out.text}"`);
      hint.textContent = describeHead(role, model.meta.role_threshold);
      demo.drawn = { layer: l, head: h, text: out.text, T, cell, margin, dpr, weights: Array.from(weights) };
    }

    async function update() {
      const text = input.value;
      try {
        const ids = model.encode(text);
        const out = await model.run(ids);
        demo.output = { text, ids, ...out };
        demo.error = null;
        error.textContent = "";
        draw();
      } catch (e) {
        demo.error = error.textContent = e.message;
      }
      demo.updates += 1; // how many texts have been run or refused
    }

    let timer = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => (demo.updating = update()), 150);
    });
    layer.addEventListener("change", () => demo.output && draw());
    head.addEventListener("change", () => demo.output && draw());
    canvas.addEventListener("pointermove", (event) => {
      const d = demo.drawn;
      if (!d) return;
      const rect = canvas.getBoundingClientRect();
      const i = Math.floor((event.clientY - rect.top - d.margin) / d.cell), j = Math.floor((event.clientX - rect.left - d.margin) / d.cell);
      if (i < 0 || j < 0 || i >= d.T || j >= d.T) return;
      const chars = [...d.text];
      const pair = `"${showChar(chars[i])}" (position ${i}) to "${showChar(chars[j])}" (position ${j})`;
      info.textContent = j > i ? `${pair}: masked, it comes later` : `${pair}: weight ${d.weights[i * d.T + j].toFixed(3)}`;
    });
    demo.updating = update();
    return demo;
  }

  function describeHead(role, threshold) {
    const scores = `previous-token score ${role.previous_token.toFixed(2)}, induction score (chapter 13) ${role.induction.toFixed(2)}`;
    const where = `Layer ${role.layer}, head ${role.head}`;
    if (role.role === "previous-token") {
      return `${where} is a previous-token head: on held-out Shakespeare it puts ${role.previous_token.toFixed(2)} of each ` +
        `character's attention on the character just before (${scores}).`;
    }
    if (role.role === "induction") {
      return `${where} is an induction head: on random characters repeated twice, it puts ${role.induction.toFixed(2)} of ` +
        `its attention on the character that followed the current one last time (${scores}).`;
    }
    return `${where}: no simple pattern that the book measures (${scores}; a head is named after a pattern from ${threshold}).`;
  }

  // ---------------------------------------------------------------- generation explorer

  function mountGenerate(el, model) {
    const V = model.config.vocab_size, block = model.config.block_size;
    const prompt = make("textarea", { rows: "2", spellcheck: "false", "aria-label": "prompt" });
    prompt.value = el.dataset.prompt || "Romeo.\n"; // a speaker's name, as the corpus writes it
    const temperature = make("input", { type: "range", min: "0", max: "2", step: "0.05", class: "gpt-live-temperature" });
    temperature.value = "0.8";
    const topK = make("input", { type: "number", min: "1", max: String(V), step: "1", class: "gpt-live-top-k" });
    topK.value = String(V);
    const topP = make("input", { type: "range", min: "0.05", max: "1", step: "0.05", class: "gpt-live-top-p" });
    topP.value = "1";
    const count = make("input", { type: "number", min: "1", max: "1000", step: "1", class: "gpt-live-count" });
    count.value = "200";
    const shown = { temperature: make("output"), topP: make("output") };
    const go = make("button", { type: "button", class: "gpt-live-go", text: "Generate" });
    const stop = make("button", { type: "button", class: "gpt-live-stop", text: "Stop" });
    stop.disabled = true;
    const error = make("p", { class: "gpt-live-error", role: "alert" });
    const promptText = make("span", { class: "gpt-live-prompt" });
    const generated = make("span", { class: "gpt-live-generated" });
    const bars = make("div", { class: "gpt-live-bars" });
    const status = make("p", { class: "gpt-live-status" });
    el.replaceChildren(
      make("label", { class: "gpt-live-text" }, [make("span", { text: "Prompt" }), prompt]),
      make("div", { class: "gpt-live-controls" }, [
        make("label", {}, [make("span", { text: "temperature " }), shown.temperature, temperature]),
        labelled(`top-k (${V} = all)`, topK),
        make("label", {}, [make("span", { text: "top-p " }), shown.topP, topP]),
        labelled("characters", count),
        make("span", { class: "gpt-live-buttons" }, [go, stop]),
      ]),
      error,
      make("pre", { class: "gpt-live-output" }, [promptText, generated]),
      make("p", { class: "gpt-live-bars-title", text: "The next character's distribution, the one it is drawn from:" }),
      bars,
      status,
    );
    const showValues = () => {
      shown.temperature.textContent = Number(temperature.value).toFixed(2);
      shown.topP.textContent = Number(topP.value).toFixed(2);
    };
    temperature.addEventListener("input", showValues);
    topP.addEventListener("input", showValues);
    showValues();
    const demo = { kind: "generate", element: el, state: "idle", runs: 0, steps: [], generated: "", msPerChar: null, error: null };

    function drawBars(probs, chosen) {
      const top = probs.map((p, i) => [p, i]).filter(([p]) => p > 0).sort((a, b) => b[0] - a[0]).slice(0, 10);
      bars.replaceChildren(...top.map(([p, i]) => make("div", { class: i === chosen ? "gpt-live-bar gpt-live-chosen" : "gpt-live-bar" }, [
        make("span", { class: "gpt-live-bar-char", text: showChar(model.chars[i]) }),
        make("span", { class: "gpt-live-bar-track" }, [make("span", { class: "gpt-live-bar-fill", style: `width: ${(100 * p).toFixed(1)}%` })]),
        make("span", { class: "gpt-live-bar-value", text: p.toFixed(3) }),
      ])));
    }

    /** The settings, checked as gptlib.generate.next_token_probs checks them. */
    function settings() {
      const t = Number(temperature.value), k = Number(topK.value), p = Number(topP.value), n = Number(count.value);
      if (!(t >= 0)) throw new Error(`temperature must be >= 0, got ${temperature.value}`);
      if (!(Number.isInteger(k) && k >= 1)) throw new Error(`top_k must be an int >= 1, got ${topK.value}`);
      if (!(p > 0 && p <= 1)) throw new Error(`top_p must be in (0, 1], got ${topP.value}`);
      if (!(Number.isInteger(n) && n >= 1 && n <= 1000)) throw new Error(`the number of characters must be a whole number from 1 to 1000, got ${count.value}`);
      return { temperature: t, topK: k, topP: p, n };
    }

    /** The settings and the prompt's ids, or null after showing what is wrong. */
    function readInput() {
      try {
        const s = settings();
        const ids = model.encode(prompt.value);
        if (!ids.length) throw new Error("the prompt is empty; give at least one character");
        demo.error = null;
        error.textContent = "";
        return { s, ids };
      } catch (e) {
        demo.error = error.textContent = e.message;
        return null;
      }
    }

    /** Before generating: the distribution of the character after the prompt, with the current settings. */
    let preview = null; // {prompt, logits}: the model's answer for the last prompt previewed
    let previewTimer = null;
    async function previewNext() {
      const run = demo.runs;
      const input = readInput();
      if (!input) return;
      const { s, ids } = input;
      if (!preview || preview.prompt !== prompt.value) {
        const out = await model.run(ids.slice(-block));
        preview = { prompt: prompt.value, logits: model.logitsAt(out, out.T - 1) };
      }
      if (demo.state === "running" || demo.runs !== run) return; // a generation has taken over the chart
      drawBars(nextTokenProbs(preview.logits, s.temperature, s.topK, s.topP), null);
      status.textContent = "Before generating: the distribution of the character after the prompt.";
    }
    const previewSoon = () => {
      clearTimeout(previewTimer);
      previewTimer = setTimeout(() => (demo.updating = previewNext()), 150);
    };
    for (const control of [prompt, temperature, topK, topP]) control.addEventListener("input", previewSoon);

    async function generate() {
      const input = readInput();
      if (!input) return;
      const { s, ids } = input;
      clearTimeout(previewTimer);
      demo.runs += 1;
      demo.state = "running";
      demo.steps = [];
      demo.generated = "";
      go.disabled = true;
      stop.disabled = false;
      promptText.textContent = prompt.value;
      generated.textContent = "";
      const start = performance.now();
      for (let step = 0; step < s.n && demo.state === "running"; step++) {
        const context = ids.slice(-block); // the last block_size characters, as gptlib.generate crops
        const out = await model.run(context);
        const logits = model.logitsAt(out, out.T - 1);
        const probs = nextTokenProbs(logits, s.temperature, s.topK, s.topP);
        const next = s.temperature === 0 ? argmax(probs) : sampleFrom(probs, Math.random());
        if (step === 0) demo.firstLogits = Array.from(logits);
        demo.steps.push(next);
        ids.push(next);
        demo.generated += model.chars[next];
        generated.textContent = demo.generated;
        drawBars(probs, next);
        demo.msPerChar = (performance.now() - start) / (step + 1);
        status.textContent = `${step + 1} of ${s.n} characters, ${demo.msPerChar.toFixed(1)} ms each`;
        await nextPaint();
      }
      demo.state = "done";
      go.disabled = false;
      stop.disabled = true;
    }

    go.addEventListener("click", () => (demo.running = generate()));
    stop.addEventListener("click", () => (demo.state = "stopping"));
    demo.updating = previewNext();
    return demo;
  }

  // ---------------------------------------------------------------- the page

  /** The ipywidgets explorers (cell tag widget-explorer) need a kernel: hide their dead sliders. */
  function hideDeadWidgets() {
    document.querySelectorAll(".tag_widget-explorer .cell_output").forEach((output) => {
      if (output.style.display === "none") return;
      output.style.display = "none";
      output.after(make("p", { class: "gpt-live-note", text: "In Jupyter this cell draws sliders, which need a running " +
        "kernel. On this page, use the live explorer: it runs the model in your browser." }));
    });
  }

  const MOUNT = { attention: mountAttention, generate: mountGenerate };

  async function start() {
    const places = [...document.querySelectorAll(".gpt-live[data-demo]")];
    if (!places.length) return;
    for (const place of places) {
      place.classList.add("gpt-live-loading");
      place.textContent = "Loading the live model\u2026";
    }
    try {
      const model = (live.model = await loadModel());
      for (const place of places) {
        place.classList.remove("gpt-live-loading");
        const mount = MOUNT[place.dataset.demo];
        if (!mount) {
          place.textContent = `gpt-live: unknown data-demo "${place.dataset.demo}" (attention or generate)`;
          continue;
        }
        live.demos.push(mount(place, model));
      }
      await Promise.all(live.demos.map((demo) => demo.updating));
      hideDeadWidgets();
      live.loadMs = performance.now(); // from the start of the page's navigation
    } catch (e) {
      for (const place of places) place.textContent = `The live explorer could not load: ${e.message}`;
      console.error("gpt-live:", e);
      throw e;
    }
  }

  live.ready = new Promise((resolve) => {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", resolve);
    else resolve();
  }).then(start);
})();
