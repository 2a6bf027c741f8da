// The operators' A/B dashboard: draws GET /v1/dashboard (bearer token from the form) as cards, interval
// plots, a latency histogram with its stages, and the recent calls with transcripts and recordings.
"use strict";
(() => {
  const ARM_COLOURS = { pipeline: "#0b5fa5", audio: "#c25e00" };
  const STAGE_NAMES = { latency_ms: "whole reply latency", endpoint_ms: "end-of-turn wait", asr_ms: "ASR after the turn", ear_ms: "ear after the turn (audio arm)",
                        llm_first_ms: "LLM to first clause", tts_ms: "TTS of first clause", llm_ms: "LLM whole reply",
                        prompt_new_tokens: "prompt tokens not cached" };
  const dash = { data: null, error: null, loads: 0, recordings: {} };
  window.madsDash = dash;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  let timer = null;

  function el(tag, attrs = {}, text = null) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== null) e.textContent = text;
    return e;
  }
  function sv(tag, attrs = {}, text = null) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== null) e.textContent = text;
    return e;
  }
  const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1) + " %");
  const ci = (c) => (c ? ` [${(100 * c[0]).toFixed(1)}, ${(100 * c[1]).toFixed(1)}]` : "");
  const ms = (x) => (x === null || x === undefined ? "–" : Math.round(x).toLocaleString("en") + " ms");
  const auth = () => ({ Authorization: "Bearer " + $("token").value });

  function cards(rep) {
    const box = $("cards");
    box.replaceChildren();
    for (const [arm, s] of Object.entries(rep.arms)) {
      const card = el("div", { class: "card", style: `--arm:${ARM_COLOURS[arm] || "#555"}` });
      card.appendChild(el("h4", {}, arm));
      const dl = el("dl");
      const rows = [
        ["ended calls", `${s.calls}`],
        ["conversion", s.calls ? `${pct(s.conversion_rate)}${ci(s.conversion_ci95)} (${s.conversions})` : "–"],
        ["intention", s.calls ? `${pct(s.intention_rate)}${ci(s.intention_ci95)} (${s.intentions})` : "–"],
        ["caller turns / call", s.avg_turns === null ? "–" : s.avg_turns.toFixed(2)],
        ["latency p50 / p95", s.latency_n ? `${ms(s.latency_p50_ms)} / ${ms(s.latency_p95_ms)} (${s.latency_n} replies)` : "–"],
        ["failed turns", `${s.failed_turns} (${pct(s.failed_share)} of agent turns)`],
        ["barge-ins", `${s.barge_ins}`],
        ["outcomes", Object.entries(s.outcomes).map(([k, v]) => `${k} ${v}`).join(", ") || "–"],
      ];
      for (const [k, v] of rows) { dl.appendChild(el("dt", {}, k)); dl.appendChild(el("dd", {}, v)); }
      card.appendChild(dl);
      box.appendChild(card);
    }
  }

  // one row per arm and metric: the rate as a dot, its interval as a whisker, on a 0-100 % axis
  function rates(rep) {
    const svg = $("rates");
    svg.replaceChildren();
    const W = svg.clientWidth || 800, left = 170, right = 170, rowH = 24;
    const x = (p) => left + p * (W - left - right);
    const rows = [];
    for (const metric of ["conversion", "intention"])
      for (const [arm, s] of Object.entries(rep.arms)) rows.push({ metric, arm, rate: s[metric + "_rate"], ci: s[metric + "_ci95"] });
    const H = rows.length * rowH + 30;
    svg.setAttribute("height", H);
    for (let t = 0; t <= 100; t += 20) {
      svg.appendChild(sv("line", { x1: x(t / 100), x2: x(t / 100), y1: 4, y2: H - 22, stroke: "#e3e3e3" }));
      svg.appendChild(sv("text", { x: x(t / 100), y: H - 6, "text-anchor": "middle" }, t + " %"));
    }
    rows.forEach((r, i) => {
      const y = 14 + i * rowH, colour = ARM_COLOURS[r.arm] || "#555";
      svg.appendChild(sv("text", { x: 4, y: y + 4 }, `${r.metric} · ${r.arm}`));
      if (r.rate === null) { svg.appendChild(sv("text", { x: left, y: y + 4, fill: "#999" }, "no ended calls")); return; }
      if (r.ci) svg.appendChild(sv("line", { x1: x(r.ci[0]), x2: x(r.ci[1]), y1: y, y2: y, stroke: colour, "stroke-width": 3, "class": "whisker" }));
      svg.appendChild(sv("circle", { cx: x(r.rate), cy: y, r: 6, fill: colour }));
      svg.appendChild(sv("text", { x: W - right + 16, y: y + 4 }, pct(r.rate) + ci(r.ci)));
    });
    const t = rep.tests;
    const parts = [];
    if (t.conversion) parts.push(`conversion audio − pipeline ${(100 * t.conversion.difference).toFixed(1)} pts, z = ${t.conversion.z.toFixed(2)}, p = ${t.conversion.p_value.toPrecision(3)} (Fisher exact p = ${t.conversion.fisher_p_value.toPrecision(3)})`);
    if (t.intention) parts.push(`intention ${(100 * t.intention.difference).toFixed(1)} pts, p = ${t.intention.p_value.toPrecision(3)}`);
    $("tests").textContent = parts.length ? parts.join("; ") : "the two-proportion tests need ended calls on both arms";
  }

  // grouped bars: each bin holds one bar per arm, its height the share of that arm's replies
  function latency(lat, rep) {
    const svg = $("latency");
    svg.replaceChildren();
    const arms = Object.keys(lat.counts || {}).filter((a) => lat.counts[a].reduce((p, q) => p + q, 0) > 0);
    if (!lat.width_ms || !arms.length) { svg.setAttribute("height", 24); svg.appendChild(sv("text", { x: 4, y: 16, fill: "#999" }, "no replies yet")); return; }
    const W = svg.clientWidth || 800, H = 190, left = 44, bottom = 36, top = 10;
    svg.setAttribute("height", H);
    const n = lat.edges_ms.length - 1, bw = (W - left - 10) / n;
    const share = {};
    let peak = 0;
    for (const a of arms) { const tot = lat.counts[a].reduce((p, q) => p + q, 0); share[a] = lat.counts[a].map((c) => c / tot); peak = Math.max(peak, ...share[a]); }
    const y = (v) => H - bottom - (v / peak) * (H - bottom - top);
    for (const f of [0, 0.5, 1]) {
      svg.appendChild(sv("line", { x1: left, x2: W - 10, y1: y(f * peak), y2: y(f * peak), stroke: "#e3e3e3" }));
      svg.appendChild(sv("text", { x: left - 6, y: y(f * peak) + 4, "text-anchor": "end" }, Math.round(100 * f * peak) + "%"));
    }
    for (let i = 0; i < n; i++) {
      arms.forEach((a, j) => {
        const h = H - bottom - y(share[a][i]);
        if (h > 0) svg.appendChild(sv("rect", { x: left + i * bw + 2 + (j * (bw - 4)) / arms.length, y: y(share[a][i]), width: Math.max(1, (bw - 4) / arms.length - 1), height: h, fill: ARM_COLOURS[a] || "#555", "class": "bar" }));
      });
      if (n <= 12 || i % 2 === 0) svg.appendChild(sv("text", { x: left + i * bw, y: H - bottom + 14, "text-anchor": "middle" }, (lat.edges_ms[i] / 1000).toString()));
    }
    svg.appendChild(sv("text", { x: left + n * bw, y: H - bottom + 14, "text-anchor": "end" }, (lat.last_bin_open ? "≥ " : "") + (lat.edges_ms[n] / 1000) + " s"));
    arms.forEach((a, j) => {
      const s = rep.arms[a];
      svg.appendChild(sv("rect", { x: left + j * 260, y: H - 14, width: 10, height: 10, fill: ARM_COLOURS[a] || "#555" }));
      svg.appendChild(sv("text", { x: left + 14 + j * 260, y: H - 5 }, `${a}: p50 ${ms(s.latency_p50_ms)}, p95 ${ms(s.latency_p95_ms)}`));
    });
    // where the time goes: p50 / p95 of each stage of the same replies
    const table = $("stages");
    table.replaceChildren();
    const head = el("tr");
    head.appendChild(el("th", {}, "stage (p50 / p95)"));
    for (const a of arms) head.appendChild(el("th", { class: "num" }, a));
    table.appendChild(head);
    for (const [stage, label] of Object.entries(STAGE_NAMES)) {
      if (!arms.some((a) => rep.arms[a].stages[stage].n)) continue;
      const tr = el("tr");
      tr.appendChild(el("td", {}, label));
      for (const a of arms) {
        const st = rep.arms[a].stages[stage];
        const fmt = stage.endsWith("_tokens") ? (v) => Math.round(v) : ms;
        tr.appendChild(el("td", { class: "num" }, st.n ? `${fmt(st.p50)} / ${fmt(st.p95)}` : "–"));
      }
      table.appendChild(tr);
    }
  }

  async function playRecording(call, cell) {
    const r = await fetch(`/v1/calls/${encodeURIComponent(call.id)}/recording`, { headers: auth() });
    if (!r.ok) { cell.appendChild(el("div", { class: "cut" }, `recording: HTTP ${r.status}`)); return; }
    const url = URL.createObjectURL(await r.blob());
    const audio = el("audio", { controls: "", src: url, preload: "metadata" });
    cell.querySelector(".rec").replaceChildren(audio);
    dash.recordings[call.id] = audio;
  }

  function detail(call) {
    const tr = el("tr", { class: "detail" });
    const td = el("td", { colspan: 8 });
    for (const t of call.turns) {
      const line = el("div", { class: "turn " + t.role });
      const who = t.role === "agent" ? "Agent" : "Caller";
      line.textContent = `${t.idx}. ${who}: ${t.text}`;
      if (t.latency_ms !== null && t.role === "agent" && t.idx > 0) line.appendChild(el("span", { class: "muted" }, `  (${ms(t.latency_ms)})`));
      if (t.interrupted) line.appendChild(el("span", { class: "cut" }, `  [cut after ${ms(t.audio_ms)}]`));
      if (t.failed) line.appendChild(el("span", { class: "cut" }, "  [failed: the model said nothing speakable]"));
      td.appendChild(line);
    }
    const rec = el("div", { class: "rec", style: "margin-top:.4rem" });
    if (call.recording) {
      const b = el("button", {}, "Load recording");
      b.onclick = () => playRecording(call, td).catch((e) => { dash.error = String(e); });
      rec.appendChild(b);
    } else rec.appendChild(el("span", { class: "muted" }, "no recording"));
    td.appendChild(rec);
    tr.appendChild(td);
    return tr;
  }

  function calls(list) {
    const table = $("calls");
    table.replaceChildren();
    const head = el("tr");
    for (const [h, cls] of [["started", ""], ["arm", ""], ["outcome", ""], ["caller turns", "num"], ["length", "num"], ["median latency", "num"], ["ended by", ""], ["caller", ""]])
      head.appendChild(el("th", { class: cls }, h));
    table.appendChild(head);
    for (const c of list) {
      const tr = el("tr", { class: "call", "data-call": c.id });
      const lats = c.turns.filter((t) => t.role === "agent" && t.idx > 0 && t.latency_ms !== null).map((t) => t.latency_ms).sort((a, b) => a - b);
      const cells = [
        new Date(c.started_at * 1000).toLocaleString("en-GB", { hour12: false }),
        null,
        (c.outcome || "–") + (c.intention && c.outcome !== "intention" ? " (+intention)" : ""),
        c.user_turns, c.duration_s === null ? c.status : c.duration_s + " s",
        lats.length ? ms(lats[Math.floor(lats.length / 2)]) : "–", c.end_reason || c.status, c.caller_id || "",
      ];
      cells.forEach((v, i) => {
        const td = el("td", { class: [3, 4, 5].includes(i) ? "num" : "" });
        if (i === 1) td.appendChild(el("span", { class: "arm-tag", style: `--arm:${ARM_COLOURS[c.arm] || "#555"}` }, c.arm));
        else td.textContent = v;
        tr.appendChild(td);
      });
      tr.onclick = () => {
        const next = tr.nextSibling;
        if (next && next.classList && next.classList.contains("detail")) next.remove();
        else tr.after(detail(c));
      };
      table.appendChild(tr);
    }
  }

  async function load() {
    $("dashboard").hidden = false;
    const r = await fetch("/v1/dashboard" + ($("dash-requested").checked ? "?include_requested=1" : ""), { headers: auth() });
    if (!r.ok) {
      dash.error = `HTTP ${r.status}`;
      $("dash-status").textContent = r.status === 401 ? "wrong or missing token" : `failed: HTTP ${r.status}`;
      return;
    }
    const open = [...document.querySelectorAll("tr.detail")].map((d) => d.previousSibling && d.previousSibling.dataset.call);
    const data = await r.json();
    dash.data = data; dash.error = null; dash.loads += 1;
    cards(data.report); rates(data.report); latency(data.latency, data.report); calls(data.recent);
    for (const id of open) { const row = document.querySelector(`tr.call[data-call="${id}"]`); if (row && !dash.recordings[id]) row.click(); }
    const rep = data.report, left = rep.requested_left_out;
    $("dash-status").textContent = `${rep.calls} ended calls, ${rep.active_calls} in progress`
      + (left ? ` (${left} whose arm the caller chose left out)` : "") + ` · updated ${new Date().toLocaleTimeString("en-GB")}`;
    const diffs = rep.parity.differences;
    $("dash-parity").textContent = diffs.length ? "The arms differ in more than the ear: " + diffs.join("; ") : "";
  }

  function schedule() {
    clearInterval(timer);
    if ($("dash-auto").checked) timer = setInterval(() => { if (!Object.keys(dash.recordings).length) load().catch((e) => { dash.error = String(e); }); }, 10000);
  }

  // the plots are drawn to the page's width: redraw them when it changes
  window.addEventListener("resize", () => { if (dash.data) { rates(dash.data.report); latency(dash.data.latency, dash.data.report); } });
  $("dash-open").onclick = () => { load().catch((e) => { dash.error = String(e); }); schedule(); };
  $("dash-auto").onchange = schedule;
  $("dash-requested").onchange = () => { load().catch((e) => { dash.error = String(e); }); };
  if (new URLSearchParams(location.hash.slice(1)).get("dashboard") === "1") $("dash-open").click();
})();
