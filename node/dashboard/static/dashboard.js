// The throughput chart of a campaign's page: each live update carries a sample
// (time, shards done in all, per worker and per accelerator kind) in #campaign-live's data-sample;
// rates are taken over the last few samples so that one shard ending does not spike.
(function () {
  'use strict'
  var WINDOW = 5
  var MAX_SAMPLES = 3600
  var samples = []
  var chart = null
  var shown = ''

  // the workers' names, and the accelerator kinds (drawn dashed)
  function series () {
    var names = []
    var kinds = []
    samples.forEach(function (s) {
      Object.keys(s.workers).forEach(function (n) { if (names.indexOf(n) < 0) names.push(n) })
      Object.keys(s.accelerators || {}).forEach(function (n) { if (kinds.indexOf(n) < 0) kinds.push(n) })
    })
    return { names: names.sort(), kinds: kinds.sort() }
  }

  function rate (a, b, dt) { return dt > 0 ? (b - a) / dt : 0 }

  function data (sr) {
    var xs = []
    var total = []
    var per = sr.names.map(function () { return [] })
    var perKind = sr.kinds.map(function () { return [] })
    for (var i = 1; i < samples.length; i++) {
      var a = samples[Math.max(0, i - WINDOW)]
      var b = samples[i]
      var dt = b.t - a.t
      xs.push(b.t)
      total.push(rate(a.done, b.done, dt))
      sr.names.forEach(function (n, j) { per[j].push(rate(a.workers[n] || 0, b.workers[n] || 0, dt)) })
      sr.kinds.forEach(function (n, j) { perKind[j].push(rate((a.accelerators || {})[n] || 0, (b.accelerators || {})[n] || 0, dt)) })
    }
    return [xs, total].concat(per, perKind)
  }

  var COLOURS = ['#1f5fbf', '#b3261e', '#1b7a3a', '#8a4fbf', '#a05a00', '#00727a']

  function draw () {
    var box = document.getElementById('throughput-chart')
    if (box == null || typeof uPlot === 'undefined' || samples.length < 2) return
    var sr = series()
    var key = sr.names.concat(['|'], sr.kinds).join('\n')
    var d = data(sr)
    if (chart != null && shown === key) {
      chart.setData(d)
      return
    }
    if (chart != null) chart.destroy()
    shown = key
    chart = new uPlot({
      width: Math.max(320, box.clientWidth),
      height: 260,
      series: [{}, { label: 'all workers', stroke: '#1a1a1a', width: 2 }].concat(sr.names.map(function (n, i) {
        return { label: n, stroke: COLOURS[i % COLOURS.length], width: 1.5 }
      }), sr.kinds.map(function (n, i) {
        return { label: 'accelerators: ' + n, stroke: COLOURS[(i + 3) % COLOURS.length], width: 1.5, dash: [6, 4] }
      })),
      axes: [{}, { label: 'shards/s' }]
    }, d, box)
  }

  function add () {
    var live = document.getElementById('campaign-live')
    if (live == null || live.dataset.sample == null) return
    var s = JSON.parse(live.dataset.sample)
    var last = samples[samples.length - 1]
    if (last != null && last.t >= s.t) return
    samples.push(s)
    if (samples.length > MAX_SAMPLES) samples.shift()
    draw()
  }

  document.addEventListener('DOMContentLoaded', add)
  document.addEventListener('htmx:sseMessage', add)
})()
