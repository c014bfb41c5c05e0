// The dashboard's entry: hash routes (#/jobs, #/jobs/<id>, #/new, #/tensors) and the API key.

import { apiKey, setApiKey } from "./api.js";
import { FormView } from "./form.js";
import { JobView } from "./job.js";
import { JobsView } from "./jobs.js";
import { TensorView } from "./tensors.js";


const main = document.getElementById("main");
let view = null;

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [section, id] = hash.split("/");
  view?.stop();
  if (section === "jobs" && id) view = new JobView(main, decodeURIComponent(id));
  else if (section === "new") view = new FormView(main);
  else if (section === "tensors") view = new TensorView(main);
  else view = new JobsView(main);
  for (const link of document.querySelectorAll("nav.site a")) {
    const current = link.getAttribute("href") === `#/${section || "jobs"}`;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  view.start();
  main.focus({ preventScroll: true });
}

function keyDialog() {
  const dialog = document.getElementById("key-dialog");
  const input = dialog.querySelector("#api-key");
  const state = document.getElementById("key-state");
  const show = () => {
    state.textContent = apiKey() ? "API key set" : "no API key";
  };
  document.getElementById("key-button").addEventListener("click", () => {
    input.value = apiKey();
    dialog.showModal();
    input.focus();
  });
  dialog.querySelector("form").addEventListener("submit", (e) => {
    if (e.submitter?.value === "clear") input.value = "";
    if (e.submitter?.value !== "cancel") {
      setApiKey(input.value.trim());
      show();
      route();
    }
  });
  show();
}

keyDialog();
window.addEventListener("hashchange", route);
route();
document.body.dataset.ready = "true";
