// Keeps a running training's page live: polls /api/runs/<id>/metrics, redraws the chart
// when the step moves, and reloads the page once the run has ended (samples, export).
"use strict";
(function () {
  const POLL_MS = 3000;
  const section = document.getElementById("training");
  if (!section || !["queued", "running"].includes(section.dataset.state)) return;
  const runId = section.dataset.runId;
  let lastStep = Number(section.dataset.step);
  async function poll() {
    try {
      const run = await fetch(`/api/runs/${encodeURIComponent(runId)}/status`,
                              { credentials: "same-origin" });
      if (run.status === 401) { window.location.href = "/login"; return; }
      if (run.ok) {
        const training = await run.json();
        if (!["queued", "running"].includes(training.status.state)) {
          window.location.reload();
          return;
        }
        if (training.step !== lastStep) {
          lastStep = training.step;
          const chart = document.getElementById("chart");
          chart.src = `${chart.src.split("?")[0]}?step=${lastStep}`;
          const step = document.getElementById("training-step");
          if (step) step.textContent = `${training.step} of ${training.total_steps}`;
        }
      }
    } catch (err) {
      // The dashboard restarting: try again at the next tick.
    }
    window.setTimeout(poll, POLL_MS);
  }
  window.setTimeout(poll, POLL_MS);
})();
