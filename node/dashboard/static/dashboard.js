// The throughput chart of a campaign's page: each live update carries a sample
// (time, shards done in all and per worker) in #campaign-live's data-sample;
// rates are taken over the last few samples so that one shard ending does not spike.
(function () {
  'use strict'
  var WINDOW = 5
  var MAX_SAMPLES = 3600
  var samples = []
  var chart = null
  var shown = ''

  function series () {
    var names = []
    samples.forEach(function (s) {
      Object.keys(s.workers).forEach(function (n) { if (names.indexOf(n) < 0) names.push(n) })
    })
    return names.sort()
  }

  function data (names) {
    var xs = []
    var total = []
    var per = names.map(function () { return [] })
    for (var i = 1; i < samples.length; i++) {
      var a = samples[Math.max(0, i - WINDOW)]
      var b = samples[i]
      var dt = b.t - a.t
      xs.push(b.t)
      total.push(dt > 0 ? (b.done - a.done) / dt : 0)
      names.forEach(function (n, j) { per[j].push(dt > 0 ? ((b.workers[n] || 0) - (a.workers[n] || 0)) / dt : 0) })
    }
    return [xs, total].concat(per)
  }

  var COLOURS = ['#1f5fbf', '#b3261e', '#1b7a3a', '#8a4fbf', '#a05a00', '#00727a']

  function draw () {
    var box = document.getElementById('throughput-chart')
    if (box == null || typeof uPlot === 'undefined' || samples.length < 2) return
    var names = series()
    var d = data(names)
    if (chart != null && shown === names.join('\n')) {
      chart.setData(d)
      return
    }
    if (chart != null) chart.destroy()
    shown = names.join('\n')
    chart = new uPlot({
      width: Math.max(320, box.clientWidth),
      height: 260,
      series: [{}, { label: 'all workers', stroke: '#1a1a1a', width: 2 }].concat(names.map(function (n, i) {
        return { label: n, stroke: COLOURS[i % COLOURS.length], width: 1.5 }
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
