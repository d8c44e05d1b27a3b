// The room page, live: who is here (the room's presence channel), the chat and the shared
// files (events the server broadcasts there), everyone's pointer over the strip (client
// events, throttled), the A/V token, and the host's controls. Everything a member sends
// goes through the JSON API; the channel only brings what happened. Text from others is
// always set as text, never as HTML. On a refused join page it runs the countdown.
(function () {
  "use strict";

  // A join link that is not open yet: count down, then try again.
  var countdown = document.getElementById("countdown");
  if (countdown) {
    var opens = Number(countdown.dataset.startsAt) * 1000;
    var tick = function () {
      var left = Math.max(0, Math.round((opens - Date.now()) / 1000));
      var h = Math.floor(left / 3600);
      var m = Math.floor((left % 3600) / 60);
      var s = left % 60;
      countdown.textContent = (h ? h + " h " : "") + (h || m ? m + " min " : "") + s + " s";
      if (left === 0) {
        location.reload();
      } else {
        setTimeout(tick, 1000);
      }
    };
    tick();
    return;
  }

  var root = document.getElementById("room");
  if (!root) {
    return;
  }
  var cfg = root.dataset;
  var roomId = cfg.room;
  var me = cfg.me;
  var isHost = cfg.host === "yes";
  var members = {};
  var pointers = {};
  var client = null;
  var ended = cfg.closed === "yes";

  function $(id) {
    return document.getElementById(id);
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

  function api(method, path, body) {
    var init = {
      method: method,
      credentials: "same-origin",
      headers: { "x-requested-with": "rondo-rooms", accept: "application/json" },
    };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch("/api/rooms/" + roomId + path, init).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try {
          data = JSON.parse(text);
        } catch (e) {
          data = { error: text };
        }
        return { ok: response.ok, status: response.status, data: data };
      });
    });
  }

  function showError(id, answer) {
    var node = $(id);
    node.textContent = (answer.data && answer.data.error) || "failed (" + answer.status + ")";
    node.hidden = false;
  }

  // Who is here.
  function renderHere() {
    var list = $("here");
    list.replaceChildren();
    Object.keys(members)
      .sort(function (a, b) {
        var x = members[a];
        var y = members[b];
        return (y.host ? 1 : 0) - (x.host ? 1 : 0) || String(x.name).localeCompare(String(y.name));
      })
      .forEach(function (id) {
        var info = members[id];
        var item = el("li", { "data-member": id });
        item.appendChild(el("span", { class: "name" }, String(info.name)));
        if (info.host) {
          item.appendChild(el("span", { class: "role" }, "host"));
        }
        if (id === me) {
          item.appendChild(el("span", { class: "role" }, "you"));
        } else if (isHost && !ended) {
          var remove = el("button", { type: "button", class: "quiet remove", "data-member": id }, "Remove");
          remove.addEventListener("click", function () {
            remove.disabled = true;
            api("DELETE", "/members/" + encodeURIComponent(id)).then(function (answer) {
              remove.disabled = answer.ok;
            });
          });
          item.appendChild(remove);
        }
        list.appendChild(item);
      });
  }

  // The chat.
  function addChat(message) {
    var list = $("chat");
    var item = el("li", { "data-from": String(message.from) });
    item.appendChild(el("strong", { class: "who" }, String(message.name)));
    item.appendChild(document.createTextNode(" "));
    item.appendChild(el("span", { class: "text" }, String(message.text)));
    list.appendChild(item);
    while (list.children.length > 50) {
      list.removeChild(list.firstElementChild);
    }
    list.scrollTop = list.scrollHeight;
  }

  $("chat-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var input = $("chat-text");
    var text = input.value;
    $("chat-error").hidden = true;
    api("POST", "/chat", { text: text }).then(function (answer) {
      if (answer.ok) {
        input.value = "";
      } else {
        showError("chat-error", answer);
      }
    });
  });

  // Shared files.
  function addFile(file) {
    var list = $("files");
    if (list.querySelector('a[data-file="' + String(file.id).replace(/[^a-zA-Z0-9_-]/g, "") + '"]')) {
      return;
    }
    var item = el("li");
    item.appendChild(el("a", { href: String(file.path), "data-file": String(file.id) }, String(file.name)));
    item.appendChild(document.createTextNode(" "));
    item.appendChild(el("span", { class: "meta" }, file.size + " bytes, from " + file.by));
    list.appendChild(item);
  }

  $("upload-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var input = $("upload-file");
    if (!input.files.length) {
      return;
    }
    var form = new FormData();
    form.append("file", input.files[0]);
    $("upload-error").hidden = true;
    api("POST", "/files", form).then(function (answer) {
      if (answer.ok) {
        input.value = "";
        addFile(answer.data);
      } else {
        showError("upload-error", answer);
      }
    });
  });

  // Pointers over the strip: positions as fractions of its size, so strips of any width
  // agree; at most one event every 120 ms (the server allows 10 a second).
  var canvas = $("pointer");
  var pen = canvas.getContext("2d");
  var lastSent = 0;
  var pending = null;

  function draw() {
    pen.clearRect(0, 0, canvas.width, canvas.height);
    canvas.dataset.others = String(Object.keys(pointers).filter(function (id) {
      return id !== me;
    }).length);
    Object.keys(pointers).forEach(function (id) {
      var p = pointers[id];
      var x = p.x * canvas.width;
      var y = p.y * canvas.height;
      pen.fillStyle = id === me ? "#2f6f5e" : "#c2410c";
      pen.beginPath();
      pen.arc(x, y, 6, 0, Math.PI * 2);
      pen.fill();
      pen.font = "12px system-ui, sans-serif";
      pen.fillText(String(p.name), x + 9, y + 4);
    });
  }

  function sendPointer() {
    pending = null;
    lastSent = Date.now();
    var mine = pointers[me];
    if (client && mine && !ended) {
      client.trigger(cfg.channel, "client-pointer", { x: mine.x, y: mine.y });
    }
  }

  canvas.addEventListener("pointermove", function (event) {
    var box = canvas.getBoundingClientRect();
    var x = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    var y = Math.min(1, Math.max(0, (event.clientY - box.top) / box.height));
    var name = members[me] ? members[me].name : $("me-name").textContent;
    pointers[me] = { x: x, y: y, name: name };
    draw();
    var wait = 120 - (Date.now() - lastSent);
    if (wait <= 0) {
      sendPointer();
    } else if (!pending) {
      pending = setTimeout(sendPointer, wait);
    }
  });

  // Audio and video: the token says which LiveKit room and until when; with a LiveKit
  // server configured, the page opens its signalling connection with it.
  function showToken() {
    api("GET", "/token").then(function (answer) {
      var status = $("av-status");
      if (!answer.ok) {
        status.textContent = answer.status === 503
          ? "Audio and video are not configured on this server."
          : (answer.data && answer.data.error) || "No token (" + answer.status + ").";
        return;
      }
      var token = answer.data;
      $("av-room").textContent = token.room;
      var expires = $("av-expires");
      expires.textContent = new Date(token.expires_at * 1000).toISOString().replace(".000Z", "Z");
      expires.dataset.expiresAt = String(token.expires_at);
      if (!token.url || !window.WebSocket) {
        status.textContent = "Token ready.";
        return;
      }
      status.textContent = "Connecting to LiveKit at " + token.url + "…";
      try {
        var signal = new WebSocket(token.url.replace(/^http/, "ws").replace(/\/$/, "") +
          "/rtc?access_token=" + encodeURIComponent(token.token) + "&auto_subscribe=1");
        signal.onopen = function () {
          status.textContent = "Connected to LiveKit (signalling).";
        };
        signal.onerror = function () {
          status.textContent = "LiveKit at " + token.url + " did not answer; the token is ready.";
        };
      } catch (e) {
        status.textContent = "LiveKit URL unusable; the token is ready.";
      }
    });
  }

  // The room's end for this page: closed by the host, or this member removed.
  function end(which) {
    if (which === "closed") {
      $("closed").hidden = false;
      $("removed").hidden = true;
    } else if (!ended) {
      $("removed").hidden = false;
    }
    ended = true;
    members = {};
    pointers = {};
    renderHere();
    draw();
    Array.prototype.slice.call(root.querySelectorAll("form input, form button, #close-room"))
      .forEach(function (node) {
        node.disabled = true;
      });
    if (client) {
      client.close();
      client = null;
    }
  }

  var close = $("close-room");
  if (close) {
    close.addEventListener("click", function () {
      close.disabled = true;
      api("POST", "/close", {}).then(function (answer) {
        if (answer.ok) {
          end("closed");
        } else {
          close.disabled = false;
        }
      });
    });
  }

  function onEvent(channel, event, data, frame) {
    switch (event) {
      case "pusher_internal:subscription_succeeded":
        members = (data && data.presence && data.presence.hash) || {};
        renderHere();
        break;
      case "pusher_internal:member_added":
        members[data.user_id] = data.user_info || { name: data.user_id };
        renderHere();
        break;
      case "pusher_internal:member_removed":
        delete members[data.user_id];
        delete pointers[data.user_id];
        renderHere();
        draw();
        break;
      case "pusher:subscription_error":
        if (data && data.type === "Removed") {
          end(ended ? "closed" : "removed");
        }
        break;
      case "chat.message":
        addChat(data);
        break;
      case "file.shared":
        addFile(data);
        break;
      case "member.removed":
        if (data.member === me) {
          end("removed");
        }
        break;
      case "room.closed":
        end("closed");
        break;
      case "client-pointer":
        if (frame && frame.user_id && members[frame.user_id] && data) {
          pointers[frame.user_id] = {
            x: Number(data.x) || 0,
            y: Number(data.y) || 0,
            name: members[frame.user_id].name,
          };
          draw();
        }
        break;
    }
  }

  if (ended) {
    end("closed");
    return;
  }
  showToken();
  if (cfg.channel && window.RondoChannels && window.WebSocket) {
    var liveState = $("live");
    client = window.RondoChannels.connect({
      key: cfg.key,
      path: cfg.path,
      auth: cfg.auth,
      channels: [cfg.channel],
      onState: function (name) {
        liveState.dataset.state = name;
        liveState.textContent = name === "live" ? "live" : name === "connecting" ? "connecting…" : "offline";
      },
      onEvent: onEvent,
    });
  }
})();
