// The dashboard's behaviour: live updates over Server-Sent Events, actions with fetch.
// Written for this project; no library.
"use strict";

(function () {
  const page = document.body.dataset.page;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const banner = document.getElementById("banner");

  function showBanner(text) {
    banner.textContent = text;
    banner.hidden = !text;
  }

  // Re-fetch a server-rendered part of the page and swap it in; calls within `delay` ms
  // coalesce into one fetch.
  function refresher(element, url, delay) {
    let timer = null;
    let after = 0;
    return function (sequence) {
      after = Math.max(after, sequence || 0);
      if (timer) return;
      timer = setTimeout(async function () {
        timer = null;
        const sep = url.includes("?") ? "&" : "?";
        try {
          const response = await fetch(url + sep + "part=1&after=" + after, {credentials: "same-origin"});
          if (response.ok) {
            const keep = saveInputs(element);
            element.innerHTML = await response.text();
            restoreInputs(element, keep);
            wireActions(element);
          }
        } catch (error) {
          showBanner("The dashboard does not answer; retrying.");
        }
      }, delay);
    };
  }

  function saveInputs(element) {
    const kept = {};
    element.querySelectorAll("input[id]").forEach(function (input) {
      kept[input.id] = input.type === "checkbox" ? input.checked : input.value;
    });
    return kept;
  }

  function restoreInputs(element, kept) {
    Object.keys(kept).forEach(function (id) {
      const input = element.querySelector("#" + id);
      if (!input) return;
      if (input.type === "checkbox") input.checked = kept[id]; else input.value = kept[id];
    });
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body || {}),
    });
    let answer;
    try {
      answer = await response.json();
    } catch (error) {
      answer = {ok: false, message: "HTTP " + response.status};
    }
    return answer;
  }

  function say(text, ok) {
    const result = document.getElementById("action-result");
    if (!result) return;
    result.textContent = text;
    result.className = "result " + (ok ? "good" : "error");
  }

  function wireActions(root) {
    root.querySelectorAll("button[data-action]").forEach(function (button) {
      button.addEventListener("click", async function () {
        const force = document.getElementById("force");
        const note = document.getElementById("note");
        const body = {force: !!(force && force.checked)};
        if (note) body.note = note.value;
        button.disabled = true;
        try {
          const answer = await post(button.dataset.url, body);
          say(answer.message, answer.ok);
        } finally {
          button.disabled = false;
        }
      });
    });
  }

  function wireFailures() {
    const button = document.getElementById("rerun-selected");
    if (!button) return;
    button.addEventListener("click", async function () {
      const picked = Array.from(document.querySelectorAll("input.pick:checked"));
      if (!picked.length) { say("Select the executions to re-run first.", false); return; }
      const force = document.getElementById("force");
      const lines = [];
      let allOk = true;
      for (const box of picked) {
        const answer = await post("/actions/executions/" + encodeURIComponent(box.dataset.execution) + "/rerun",
          {tenant_id: box.dataset.tenant, force: !!(force && force.checked)});
        lines.push(answer.message);
        allOk = allOk && answer.ok;
        if (answer.ok) box.checked = false;
      }
      say(lines.join("\n"), allOk);
    });
  }

  // The live page: new rows on top, hidden when the filter does not pass them.
  function liveRow(event) {
    const row = document.createElement("tr");
    row.className = "k-" + event.kind;
    row.dataset.kind = event.kind;
    row.dataset.tenant = event.tenant_id;
    row.dataset.seq = event.sequence;
    const cells = [event.at.slice(11, 19), event.kind, event.tenant_id];
    cells.forEach(function (text) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    });
    const last = document.createElement("td");
    const link = document.createElement("a");
    link.href = "/tasks/" + encodeURIComponent(event.tenant_id) + "/" + encodeURIComponent(event.task_id);
    link.textContent = event.text;
    last.appendChild(link);
    row.appendChild(last);
    return row;
  }

  function liveFilter() {
    const tenant = (document.getElementById("f-tenant").value || "").trim();
    const kind = document.getElementById("f-kind").value;
    const text = (document.getElementById("f-text").value || "").trim().toLowerCase();
    return function (row) {
      return (!tenant || row.dataset.tenant === tenant) &&
        (!kind || row.dataset.kind === kind) &&
        (!text || row.textContent.toLowerCase().includes(text));
    };
  }

  function applyLiveFilter() {
    const passes = liveFilter();
    document.querySelectorAll("#feed tr").forEach(function (row) { row.hidden = !passes(row); });
  }

  wireActions(document);
  wireFailures();

  let onEvent = function () {};
  if (page === "live") {
    const feed = document.getElementById("feed");
    ["f-tenant", "f-kind", "f-text"].forEach(function (id) {
      document.getElementById(id).addEventListener("input", applyLiveFilter);
    });
    onEvent = function (event) {
      const row = liveRow(event);
      row.hidden = !liveFilter()(row);
      feed.insertBefore(row, feed.firstChild);
      while (feed.children.length > 500) feed.removeChild(feed.lastChild);
    };
  } else if (page === "task") {
    const part = document.getElementById("task-live");
    const refresh = refresher(part, location.pathname, 300);
    onEvent = function (event) {
      if (event.tenant_id === part.dataset.tenant && event.task_id === part.dataset.task) {
        refresh(event.sequence);
      }
    };
  } else if (page === "overview") {
    // The overview asks the stream and the projector for its figures: at most every 2 s.
    const refresh = refresher(document.getElementById("overview-live"), "/", 2000);
    onEvent = function (event) { refresh(event.sequence); };
  }

  if (!window.EventSource) return;
  const source = new EventSource("/events");
  const state = document.getElementById("live-state");
  source.addEventListener("open", function () {
    if (state) state.textContent = "live";
  });
  source.addEventListener("error", function () {
    if (state) state.textContent = "reconnecting…";
    showBanner("Lost the live connection to the dashboard; reconnecting.");
  });
  source.addEventListener("status", function (message) {
    const status = JSON.parse(message.data);
    showBanner(status.nats ? "" : status.problem);
  });
  source.addEventListener("event", function (message) {
    onEvent(JSON.parse(message.data));
  });
})();
