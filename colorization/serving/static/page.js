// The page: upload once, then re-render at another vibrancy (temperature) from the server's cached outputs.
// Vibrancy v maps to the annealed-mean temperature T = 1 - v (T = 1: the mean, muted; T -> 0: the mode, vivid).
"use strict";

const $ = (id) => document.getElementById(id);
// A server with an API key: open the page as /#key=KEY (the fragment never leaves the browser).
const apiKey = new URLSearchParams(location.hash.slice(1)).get("key");
const authHeaders = apiKey ? { "X-API-Key": apiKey } : {};
const state = { models: {}, file: null, resultId: null, resultUrl: null, busy: 0 };

function temperature() {
  return Math.max(0.05, 1 - Number($("vibrancy").value)).toFixed(2);
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function setStatus(text, done) {
  $("status").textContent = text;
  document.body.dataset.state = done ? "done" : "busy";
}

function currentModel() {
  return state.models[$("model").value];
}

function fillDecoders() {
  const model = currentModel();
  $("decoder").innerHTML = "";
  for (const name of model.decoders) {
    const option = new Option(name, name, false, name === model.default_decoder);
    $("decoder").add(option);
  }
  const hasTemperature = model.default_temperature !== null;
  $("vibrancy").disabled = !hasTemperature;
  $("vibrancy-label").title = hasTemperature ? "" : "this model's decoders have no temperature";
  $("vibrancy").value = hasTemperature ? (1 - model.default_temperature).toFixed(2) : $("vibrancy").value;
  $("temperature").textContent = hasTemperature ? "T = " + temperature() : "";
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : JSON.stringify(body);
  } catch (_) {
    return "HTTP " + response.status;
  }
}

function params() {
  const query = new URLSearchParams({ model: $("model").value, decoder: $("decoder").value, format: "png" });
  if (currentModel().default_temperature !== null) query.set("temperature", temperature());
  return query;
}

async function show(response) {
  if (!response.ok) {
    showError(await errorMessage(response));
    setStatus("", true);
    return;
  }
  const blob = await response.blob();
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(blob);
  state.resultId = response.headers.get("X-Colorization-Result-Id");
  const provenance = [response.headers.get("X-Colorization-Model"), response.headers.get("X-Colorization-Decoder")];
  const t = response.headers.get("X-Colorization-Temperature");
  if (t && t !== "none") provenance.push("T = " + t);
  $("provenance").textContent = "colorized: " + provenance.join(", ");
  $("result").dataset.temperature = t || "";
  $("result").dataset.resultId = state.resultId || "";
  await new Promise((resolve) => { $("result").onload = resolve; $("result").onerror = resolve; $("result").src = state.resultUrl; });
  $("download").href = state.resultUrl;
  $("download").download = (state.file ? state.file.name.replace(/\.[^.]*$/, "") : "photo") + "-colorized.png";
  $("download").hidden = false;
  setStatus("done", true);
}

async function upload() {
  if (!state.file) return;
  showError("");
  setStatus("colorizing…", false);
  const form = new FormData();
  form.append("image", state.file, state.file.name);
  try {
    await show(await fetch("v1/colorize?" + params(), { method: "POST", body: form, headers: authHeaders }));
  } catch (error) {
    showError("the server did not answer: " + error);
    setStatus("", true);
  }
}

async function rerender() {
  $("temperature").textContent = currentModel().default_temperature !== null ? "T = " + temperature() : "";
  if (!state.file) return;
  if (!state.resultId) return upload();
  showError("");
  setStatus("re-rendering…", false);
  const query = params();
  query.delete("model");
  const response = await fetch("v1/results/" + encodeURIComponent(state.resultId) + "?" + query, { headers: authHeaders });
  if (response.status === 404) return upload(); // the server's cache let it go: send the photo again
  await show(response);
}

function choose(file) {
  if (!file) return;
  state.file = file;
  state.resultId = null;
  $("original").src = URL.createObjectURL(file);
  upload();
}

async function init() {
  const response = await fetch("v1/models", { headers: authHeaders });
  if (!response.ok) {
    showError(await errorMessage(response));
    return;
  }
  const listing = await response.json();
  for (const model of listing.models) {
    state.models[model.name] = model;
    $("model").add(new Option(model.name + " (" + model.family + ")", model.name, false, model.name === listing.default_model));
  }
  fillDecoders();
  $("model").addEventListener("change", () => { fillDecoders(); state.resultId = null; upload(); });
  $("decoder").addEventListener("change", rerender);
  $("vibrancy").addEventListener("input", () => { $("temperature").textContent = "T = " + temperature(); });
  $("vibrancy").addEventListener("change", rerender);
  $("file").addEventListener("change", (event) => choose(event.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    choose(event.dataTransfer.files[0]);
  });
  document.body.dataset.ready = "true";
}

init();
