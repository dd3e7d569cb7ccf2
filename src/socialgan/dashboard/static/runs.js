// Keeps the runs page live: polls /api/runs and updates state, progress and counts in place.
"use strict";
(function () {
  const POLL_MS = 2000;
  function setText(row, field, text) {
    const cell = row.querySelector(`[data-field="${field}"]`);
    if (cell && cell.textContent !== text) cell.textContent = text;
  }
  function setStatus(row, status) {
    const state = row.querySelector('[data-field="state"]');
    if (state) {
      state.textContent = status.state;
      state.className = `state state-${status.state}`;
    }
    const bar = row.querySelector('[data-field="progress"]');
    if (bar) bar.value = status.fraction_done;
    setText(row, "message", status.message);
  }
  function rowOf(table, id) {
    for (const row of document.querySelectorAll(`#${table} tr[data-id]`)) {
      if (row.dataset.id === id) return row;
    }
    return null;
  }
  function apply(data) {
    let unknown = false;
    for (const t of data.trainings) {
      const row = rowOf("trainings", t.id);
      if (!row) { unknown = true; continue; }
      setStatus(row, t.status);
      setText(row, "step", `${t.step} / ${t.total_steps}`);
    }
    for (const f of data.filters) {
      const row = rowOf("filters", f.id);
      if (!row) { unknown = true; continue; }
      setStatus(row, f.status);
      setText(row, "kept", `${f.progress.kept} of ${f.progress.total}`);
    }
    for (const s of data.scrapes) {
      const row = rowOf("scrapes", s.id);
      if (!row) { unknown = true; continue; }
      setStatus(row, s.status);
      setText(row, "counts", `${s.counts.new} / ${s.counts.failed}`);
    }
    for (const l of data.launches) {
      const row = rowOf("launches", l.launch_id);
      if (!row) { unknown = true; continue; }
      setText(row, "stage", l.stage);
      setText(row, "error", l.error);
      if (l.run_id && !row.querySelector('[data-field="run"] a')) unknown = true;
      const post = row.querySelector('[data-field="post"]');
      if (l.post_id && post && !post.textContent.trim()) unknown = true;
    }
    // A job this page does not show yet (or a new run link): load the page again.
    if (unknown) window.location.reload();
  }
  async function poll() {
    try {
      const reply = await fetch("/api/runs", { credentials: "same-origin" });
      if (reply.status === 401) { window.location.href = "/login?next=/runs"; return; }
      if (reply.ok) apply(await reply.json());
    } catch (err) {
      // The dashboard restarting or the network gone: try again at the next tick.
    }
    window.setTimeout(poll, POLL_MS);
  }
  window.setTimeout(poll, POLL_MS);
})();
