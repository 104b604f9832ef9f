// Clinic kiosk page: polls /results, shows the live result, captures frames and uploads photos.
// Plain JavaScript, no libraries, nothing fetched from outside this kiosk.
"use strict";

(function () {
  const body = document.body;
  const maxUpload = Number(body.dataset.maxUpload);
  const maxUploadMb = body.dataset.maxUploadMb;
  const riskThreshold = Number(body.dataset.riskThreshold);
  const uncertainMargin = Number(body.dataset.uncertainMargin);
  const $ = (id) => document.getElementById(id);
  const template = $("result-template");
  const STATUS_TEXT = {
    ok: "Live",
    starting: "Waiting for the camera…",
    stale: "Camera stalled",
    ended: "Camera stopped",
    failed: "Camera failed",
    stopping: "Shutting down",
    offline: "Kiosk not responding",
  };

  const pct = (x) => `${Math.round(x * 100)}%`;
  const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);

  // The big line of a result: the label, or "Retake" / "Uncertain" with advice instead of a guess.
  function headline(p) {
    if (p.quality && p.quality.retake) {
      const issues = (p.quality.issues || []).join(", ");
      return { text: "Retake", advice: `Please take the image again: ${issues || "it is not usable"}.`, uncertain: true };
    }
    if (p.not_lesion) {  // the flag is never dropped: it moves into the advice, which holds for a lesion or not
      const flag = p.flagged ? " The model's malignancy risk for it is high." : "";
      return {
        text: "Not a skin lesion",
        advice: "This does not look like a skin lesion: centre the lesion in the box and take it again. " +
          `If it is a lesion, show it to a clinician.${flag}`,
        uncertain: true,
      };
    }
    if (p.uncertain) {
      const [first, second] = p.top || [];
      const close = first && second && first.probability - second.probability < uncertainMargin;
      const between = close ? `Between ${first.name || first.label} and ${second.name || second.label}: ` : "";
      return { text: "Uncertain", advice: `${between}please retake the image, or ask a clinician.`, uncertain: true };
    }
    return { text: capital(p.label_name || p.label), advice: "", uncertain: false };
  }

  // A result card (verdict, confidence, top-3, risk bar, "Not a diagnosis") from a prediction dict.
  function renderResult(p) {
    const node = template.content.firstElementChild.cloneNode(true);
    const head = headline(p);
    const verdict = node.querySelector(".verdict");
    verdict.textContent = head.text;
    verdict.classList.toggle("uncertain", head.uncertain);
    const advice = node.querySelector(".advice");
    advice.textContent = head.advice;
    advice.hidden = !head.advice;
    node.querySelector(".confidence").textContent =
      `Most likely: ${p.label_name || p.label} (${pct(p.confidence)} confidence)`;
    const list = node.querySelector(".top3");
    for (const item of p.top || []) {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = item.name || item.label;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.style.width = pct(item.probability);
      bar.append(fill);
      const value = document.createElement("span");
      value.className = "pct";
      value.textContent = pct(item.probability);
      li.append(name, bar, value);
      list.append(li);
    }
    const risk = node.querySelector(".risk");
    if (p.risk === null || p.risk === undefined) {
      risk.hidden = true;
    } else {
      // the server's figures: rounded so that "below the threshold" reads true, as on the overlay
      const riskText = p.risk_text || pct(p.risk);
      const thresholdText = p.risk_threshold_text || pct(riskThreshold);
      node.querySelector(".risk-value").textContent = `${riskText} (clinician advised from ${thresholdText})`;
      const fill = node.querySelector(".riskbar .fill");
      fill.style.width = pct(Math.min(Math.max(p.risk, 0), 1));
      fill.classList.toggle("high", Boolean(p.flagged));
      node.querySelector(".riskbar .tick").style.left = pct(riskThreshold);
    }
    node.querySelector(".flag").hidden = !p.flagged;
    if (p.not_lesion) {  // no lesion reading for what is not a lesion: the headline and its advice say it all
      for (const sel of [".confidence", ".top3", ".risk", ".flag"]) node.querySelector(sel).hidden = true;
    }
    return node;
  }

  function localTime(iso) {
    const when = new Date(iso);
    return Number.isNaN(when.getTime()) ? "" : when.toLocaleTimeString();
  }

  let frozenId = "";
  function showFrozen(record) {
    frozenId = record.id;
    document.body.classList.add("asked");
    const slot = $("frozen");
    const img = document.createElement("img");
    img.src = record.image_url;
    img.alt = record.kind === "capture" ? "The captured camera frame" : "The uploaded photo";
    const when = document.createElement("p");
    when.className = "when";
    when.textContent = `${record.kind === "capture" ? "Captured" : "Photo checked"} at ${localTime(record.time)}`;
    slot.replaceChildren(when, img, renderResult(record));
    $("frozen-panel").scrollIntoView({ block: "start" });
  }

  function showMessage(text, kind) {
    const box = $("upload-message");
    box.textContent = text;
    box.className = `message ${kind}`;
    box.hidden = false;
  }

  function renderRecent(records) {
    const list = $("recent");
    const items = records.map((r) => {
      const li = document.createElement("li");
      const img = document.createElement("img");
      img.src = r.image_url;
      img.alt = r.kind === "capture" ? "Captured frame" : "Uploaded photo";
      img.loading = "lazy";
      const what = document.createElement("p");
      what.className = "what";
      what.textContent = headline(r).text;
      const meta = document.createElement("p");
      meta.className = "meta";
      const risk = r.risk === null || r.risk === undefined ? "" : `, risk ${r.risk_text || pct(r.risk)}`;
      meta.textContent = `${r.kind} · ${localTime(r.time)} · ${pct(r.confidence)}${risk}`;
      const nad = document.createElement("p");
      nad.className = "nad-small";
      nad.textContent = "Not a diagnosis";
      li.append(img, what, meta, nad);
      return li;
    });
    list.replaceChildren(...items);
  }

  // The state is announced to screen readers when it changes; the frame rate is only shown.
  function setStatus(state, fps) {
    const text = STATUS_TEXT[state] || state;
    if ($("status").textContent !== text) $("status").textContent = text;
    $("fps").textContent = state === "ok" && fps ? ` · ${fps.toFixed(1)} fps` : "";
    $("status-pill").dataset.state = state;
  }

  function noLiveResult(state) {
    const p = document.createElement("p");
    p.className = "placeholder no-live";
    const why = state === "starting" ? "Waiting for the first frame…" : `${STATUS_TEXT[state] || state}.`;
    p.textContent = state === "starting" ? why : `No live result: ${why.toLowerCase()}`;
    return p;
  }

  // Nothing of a patient outlives their result: the frozen card, its image and the upload line all go.
  function clearFrozen() {
    const p = document.createElement("p");
    p.className = "placeholder";
    p.textContent = "Press Capture this frame, or check a photo.";
    $("frozen").replaceChildren(p);
    $("upload-message").hidden = true;
    $("upload-message").textContent = "";
    document.body.classList.remove("asked");
    frozenId = "";
  }

  let cameraLive = false;
  function setCapture(enabled) {
    const button = $("capture");
    button.disabled = !enabled;
    button.title = enabled ? "" : "No live camera image to capture";
  }

  let lastLive = "";
  let lastRecent = "";
  async function poll() {
    if (document.hidden) return;
    try {
      const response = await fetch("results", { cache: "no-store" });
      if (!response.ok) throw new Error(String(response.status));
      const data = await response.json();
      setStatus(data.status, data.fps);
      cameraLive = data.status === "ok";
      setCapture(cameraLive);
      const liveKey = JSON.stringify(data.live);
      if (liveKey !== lastLive) {
        // no live result once the camera stalled, stopped or failed: never an old one as if current
        $("live-result").replaceChildren(data.live ? renderResult(data.live) : noLiveResult(data.status));
        lastLive = liveKey;
      }
      const recentKey = data.recent.map((r) => r.id).join(",");
      if (recentKey !== lastRecent) {
        renderRecent(data.recent);
        if (frozenId && !data.recent.some((r) => r.id === frozenId)) clearFrozen(); // expired, or cleared
        lastRecent = recentKey;
      }
    } catch (err) {
      setStatus("offline", 0);
      cameraLive = false;
      setCapture(false);
    }
  }

  async function errorText(response) {
    try {
      const data = await response.json();
      if (data && data.error) return data.error;
    } catch (err) { /* not JSON: fall through */ }
    if (response.status === 413) return `That photo is larger than ${maxUploadMb} MB; send a smaller one.`;
    return `The kiosk could not check this (error ${response.status}).`;
  }

  $("capture").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      const response = await fetch("capture", { method: "POST" });
      if (!response.ok) {
        showMessage(await errorText(response), "error");
        return;
      }
      showFrozen(await response.json());
      poll();
    } catch (err) {
      showMessage("The kiosk is not responding; try again in a moment.", "error");
    } finally {
      setCapture(cameraLive);
    }
  });

  $("upload").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const input = $("photo");
    const file = input.files[0];
    if (!file) {
      showMessage("Choose a photo first.", "error");
      return;
    }
    if (file.size === 0) {
      showMessage("That file is empty; choose a photo.", "error");
      return;
    }
    if (file.size > maxUpload) {
      showMessage(`That photo is larger than ${maxUploadMb} MB; send a smaller one.`, "error");
      return;
    }
    const button = form.querySelector("button");
    button.disabled = true;
    showMessage("Checking the photo…", "info");
    try {
      const data = new FormData();
      data.append("image", file);
      const response = await fetch("classify", { method: "POST", body: data });
      if (!response.ok) {
        showMessage(await errorText(response), "error");
        return;
      }
      const record = await response.json();
      showFrozen(record);
      showMessage(`Photo checked: ${headline(record).text.toLowerCase()}. Not a diagnosis.`, "info");
      form.reset();
      poll();
    } catch (err) {
      showMessage("The kiosk is not responding; try again in a moment.", "error");
    } finally {
      button.disabled = false;
    }
  });

  $("clear").addEventListener("click", async () => {
    try {
      await fetch("results/clear", { method: "POST" });
    } catch (err) { /* the poll shows whether the kiosk answers */ }
    $("upload-message").hidden = true;
    clearFrozen();
    poll();
  });

  // The live view: the newest annotated frame, fetched up to stream-fps times a second. Each fetch is a
  // short request, so no viewer (or client that never reads) holds a server thread for long.
  const stream = $("stream");
  const frameGap = 1000 / Math.max(Number(body.dataset.streamFps) || 10, 0.5);
  let shown = "";
  async function nextFrame() {
    const started = performance.now();
    let wait = document.hidden ? 1000 : 0;
    if (!document.hidden) {
      try {
        const response = await fetch("frame.jpg", { cache: "no-store" });
        if (!response.ok) throw new Error(String(response.status));
        const url = URL.createObjectURL(await response.blob());
        await new Promise((resolve) => { stream.onload = resolve; stream.onerror = resolve; stream.src = url; });
        if (shown) URL.revokeObjectURL(shown);
        shown = url;
      } catch (err) {
        wait = 2000; // the kiosk restarts or refuses: the status line says so; try again shortly
      }
    }
    setTimeout(nextFrame, Math.max(wait, frameGap - (performance.now() - started), 10));
  }
  nextFrame();

  poll();
  setInterval(poll, 1000);
})();
