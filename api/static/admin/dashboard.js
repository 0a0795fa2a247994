// Orderly's operations dashboard: the one script its pages load (no framework, nothing
// fetched from elsewhere). Every page works without it; with it,
//  - a form with data-confirm asks before it is sent (retry, discard, pause, run now);
//  - the element with data-refresh is redrawn every data-refresh milliseconds from the
//    same address (header X-Orderly-Refresh: the server sends only that part), without
//    reloading the page, and skipped while someone types in it or the tab is hidden;
//  - the queues page keeps the samples it sees and draws them as a chart (inline SVG).
(function () {
  'use strict';

  var SVG = 'http://www.w3.org/2000/svg';
  var CHART_KEY = 'orderly-dashboard-chart';
  var CHART_POINTS = 120;

  document.addEventListener('submit', function (event) {
    var question = event.target.getAttribute('data-confirm');
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  function busy(live) {
    var active = document.activeElement;
    if (active && live.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName)) {
      return true;
    }
    var fields = live.querySelectorAll('input:not([type=hidden]), select, textarea');
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value !== fields[i].defaultValue) {
        return true;
      }
    }
    return false;
  }

  function showStale(stale) {
    var note = document.getElementById('stale');
    if (note) {
      note.hidden = !stale;
    }
  }

  function refresh(live) {
    if (document.hidden || busy(live)) {
      return;
    }
    fetch(window.location.pathname + window.location.search, {
      headers: { 'X-Orderly-Refresh': '1' },
      credentials: 'same-origin',
      cache: 'no-store'
    }).then(function (response) {
      // Signed out meanwhile (the answer is the login page): show it.
      if (response.redirected || response.status === 401 || response.status === 403) {
        window.location.reload();
        return null;
      }
      if (!response.ok) {
        throw new Error('HTTP ' + response.status);
      }
      return response.text();
    }).then(function (html) {
      if (html === null) {
        return;
      }
      live.innerHTML = html;
      live.setAttribute('data-refreshed', String(Date.now()));
      showStale(false);
      sample();
    }).catch(function () {
      showStale(true);
    });
  }

  function loadPoints() {
    try {
      var points = JSON.parse(window.sessionStorage.getItem(CHART_KEY) || '[]');
      return Array.isArray(points) ? points : [];
    } catch (e) {
      return [];
    }
  }

  function savePoints(points) {
    try {
      window.sessionStorage.setItem(CHART_KEY, JSON.stringify(points));
    } catch (e) {
      // Storage full or off: the chart starts again on the next page.
    }
  }

  // Reads the sample the queues page carries and adds it to the chart.
  function sample() {
    var node = document.getElementById('sample');
    var chart = document.getElementById('chart');
    if (!node || !chart) {
      return;
    }
    var points = loadPoints();
    points.push({
      t: Date.now(),
      done: Number(node.getAttribute('data-done')) || 0,
      dead: Number(node.getAttribute('data-dead')) || 0,
      failed: Number(node.getAttribute('data-failed')) || 0
    });
    // Points older than ten minutes, or past the limit, go.
    var since = Date.now() - 10 * 60 * 1000;
    points = points.filter(function (p) { return p.t >= since; }).slice(-CHART_POINTS);
    savePoints(points);
    draw(chart, points);
  }

  function draw(chart, points) {
    while (chart.firstChild) {
      chart.removeChild(chart.firstChild);
    }
    var width = 600;
    var height = 150;
    var pad = 6;
    var top = 1;
    points.forEach(function (p) { top = Math.max(top, p.done, p.dead, p.failed); });
    var first = points.length ? points[0].t : Date.now();
    var last = points.length ? points[points.length - 1].t : first;
    var spanT = Math.max(last - first, 1);
    function x(p) { return pad + (width - 2 * pad) * (points.length > 1 ? (p.t - first) / spanT : 1); }
    function y(v) { return height - pad - (height - 2 * pad) * (v / top); }

    [0.25, 0.5, 0.75, 1].forEach(function (f) {
      var line = document.createElementNS(SVG, 'line');
      line.setAttribute('x1', pad);
      line.setAttribute('x2', width - pad);
      line.setAttribute('y1', y(top * f));
      line.setAttribute('y2', y(top * f));
      line.setAttribute('class', 'grid-line');
      chart.appendChild(line);
    });
    ['failed', 'dead', 'done'].forEach(function (series) {
      var path = document.createElementNS(SVG, 'polyline');
      path.setAttribute('points', points.map(function (p) {
        return x(p).toFixed(1) + ',' + y(p[series]).toFixed(1);
      }).join(' '));
      path.setAttribute('class', 'series ' + series);
      chart.appendChild(path);
    });
    var scale = document.getElementById('chart-scale');
    if (scale) {
      var minutes = Math.round(spanT / 60000);
      scale.textContent = '(top of the chart: ' + top + '; the last ' +
        (minutes >= 1 ? minutes + ' min' : Math.round(spanT / 1000) + ' s') + ')';
    }
  }

  document.addEventListener('DOMContentLoaded', function () {
    sample();
    var live = document.querySelector('[data-refresh]');
    if (!live) {
      return;
    }
    var every = Math.max(1000, parseInt(live.getAttribute('data-refresh'), 10) || 5000);
    window.setInterval(function () { refresh(live); }, every);
  });
}());
