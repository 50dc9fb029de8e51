(function () {
  "use strict";
  var table = document.getElementById("packages");
  var body = table.tBodies[0];
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  var search = document.getElementById("q");
  var statusSel = document.getElementById("status");
  var counter = document.getElementById("count");
  var state = {sort: null, dir: "asc", q: "", status: ""};

  function pairs() {
    var rows = Array.prototype.slice.call(body.rows);
    var out = [];
    for (var i = 0; i < rows.length; i += 2) { out.push([rows[i], rows[i + 1]]); }
    return out;
  }
  function key(row, col) {
    var c = row.cells[col];
    var v = c.getAttribute("data-sort");
    return v === null ? c.textContent.trim().toLowerCase() : v;
  }
  function compare(a, b) {
    var na = Number(a), nb = Number(b);
    if (a !== "" && b !== "" && !isNaN(na) && !isNaN(nb)) { return na - nb; }
    return a < b ? -1 : a > b ? 1 : 0;
  }
  function sortBy(name, dir) {
    var col = heads.findIndex(function (h) { return h.getAttribute("data-key") === name; });
    if (col < 0) { return; }
    state.sort = name; state.dir = dir === "desc" ? "desc" : "asc";
    var sign = state.dir === "desc" ? -1 : 1;
    var list = pairs();
    list.sort(function (x, y) {
      return sign * compare(key(x[0], col), key(y[0], col)) ||
        compare(key(x[0], 0), key(y[0], 0));
    });
    list.forEach(function (p) { body.appendChild(p[0]); body.appendChild(p[1]); });
    heads.forEach(function (h, i) {
      if (i === col) { h.setAttribute("aria-sort", state.dir === "asc" ? "ascending" : "descending"); }
      else { h.removeAttribute("aria-sort"); }
    });
    save();
  }
  function filter() {
    state.q = search.value.trim().toLowerCase();
    state.status = statusSel.value;
    var shown = 0;
    pairs().forEach(function (p) {
      var row = p[0];
      var okName = !state.q || row.getAttribute("data-name").indexOf(state.q) >= 0;
      var statuses = row.getAttribute("data-statuses").split(" ");
      var okStatus = !state.status ||
        (state.status === "problems" ? statuses.some(function (s) { return s !== "ready"; })
                                     : statuses.indexOf(state.status) >= 0);
      var ok = okName && okStatus;
      row.classList.toggle("hidden", !ok);
      if (!ok) { p[1].classList.add("hidden"); }
      if (ok) { shown += 1; }
    });
    counter.textContent = shown + " of " + pairs().length + " packages";
    save();
  }
  function save() {
    var parts = [];
    if (state.sort) { parts.push("sort=" + encodeURIComponent(state.sort), "dir=" + state.dir); }
    if (state.status) { parts.push("status=" + encodeURIComponent(state.status)); }
    if (state.q) { parts.push("q=" + encodeURIComponent(state.q)); }
    var hash = parts.length ? "#" + parts.join("&") : "";
    if (location.hash !== hash && history.replaceState) { history.replaceState(null, "", hash || location.pathname); }
  }
  function load() {
    var params = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      if (!kv) { return; }
      var i = kv.indexOf("=");
      params[decodeURIComponent(kv.slice(0, i))] = decodeURIComponent(kv.slice(i + 1));
    });
    if (params.q) { search.value = params.q; }
    if (params.status) { statusSel.value = params.status; }
    filter();
    if (params.sort) { sortBy(params.sort, params.dir); }
  }
  heads.forEach(function (h) {
    h.addEventListener("click", function () {
      var name = h.getAttribute("data-key");
      sortBy(name, state.sort === name && state.dir === "asc" ? "desc" : "asc");
    });
  });
  search.addEventListener("input", filter);
  statusSel.addEventListener("change", filter);
  body.addEventListener("click", function (ev) {
    var btn = ev.target.closest("button.more");
    if (!btn) { return; }
    var detail = btn.closest("tr").nextElementSibling;
    var open = detail.classList.toggle("hidden") === false;
    btn.setAttribute("aria-expanded", open ? "true" : "false");
    btn.textContent = open ? "\u25BE" : "\u25B8";
  });
  load();
  document.body.setAttribute("data-ready", "1");
})();
