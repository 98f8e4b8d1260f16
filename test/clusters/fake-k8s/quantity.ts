/**
 * resource.Quantity: "500m", "2", "16Gi", "1e3". Values are compared in
 * thousandths (rounded up, as the scheduler compares milli-CPU), which is
 * exact for every quantity a pod spec would carry.
 */
export const QUANTITY_PATTERN = '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'
const QUANTITY_RE = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][-+]?[0-9]+)?$/
const SUFFIX: Record<string, number> = {
  '': 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60
}

/** the quantity in thousandths of its unit, or undefined when it does not parse */
export function milli (quantity: string | number): number | undefined {
  const text = String(quantity)
  const m = QUANTITY_RE.exec(text)
  if (m === null) return undefined
  const suffix = m[2] ?? ''
  const scale = /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : SUFFIX[suffix]
  if (scale === undefined) return undefined
  return Math.ceil(Number(m[1]) * scale * 1000 - 1e-6)
}

export const QUANTITY_MESSAGE = `quantities must match the regular expression '${QUANTITY_PATTERN}'`
