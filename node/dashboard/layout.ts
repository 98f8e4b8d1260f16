import { html, type Html, type HtmlValue } from './html.ts'

export type Section = 'mesh' | 'campaigns' | 'node'

const NAV: Array<[Section, string, string]> = [['mesh', 'Mesh', '/ui/'], ['campaigns', 'Campaigns', '/ui/campaigns'], ['node', 'This node', '/ui/node']]

/** The whole page around a section's content; `csrf` goes with every htmx request (x-csrf-token). */
export function page (opts: { title: string, section?: Section, nodeName: string, csrf?: string, body: HtmlValue, charts?: boolean }): Html {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="htmx-config" content='{"includeIndicatorStyles":false,"allowEval":false,"historyCacheSize":0}'>
<title>${opts.title} · ZP Mesh · ${opts.nodeName}</title>
<link rel="stylesheet" href="/ui/assets/dashboard.css">
${opts.charts === true ? html`<link rel="stylesheet" href="/ui/assets/uPlot.min.css">` : ''}
<script src="/ui/assets/htmx.min.js" defer></script>
<script src="/ui/assets/sse.js" defer></script>
${opts.charts === true ? html`<script src="/ui/assets/uPlot.iife.min.js" defer></script>` : ''}
<script src="/ui/assets/dashboard.js" defer></script>
</head>
<body${opts.csrf != null ? html` hx-headers='${JSON.stringify({ 'x-csrf-token': opts.csrf })}'` : ''}>
<header>
<p class="brand">ZP Mesh <span class="muted">on ${opts.nodeName}</span></p>
${opts.section != null
  ? html`<nav aria-label="Dashboard"><ul>${NAV.map(([key, label, href]) => html`<li><a href="${href}"${key === opts.section ? html` aria-current="page"` : ''}>${label}</a></li>`)}</ul></nav>`
  : ''}
</header>
<main id="main">
<h1>${opts.title}</h1>
${opts.body}
</main>
</body>
</html>
`
}

/** What a browser without a (valid) session sees: how to get one. */
export function unauthorizedPage (nodeName: string, why: string): Html {
  return page({
    title: 'Log in with zp dashboard',
    nodeName,
    body: html`<p role="alert">${why}</p>
<p>Run <code>zp dashboard</code> on the machine of this node (or <code>zp dashboard --print-url</code> to get a link) to open a new session. Each link works once, within a minute.</p>`
  })
}

export function percent (fraction: number): string {
  return `${(fraction * 100).toFixed(1)}%`
}
