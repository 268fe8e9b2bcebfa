/* Ranking by keyboard and mouse. The form's rank selects are the source of truth the server
 * reads (and what a browser without JavaScript shows); this script keeps them in step with
 * the ranking bar: `placed` is the order so far, each item tied or not with the one before.
 *
 * One message at a time: the server's refusal of the last submit while nothing has changed
 * since, else the live hint (what is left to place, or why a submit was refused here). */
(function () {
  "use strict";

  function setup(form) {
    if (form.rank) return;
    document.documentElement.classList.add("js");
    const cards = Array.from(form.querySelectorAll(".completion[data-cid]"));
    const list = form.querySelector("[data-rank-list]");
    const pool = form.querySelector("[data-rank-pool]");
    const hint = form.querySelector("[data-rank-hint]");
    let refusal = form.querySelector("[data-form-error]");  // the server's answer to the last submit
    const started = Date.now();
    let placed = [];       // [{cid, tied}] best first; tied = tied with the previous item
    let tiePending = false;

    const cardOf = (cid) => cards.find((c) => c.dataset.cid === cid);
    const letterOf = (cid) => cardOf(cid).dataset.letter;
    const selectOf = (cid) => form.querySelector(`select[name="rank-${cid}"]`);
    const isPlaced = (cid) => placed.some((p) => p.cid === cid);

    function ranks() {
      // Rank numbers 1.. by tie group, e.g. A, B = C, D -> 1, 2, 2, 3.
      const out = {};
      let rank = 0;
      placed.forEach((p, i) => { if (i === 0 || !p.tied) rank += 1; out[p.cid] = rank; });
      return out;
    }

    function chip(cid, tied, inList) {
      const li = document.createElement("li");
      li.className = "chip" + (tied ? " tied" : "");
      li.dataset.cid = cid;
      if (inList) {
        const tie = document.createElement("button");
        tie.type = "button";
        tie.className = "tie";
        tie.textContent = tied ? "=" : "›";  // reads as "C › A = D › B"
        tie.setAttribute("aria-pressed", tied ? "true" : "false");
        tie.setAttribute("aria-label", `Tie ${letterOf(cid)} with the answer before it`);
        tie.addEventListener("click", () => toggleTie(cid));
        li.appendChild(tie);
      }
      const label = document.createElement("span");
      label.textContent = letterOf(cid);
      li.appendChild(label);
      return li;
    }

    function unplacedLetters() {
      const names = cards.filter((c) => !isPlaced(c.dataset.cid)).map((c) => c.dataset.letter);
      return names.length === 1 ? names[0] : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
    }

    function render(changed = true) {
      // A change makes the server's refusal stale: the hint speaks for the current state.
      if (changed && refusal) { refusal.remove(); refusal = null; }
      const r = ranks();
      list.replaceChildren(...placed.map((p, i) => chip(p.cid, i > 0 && p.tied, true)));
      pool.replaceChildren(...cards.filter((c) => !isPlaced(c.dataset.cid)).map((c) => chip(c.dataset.cid, false, false)));
      cards.forEach((card) => {
        const cid = card.dataset.cid;
        selectOf(cid).value = r[cid] ? String(r[cid]) : "";
        card.querySelector("[data-rank-badge]").textContent = r[cid] ? `#${r[cid]}` : "";
        card.classList.toggle("placed", Boolean(r[cid]));
      });
      const left = cards.length - placed.length;
      hint.classList.remove("refused");
      if (refusal) hint.textContent = "";
      else if (left === 0) hint.textContent = "Every answer is placed: press Enter or Submit.";
      else hint.textContent = `${left} left to place${tiePending ? " (the next one ties with the previous)" : ""}.`;
    }

    function refuse() {
      // A submit before every answer is placed: said here, and nothing is posted.
      render();
      const one = placed.length === cards.length - 1;
      hint.textContent = `Place every answer before submitting: ${unplacedLetters()} ${one ? "is" : "are"} not placed yet.`;
      hint.classList.add("refused");
    }

    const complete = () => placed.length === cards.length;

    function place(cid) {
      if (isPlaced(cid)) return;
      placed.push({ cid, tied: tiePending && placed.length > 0 });
      tiePending = false;
      render();
    }

    function toggleTie(cid) {
      const i = placed.findIndex((p) => p.cid === cid);
      if (i > 0) placed[i].tied = !placed[i].tied;
      render();
    }

    function undo() {
      if (tiePending) tiePending = false; else placed.pop();
      render();
    }

    function fromDom() {
      // After a drag: the list's chips give the order; a chip keeps its tie flag.
      const tied = Object.fromEntries(placed.map((p) => [p.cid, p.tied]));
      placed = Array.from(list.children).map((li) => ({ cid: li.dataset.cid, tied: Boolean(tied[li.dataset.cid]) }));
      render();
    }

    function restoreFromSelects() {
      // After a form error the server refills the selects; rebuild the bar from them.
      const ranked = cards
        .map((c) => ({ cid: c.dataset.cid, rank: parseInt(selectOf(c.dataset.cid).value, 10) }))
        .filter((x) => x.rank > 0)
        .sort((a, b) => a.rank - b.rank);
      placed = ranked.map((x, i) => ({ cid: x.cid, tied: i > 0 && ranked[i - 1].rank === x.rank }));
    }

    cards.forEach((card) => card.addEventListener("click", (event) => {
      if (event.target.closest("select, label, a, button, input")) return;
      if (String(window.getSelection())) return;  // selecting text (code, say) to copy it places nothing
      place(card.dataset.cid);
    }));
    form.querySelector("[data-rank-clear]").addEventListener("click", () => { placed = []; tiePending = false; render(); });
    if (window.Sortable) {
      const options = { group: "rank", animation: 120, forceFallback: true, fallbackTolerance: 3, filter: ".tie", preventOnFilter: false };
      Sortable.create(list, { ...options, onSort: () => setTimeout(fromDom) });
      Sortable.create(pool, { ...options, sort: false });
    }

    function onKey(event) {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.target.closest("input, textarea, select, summary, [contenteditable]")) return;
      const key = event.key.toUpperCase();
      const byNumber = /^[1-9]$/.test(key) ? cards[parseInt(key, 10) - 1] : null;
      const card = byNumber || cards.find((c) => c.dataset.letter === key);
      if (card) { place(card.dataset.cid); event.preventDefault(); }
      else if (key === "=" && placed.length > 0) { tiePending = true; render(); event.preventDefault(); }
      else if (key === "BACKSPACE") { undo(); event.preventDefault(); }
      else if (key === "ENTER" && !event.target.closest("button")) { form.requestSubmit(); event.preventDefault(); }
    }

    function stamp() {
      form.querySelector("[data-time-spent]").value = String(Date.now() - started);
    }

    restoreFromSelects();
    render(false);
    form.rank = { onKey, stamp, complete, refuse };
  }

  // Capture phase on the document: runs before htmx's own submit listener on the form (added
  // first, when htmx processed the page), which reads the form's values as the event arrives;
  // a refused submit stops here, before htmx or the browser posts anything.
  document.addEventListener("submit", (event) => {
    const rank = event.target.rank;
    if (!rank) return;
    if (!rank.complete()) {
      event.preventDefault();
      event.stopPropagation();
      rank.refuse();
      return;
    }
    rank.stamp();
  }, true);
  document.addEventListener("keydown", (event) => {
    const form = document.querySelector("[data-rank-form]");
    if (form && form.rank) form.rank.onKey(event);
  });
  function init(root) {
    root.querySelectorAll("[data-rank-form]").forEach(setup);
    const heading = root.querySelector ? root.querySelector("#task h1") : null;
    if (heading && root.id === "task") heading.focus({ preventScroll: true });
    // A ranked task that continues its conversation: the next step is writing the user's message.
    const nextMessage = root.querySelector ? root.querySelector("#next-message") : null;
    if (nextMessage) nextMessage.focus({ preventScroll: true });
  }
  if (window.htmx) htmx.onLoad(init); else document.addEventListener("DOMContentLoaded", () => init(document));
})();
