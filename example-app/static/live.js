// The shop's live basket: a small client of the Pusher Channels protocol (version 7),
// written for this page. It connects to the server that served the page, asks
// /broadcasting/auth (with the session cookie) for the basket channel of this session,
// subscribes, and redraws the basket and the recommendations as events arrive. It answers
// the server's pings, and reconnects (backing off) unless the server refused it for good.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.WebSocket) {
    return;
  }
  var cfg = live.dataset;
  var retry = 1000;

  function parse(text) {
    try {
      return JSON.parse(text);
    } catch (e) {
      return text;
    }
  }

  function state(name) {
    live.dataset.state = name;
    live.textContent = name === "live" ? "live" : name === "connecting" ? "connecting…" : "offline";
  }

  function connect() {
    state("connecting");
    var scheme = location.protocol === "https:" ? "wss" : "ws";
    var url = scheme + "://" + location.host + cfg.path + "/" + encodeURIComponent(cfg.key) +
      "?protocol=7&client=rondo-shop&version=1.0";
    var ws = new WebSocket(url);
    ws.onmessage = function (message) {
      var frame = parse(message.data);
      if (!frame || typeof frame !== "object") {
        return;
      }
      var data = typeof frame.data === "string" ? parse(frame.data) : frame.data;
      switch (frame.event) {
        case "pusher:connection_established":
          retry = 1000;
          subscribe(ws, data.socket_id);
          break;
        case "pusher:ping":
          ws.send(JSON.stringify({ event: "pusher:pong", data: {} }));
          break;
        case "pusher_internal:subscription_succeeded":
          state("live");
          break;
        case "pusher:subscription_error":
          state("offline");
          break;
        case "basket.updated":
          renderBasket(data);
          break;
        case "recommendations.ready":
          renderRecommendations(data);
          break;
      }
    };
    ws.onclose = function (event) {
      state("offline");
      // 4000-4099: the server says reconnecting unchanged will not help.
      if (event.code >= 4000 && event.code < 4100) {
        return;
      }
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }

  function subscribe(ws, socketId) {
    var body = new URLSearchParams({ socket_id: socketId, channel_name: cfg.channel });
    fetch(cfg.auth, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("refused: " + response.status);
        }
        return response.json();
      })
      .then(function (grant) {
        ws.send(JSON.stringify({
          event: "pusher:subscribe",
          data: { channel: cfg.channel, auth: grant.auth },
        }));
      })
      .catch(function () {
        state("offline");
      });
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      node.setAttribute(name, attrs[name]);
    });
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function renderBasket(basket) {
    var view = document.getElementById("basket-view");
    if (!view || !basket || !Array.isArray(basket.items)) {
      return;
    }
    view.replaceChildren();
    var clear = document.getElementById("clear-form");
    if (basket.items.length === 0) {
      view.appendChild(el("p", { id: "empty" }, "Your basket is empty."));
      if (clear) {
        clear.hidden = true;
      }
      return;
    }
    var table = el("table", { id: "basket" });
    var head = el("thead");
    var headRow = el("tr");
    headRow.appendChild(el("th", { scope: "col" }, "Item"));
    headRow.appendChild(el("th", { scope: "col", class: "num" }, "Quantity"));
    head.appendChild(headRow);
    table.appendChild(head);
    var rows = el("tbody");
    basket.items.forEach(function (item) {
      var row = el("tr");
      row.appendChild(el("td", { class: "sku" }, item.sku));
      row.appendChild(el("td", { class: "num qty" }, String(item.qty)));
      rows.appendChild(row);
    });
    table.appendChild(rows);
    var foot = el("tfoot");
    var footRow = el("tr");
    footRow.appendChild(el("th", { scope: "row" }, "Total items"));
    var cell = el("td", { class: "num" });
    cell.appendChild(el("span", { id: "total" }, String(basket.total_qty)));
    footRow.appendChild(cell);
    foot.appendChild(footRow);
    table.appendChild(foot);
    view.appendChild(table);
    if (clear) {
      clear.hidden = false;
    }
  }

  function renderRecommendations(items) {
    var section = document.getElementById("recommendations");
    if (!section || !Array.isArray(items)) {
      return;
    }
    Array.prototype.slice.call(section.querySelectorAll("p, ul")).forEach(function (node) {
      node.remove();
    });
    var list = el("ul");
    items.forEach(function (sku) {
      list.appendChild(el("li", {}, sku));
    });
    section.appendChild(list);
  }

  connect();
})();
