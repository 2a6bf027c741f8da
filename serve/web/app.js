// The browser client of the native protocol (see docs/serve.md): microphone -> PCM16 16 kHz frames,
// agent audio played back as it arrives, flushed on "clear" (barge-in).
"use strict";
const RATE = 16000;
const state = { session: null, transcripts: [], events: [], errors: [], audioBytes: 0, clears: 0,
                closed: false, closeCode: null, closeReason: "", end: null, framesSent: 0 };
window.madsState = state;
let ws = null, ctx = null, stream = null, node = null, playAt = 0, playing = [];

const $ = (id) => document.getElementById(id);
function status(text) { $("status").textContent = text; }
function line(cls, text) {
  const d = document.createElement("div");
  d.className = "turn " + cls;
  d.textContent = text;
  $("log").appendChild(d);
  return d;
}

function playPcm(buf) {
  const pcm = new Int16Array(buf);
  if (!pcm.length) return;
  const audio = ctx.createBuffer(1, pcm.length, RATE);
  const ch = audio.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
  const src = ctx.createBufferSource();
  src.buffer = audio;
  src.connect(ctx.destination);
  playAt = Math.max(playAt, ctx.currentTime + 0.02);
  src.start(playAt);
  playAt += audio.duration;
  playing.push(src);
  src.onended = () => { playing = playing.filter((s) => s !== src); };
}

function flushPlayback() {
  for (const s of playing) { try { s.stop(); } catch (e) { /* already stopped */ } }
  playing = [];
  playAt = ctx ? ctx.currentTime : 0;
}

function onMessage(ev) {
  if (typeof ev.data !== "string") {
    state.audioBytes += ev.data.byteLength;
    playPcm(ev.data);
    return;
  }
  const msg = JSON.parse(ev.data);
  switch (msg.type) {
    case "session":
      state.session = msg;
      status(`connected: call ${msg.call_id}, ${msg.arm} arm, ${msg.agent.name} (${msg.agent.company})`);
      break;
    case "transcript": {
      state.transcripts.push(msg);
      // a streamed reply is sent again as it grows (final: false, then final): one line per turn
      const text = (msg.role === "agent" ? state.session.agent.name : "You") + ": " + msg.text;
      const shown = document.querySelector(`#log [data-turn="${msg.turn}"]`);
      if (shown) shown.textContent = text;
      else line(msg.role, text).dataset.turn = msg.turn;
      break;
    }
    case "clear":
      state.clears += 1;
      flushPlayback();
      break;
    case "event":
      state.events.push(msg);
      if (msg.name === "outcome") line("sys", "outcome: " + msg.data.outcome);
      break;
    case "error":
      state.errors.push(msg);
      line("sys", "error: " + msg.message);
      break;
    case "end":
      state.end = msg;
      line("sys", "call ended: " + msg.reason);
      break;
  }
}

async function call() {
  $("call").disabled = true;
  status("starting microphone...");
  ctx = new AudioContext({ sampleRate: RATE });
  await ctx.audioWorklet.addModule("/worklet.js");
  stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  const src = ctx.createMediaStreamSource(stream);
  node = new AudioWorkletNode(ctx, "pcm-capture");
  const mute = ctx.createGain();
  mute.gain.value = 0;
  src.connect(node);
  node.connect(mute).connect(ctx.destination);  // keeps the capture node pulled by the graph
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${scheme}//${location.host}/v1/call`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    const start = { type: "start", format: { encoding: "pcm16", sample_rate: RATE, channels: 1 },
                    caller: { id: "web-" + Math.random().toString(36).slice(2, 10), source: "web" } };
    const arm = $("arm").value;
    if (arm) start.arm = arm;
    const token = $("token").value;
    if (token) start.token = token;  // browsers cannot send an Authorization header on a websocket
    ws.send(JSON.stringify(start));
    status("calling...");
  };
  node.port.onmessage = (e) => {
    if (ws && ws.readyState === WebSocket.OPEN && state.session) { ws.send(e.data); state.framesSent += 1; }
  };
  ws.onmessage = onMessage;
  ws.onclose = (e) => {
    state.closed = true; state.closeCode = e.code; state.closeReason = e.reason;
    status(`closed (${e.code}${e.reason ? ": " + e.reason : ""})`);
    stop();
  };
  $("hangup").disabled = false;
}

function stop() {
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null;
  $("call").disabled = false;
  $("hangup").disabled = true;
}

function hangup() {
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify({ type: "hangup" }));
    ws.close(1000, "hangup");
  }
  flushPlayback();
  stop();
}

$("call").onclick = () => call().catch((e) => { state.errors.push({ message: String(e) }); status("error: " + e); stop(); });
$("hangup").onclick = hangup;

// #token=...&arm=...&autostart=1 pre-fills the form (the fragment never reaches the server's logs)
const params = new URLSearchParams(location.hash.slice(1));
if (params.get("token")) $("token").value = params.get("token");
if (params.get("arm")) $("arm").value = params.get("arm");
if (params.get("autostart") === "1") $("call").click();
