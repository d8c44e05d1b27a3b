// The pages' own small client of the Pusher Channels protocol (version 7), written for this
// app, and the shop's live basket on top of it.
//
// RondoChannels.connect(options) connects to the server that served the page, asks
// options.auth (with the session cookie) for each channel of options.channels, subscribes
// (presence channels with the member the server signed), answers the server's pings, and
// reconnects (backing off) unless the server refused it for good. Every frame on a channel
// goes to options.onEvent(channel, event, data, frame); options.onState(state) hears
// "connecting", "live" and "offline". The returned object sends client events
// (trigger(channel, "client-…", data)) and closes (close()).
(function () {
  "use strict";

  function parse(text) {
    try {
      return JSON.parse(text);
    } catch (e) {
      return text;
    }
  }

  function connect(options) {
    var ws = null;
    var socketId = null;
    var retry = 1000;
    var stopped = false;

    function state(name) {
      if (options.onState) {
        options.onState(name);
      }
    }

    function emit(channel, event, data, frame) {
      if (options.onEvent) {
        options.onEvent(channel, event, data, frame);
      }
    }

    function send(frame) {
      if (ws && ws.readyState === 1) {
        ws.send(JSON.stringify(frame));
      }
    }

    function subscribe(channel) {
      var body = new URLSearchParams({ socket_id: socketId, channel_name: channel });
      fetch(options.auth, { method: "POST", body: body, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) {
            var refused = new Error("refused: " + response.status);
            refused.status = response.status;
            throw refused;
          }
          return response.json();
        })
        .then(function (grant) {
          var data = { channel: channel, auth: grant.auth };
          if (grant.channel_data) {
            data.channel_data = grant.channel_data;
          }
          send({ event: "pusher:subscribe", data: data });
        })
        .catch(function (error) {
          state("offline");
          emit(channel, "pusher:subscription_error",
            { type: "AuthError", status: error.status || 0 }, null);
        });
    }

    function open() {
      state("connecting");
      var scheme = location.protocol === "https:" ? "wss" : "ws";
      var url = scheme + "://" + location.host + options.path + "/" +
        encodeURIComponent(options.key) + "?protocol=7&client=rondo-js&version=1.0";
      ws = new WebSocket(url);
      ws.onmessage = function (message) {
        var frame = parse(message.data);
        if (!frame || typeof frame !== "object") {
          return;
        }
        var data = typeof frame.data === "string" ? parse(frame.data) : frame.data;
        switch (frame.event) {
          case "pusher:connection_established":
            retry = 1000;
            socketId = data.socket_id;
            options.channels.forEach(subscribe);
            return;
          case "pusher:ping":
            send({ event: "pusher:pong", data: {} });
            return;
          case "pusher_internal:subscription_succeeded":
            state("live");
            break;
          case "pusher:subscription_error":
            state("offline");
            break;
        }
        if (frame.channel) {
          emit(frame.channel, frame.event, data, frame);
        }
      };
      ws.onclose = function (event) {
        ws = null;
        state("offline");
        // 4000-4099: the server says reconnecting unchanged will not help.
        if (stopped || (event.code >= 4000 && event.code < 4100)) {
          return;
        }
        setTimeout(open, retry);
        retry = Math.min(retry * 2, 30000);
      };
    }

    open();
    return {
      trigger: function (channel, event, data) {
        send({ event: event, channel: channel, data: data });
      },
      close: function () {
        stopped = true;
        if (ws) {
          ws.close();
        }
      },
    };
  }

  window.RondoChannels = { connect: connect };

  // The shop's live basket: the session's basket channel redraws the basket and the
  // recommendations as events arrive, from any tab, on any server.
  var live = document.getElementById("live");
  if (!live || !live.dataset.channel || document.getElementById("room") || !window.WebSocket) {
    return;
  }
  var cfg = live.dataset;

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

  connect({
    key: cfg.key,
    path: cfg.path,
    auth: cfg.auth,
    channels: [cfg.channel],
    onState: function (name) {
      live.dataset.state = name;
      live.textContent = name === "live" ? "live" : name === "connecting" ? "connecting…" : "offline";
    },
    onEvent: function (channel, event, data) {
      if (event === "basket.updated") {
        renderBasket(data);
      } else if (event === "recommendations.ready") {
        renderRecommendations(data);
      }
    },
  });
})();
