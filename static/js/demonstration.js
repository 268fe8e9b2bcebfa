/* Ideal-answer form: a live character count, and a draft kept in this browser until the
 * server confirms the answer was saved. */
(function () {
  "use strict";
  const SUBMITTED = "demo-draft-submitted";

  function setup(form) {
    if (form.dataset.ready) return;
    form.dataset.ready = "1";
    const text = form.querySelector("textarea");
    const count = form.querySelector("[data-char-count]");
    const key = form.dataset.draftKey;
    if (!text.value && localStorage.getItem(key)) text.value = localStorage.getItem(key);
    const update = () => {
      count.textContent = `${text.value.length.toLocaleString()} / ${text.maxLength.toLocaleString()} characters`;
      if (text.value) localStorage.setItem(key, text.value); else localStorage.removeItem(key);
    };
    text.addEventListener("input", update);
    form.addEventListener("submit", () => sessionStorage.setItem(SUBMITTED, key));
    update();
  }

  function init(root) {
    const submitted = sessionStorage.getItem(SUBMITTED);
    if (submitted && document.querySelector("[data-demo-saved]") && !document.querySelector("#demo .error")) {
      localStorage.removeItem(submitted);
      sessionStorage.removeItem(SUBMITTED);
    }
    root.querySelectorAll("[data-demo-form]").forEach(setup);
  }
  if (window.htmx) htmx.onLoad(init); else document.addEventListener("DOMContentLoaded", () => init(document));
})();
