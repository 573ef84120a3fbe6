// Ticks the clock once a second in the browser, from the server's time.
//
// The server writes the zone, its offset and its own time in milliseconds
// into data attributes; the difference to the browser's clock (the skew) is
// kept, so a browser whose clock is wrong still shows the server's time.
// Browsers without time-zone support fall back to the fixed offset.
(function () {
  var clock = document.getElementById('clock');
  var date = document.getElementById('date');
  var zone = clock.getAttribute('data-zone');
  var offsetSeconds = Number(clock.getAttribute('data-offset-s'));
  var skew = Number(clock.getAttribute('data-epoch-ms')) - Date.now();
  var timeFormat = null;
  var dateFormat = null;
  try {
    timeFormat = new Intl.DateTimeFormat('en-GB', {
      timeZone: zone, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23'
    });
    dateFormat = new Intl.DateTimeFormat('en-GB', {
      timeZone: zone, weekday: 'long', day: 'numeric', month: 'long', year: 'numeric'
    });
  } catch (e) {}

  function tick() {
    var now = new Date(Date.now() + skew);
    if (timeFormat) {
      clock.textContent = timeFormat.format(now);
      date.textContent = dateFormat.format(now).replace(',', '');
    } else {
      clock.textContent = new Date(now.getTime() + offsetSeconds * 1000).toISOString().substr(11, 8);
    }
    setTimeout(tick, 1000 - (now.getTime() % 1000) + 5);
  }

  tick();
})();

// Keeps the per-pod counts live: asks this pod's GET /visits/cluster (which
// never counts a visit) every few seconds while the tab is visible, pauses
// while it is hidden, backs off when a request fails, and keeps the last
// known numbers on screen marked stale until an answer comes back.
(function () {
  var section = document.getElementById('pods');
  if (!section || !window.fetch) {
    return;
  }
  var every = Number(section.getAttribute('data-poll-ms')) || 5000;
  var self = section.getAttribute('data-self');
  var rows = document.getElementById('pods-rows');
  var total = document.getElementById('total');
  var status = document.getElementById('pods-status');
  var delay = every;
  var timer = null;
  var busy = false;

  function cell(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function row(name, tag, down) {
    var tr = cell('tr', down ? 'pod down' : (tag ? 'pod self' : 'pod'));
    var th = cell('th');
    th.setAttribute('scope', 'row');
    th.appendChild(cell('span', 'name', name));
    if (tag) {
      th.appendChild(document.createTextNode(' '));
      th.appendChild(cell('span', 'tag', tag));
    }
    tr.appendChild(th);
    return tr;
  }

  function show(view) {
    var sum = view.total;
    var fresh = document.createDocumentFragment();
    view.pods.forEach(function (pod) {
      var tr = row(pod.instance, pod.instance === self ? '(this pod)' : '', false);
      tr.appendChild(cell('td', 'count', String(pod.visits)));
      var share = cell('td', 'share');
      var meter = cell('meter');
      meter.min = 0;
      meter.max = Math.max(sum, 1);
      meter.value = pod.visits;
      meter.setAttribute('aria-hidden', 'true');
      share.appendChild(meter);
      share.appendChild(document.createTextNode(' '));
      share.appendChild(cell('span', 'pct', (sum ? Math.floor(pod.visits * 100 / sum) : 0) + '%'));
      tr.appendChild(share);
      fresh.appendChild(tr);
    });
    view.unreachable.forEach(function (peer) {
      var tr = row(peer.instance || peer.peer, '(unreachable)', true);
      tr.appendChild(cell('td', 'count', '?'));
      tr.appendChild(cell('td', 'share reason', peer.error));
      fresh.appendChild(tr);
    });
    rows.replaceChildren(fresh);
    total.textContent = String(sum);
    total.nextElementSibling.textContent = view.pods.length + (view.pods.length === 1 ? ' pod' : ' pods');
  }

  function clockText() {
    return document.getElementById('clock').textContent;
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = document.visibilityState === 'hidden' ? null : setTimeout(poll, ms);
  }

  function poll() {
    timer = null;
    if (busy || document.visibilityState === 'hidden') {
      return;
    }
    busy = true;
    fetch('/visits/cluster', { headers: { Accept: 'application/json' }, cache: 'no-store' })
      .then(function (response) {
        if (!response.ok) {
          throw new Error('answered ' + response.status);
        }
        return response.json();
      })
      .then(function (view) {
        show(view);
        delay = every;
        section.setAttribute('data-state', 'live');
        status.textContent = 'Live: updated at ' + clockText() + ', every ' + every / 1000 + ' s while this tab is visible.';
      }, function (error) {
        delay = Math.min(delay * 2, 60000);
        section.setAttribute('data-state', 'stale');
        status.textContent = 'Stale: the last update failed (' + error.message + '); these are the last known counts. Retrying in ' + Math.round(delay / 1000) + ' s.';
      })
      .then(function () {
        busy = false;
        schedule(delay);
      });
  }

  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'hidden') {
      clearTimeout(timer);
      timer = null;
    } else {
      schedule(0);
    }
  });
  schedule(section.getAttribute('data-state') === 'pending' ? 0 : every);
})();
