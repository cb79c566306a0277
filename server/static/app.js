// Sonorant's page: streams speech over the WebSocket /v1/tts/stream, plays it with Web Audio as it
// arrives, highlights each word at its timestamp, and offers the whole result as a WAV file.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { ctx: null, socket: null, rate: 16000, pcm: [], segments: [], words: [], nextTime: 0,
                received: 0, frame: 0, url: null };
window.sonorant = state;  // for tests and the curious: bytes received, words, segments

function apiKey() { return $("api-key").value.trim(); }
function headers() { const key = apiKey(); return key ? { Authorization: `Bearer ${key}` } : {}; }

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function errorText(response) {
  try { return (await response.json()).error.message; } catch (_) { return `HTTP ${response.status}`; }
}

async function loadVoices(select) {
  const response = await fetch("/v1/voices", { headers: headers() });
  if (!response.ok) { setStatus(`Voices: ${await errorText(response)}`, true); return; }
  const voices = (await response.json()).data;
  $("voice").replaceChildren(...voices.filter((v) => !v.damaged).map((v) => {
    const option = document.createElement("option");
    option.value = v.id;
    option.textContent = v.source === "bundle" ? `${v.name} (model)` : v.name;
    return option;
  }));
  if (select) $("voice").value = select;
  setStatus("Ready.");
}

// Audio time t (seconds of this utterance) -> AudioContext time, across any gaps from late chunks.
function contextTime(t) {
  let segment = state.segments[0];
  for (const s of state.segments) if (s.audio <= t) segment = s;
  return segment ? segment.ctx + (t - segment.audio) : Infinity;
}

function play(int16) {
  const floats = new Float32Array(int16.length);
  for (let i = 0; i < int16.length; i++) floats[i] = int16[i] / 32768;
  const buffer = state.ctx.createBuffer(1, floats.length, state.rate);
  buffer.copyToChannel(floats, 0);
  const source = state.ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(state.ctx.destination);
  const audioAt = state.pcm.reduce((n, c) => n + c.length, 0) / state.rate;
  const earliest = state.ctx.currentTime + 0.05;
  if (state.nextTime < earliest) {  // first chunk, or the stream fell behind: start a new segment
    state.nextTime = earliest;
    state.segments.push({ audio: audioAt, ctx: earliest });
  }
  source.start(state.nextTime);
  state.nextTime += buffer.duration;
  state.pcm.push(int16);
}

function addWords(words) {
  for (const w of words) {
    const span = document.createElement("span");
    span.textContent = w.word;
    span.dataset.start = w.start;
    span.dataset.end = w.end;
    $("words").append(span, " ");
    state.words.push({ ...w, span });
  }
}

function highlight() {
  if (state.ctx) {
    const now = state.ctx.currentTime;
    for (const w of state.words) {
      const active = contextTime(w.start) <= now && now < contextTime(w.end);
      w.span.classList.toggle("active", active);
      w.span.classList.toggle("spoken", !active && contextTime(w.end) <= now);
    }
  }
  state.frame = requestAnimationFrame(highlight);
}

function wav(chunks, rate) {
  const samples = chunks.reduce((n, c) => n + c.length, 0);
  const view = new DataView(new ArrayBuffer(44 + 2 * samples));
  const text = (offset, s) => [...s].forEach((ch, i) => view.setUint8(offset + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * samples, true); text(8, "WAVEfmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * samples, true);
  let offset = 44;
  for (const chunk of chunks) for (const s of chunk) { view.setInt16(offset, s, true); offset += 2; }
  return new Blob([view.buffer], { type: "audio/wav" });
}

function finish(message, isError = false) {
  $("speak").disabled = false;
  $("stop").disabled = true;
  state.socket = null;
  if (state.pcm.length) {
    const blob = wav(state.pcm, state.rate);
    if (state.url) URL.revokeObjectURL(state.url);
    state.url = URL.createObjectURL(blob);
    $("result").src = state.url;
    $("result").dataset.bytes = String(blob.size);
    $("download").href = state.url;
    $("download").hidden = false;
  }
  setStatus(message, isError);
}

function speak() {
  const text = $("text").value;
  if (!text.trim()) { setStatus("Type something to say.", true); return; }
  state.ctx = state.ctx || new AudioContext();
  state.ctx.resume();
  Object.assign(state, { pcm: [], segments: [], words: [], nextTime: 0, received: 0 });
  $("words").replaceChildren();
  $("download").hidden = true;
  $("speak").disabled = true;
  $("stop").disabled = false;
  setStatus("Connecting…");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const key = apiKey() ? `?api_key=${encodeURIComponent(apiKey())}` : "";
  const socket = new WebSocket(`${scheme}://${location.host}/v1/tts/stream${key}`);
  socket.binaryType = "arraybuffer";
  state.socket = socket;
  let done = false;
  socket.onopen = () => {
    socket.send(JSON.stringify({ type: "start", voice: $("voice").value || null, speed: Number($("speed").value) }));
    socket.send(JSON.stringify({ type: "text", text }));
    socket.send(JSON.stringify({ type: "end" }));
  };
  socket.onmessage = (event) => {
    if (event.data instanceof ArrayBuffer) {
      state.received += event.data.byteLength;
      play(new Int16Array(event.data));
      setStatus(`Speaking… ${(state.received / 2 / state.rate).toFixed(1)} s received`);
      return;
    }
    const message = JSON.parse(event.data);
    if (message.type === "ready") state.rate = message.sample_rate;
    else if (message.type === "words") addWords(message.words);
    else if (message.type === "done") { done = true; finish(`Done: ${message.audio_seconds.toFixed(2)} s of audio.`); }
    else if (message.type === "error") { done = true; finish(message.error.message, true); }
  };
  socket.onclose = (event) => {
    if (!done) finish(event.code === 1008 ? "Refused: check the API key." : "Connection closed.", event.code !== 1000);
  };
}

function stop() {
  if (state.socket) state.socket.close();
  if (state.ctx) state.ctx.suspend().then(() => { state.ctx.close(); state.ctx = null; });
}

async function addVoice() {
  const name = $("voice-name").value.trim();
  const file = $("voice-file").files[0];
  if (!name || !file) { setStatus("A voice needs a name and a file.", true); return; }
  const form = new FormData();
  form.append("name", name);
  form.append("file", file);
  if ($("voice-text").value.trim()) form.append("text", $("voice-text").value.trim());
  setStatus("Adding the voice…");
  const response = await fetch("/v1/voices", { method: "POST", body: form, headers: headers() });
  if (!response.ok) { setStatus(`Voice not added: ${await errorText(response)}`, true); return; }
  await loadVoices(name);
  setStatus(`Voice ${name} added.`);
}

$("speed").addEventListener("input", () => { $("speed-value").textContent = Number($("speed").value).toFixed(2); });
$("speak").addEventListener("click", speak);
$("stop").addEventListener("click", stop);
$("voice-add").addEventListener("click", addVoice);
$("api-key").value = localStorage.getItem("sonorant-api-key") || "";
$("api-key").addEventListener("change", () => { localStorage.setItem("sonorant-api-key", apiKey()); loadVoices(); });
highlight();
loadVoices();
