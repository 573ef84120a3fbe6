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
