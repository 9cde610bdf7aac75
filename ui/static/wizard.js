/* The new request wizard, live: re-runs the draft check as the officer types and lists the problems in a
   panel (aria-live="polite"). Progressive enhancement only: without this script every step still works, and
   the review step shows the same check drawn by the server. Text from the server is set with textContent,
   never as HTML. */
(function () {
  "use strict";
  var form = document.getElementById("wizard");
  var panel = document.getElementById("live-check");
  if (!form || !panel || !window.fetch || !window.FormData || !window.URLSearchParams) {
    return;
  }
  var result = panel.querySelector(".live-check-result");
  var timer = null;
  var latest = 0;

  function problemItem(severity, message, step, title) {
    var li = document.createElement("li");
    li.className = "problem-" + severity;
    var tag = document.createElement("span");
    tag.className = severity === "error" ? "tag tag-alert" : "tag";
    tag.textContent = panel.dataset[severity] || severity;
    li.appendChild(tag);
    li.appendChild(document.createTextNode(" " + message + " "));
    var go = document.createElement("button");
    go.type = "submit";
    go.name = "go";
    go.value = String(step);
    go.className = "button-small";
    go.textContent = panel.dataset.go + " " + step + (title ? ": " + title : "");
    li.appendChild(go);
    return li;
  }

  function show(data) {
    var list = document.createElement("ul");
    list.className = "problems";
    var invalid = data.invalid || {};
    Object.keys(invalid).forEach(function (name) {
      var i = invalid[name];
      list.appendChild(problemItem("error", i.label + ": " + i.message, i.step, ""));
    });
    (data.problems || []).forEach(function (p) {
      list.appendChild(problemItem(p.severity, p.message, p.step, p.step_title));
    });
    result.textContent = "";
    if (list.children.length) {
      result.appendChild(list);
    } else {
      var ok = document.createElement("p");
      ok.className = "notice notice-ok";
      ok.textContent = panel.dataset.ok;
      result.appendChild(ok);
    }
  }

  function run() {
    var ticket = ++latest;
    var body = new URLSearchParams(new FormData(form));
    fetch(panel.dataset.endpoint, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      body: body,
    })
      .then(function (resp) {
        if (!resp.ok) {
          throw new Error(String(resp.status));
        }
        return resp.json();
      })
      .then(function (data) {
        if (ticket === latest) {
          show(data);
        }
      })
      .catch(function () {
        if (ticket === latest) {
          result.textContent = panel.dataset.failed;
        }
      });
  }

  function soon() {
    window.clearTimeout(timer);
    timer = window.setTimeout(run, 500);
  }

  panel.hidden = false;
  form.addEventListener("input", soon);
  form.addEventListener("change", soon);
  run();
})();
