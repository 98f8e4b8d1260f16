/** Markup that is already safe: built by `html` or deliberately trusted with `raw`. */
export class Html {
  readonly text: string
  constructor (text: string) {
    this.text = text
  }

  toString (): string {
    return this.text
  }
}

export type HtmlValue = Html | string | number | boolean | null | undefined | readonly HtmlValue[]

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\'': '&#39;' }

export function escapeHtml (text: string): string {
  return text.replace(/[&<>"']/g, ch => ENTITIES[ch]!)
}

function render (value: HtmlValue): string {
  if (value == null || value === false) return ''
  if (value instanceof Html) return value.text
  if (Array.isArray(value)) return value.map(render).join('')
  return escapeHtml(String(value))
}

/**
 * A template tag that escapes every interpolated value (peer names, error
 * texts and labels come from other machines) unless it is `Html` already;
 * arrays are joined, null/undefined/false render nothing.
 */
export function html (strings: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let out = strings[0]!
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!
  return new Html(out)
}

export function raw (text: string): Html {
  return new Html(text)
}
