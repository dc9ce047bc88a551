// Code 128 (set B) for the member code's barcode: the code is upper-case
// letters and digits, which set B covers. Each symbol is 11 modules (6
// bars and spaces of 1–4 modules); the widths below are the standard
// table, values 0–105 (the stop symbol is added apart).
const PATTERNS = (
  '212222 222122 222221 121223 121322 131222 122213 122312 132212 221213 221312 231212 112232 122132 122231 113222 123122 123221 ' +
  '223211 221132 221231 213212 223112 312131 311222 321122 321221 312212 322112 322211 212123 212321 232121 111323 131123 131321 ' +
  '112313 132113 132311 211313 231113 231311 112133 112331 132131 113123 113321 133121 313121 211331 231131 213113 213311 213131 ' +
  '311123 311321 331121 312113 312311 332111 314111 221411 431111 111224 111422 121124 121421 141122 141221 112214 112412 122114 ' +
  '122411 142112 142211 241211 221114 413111 241112 134111 111242 121142 121241 114212 124112 124211 411212 421112 421211 212141 ' +
  '214121 412121 111143 111341 131141 114113 114311 411113 411311 113141 114131 311141 411131 211412 211214 211232'
).split(' ')

/** widths returns bar/space widths (bar first) for text, with start B, checksum and stop; null if text is outside set B. */
export function code128B(text: string): number[] | null {
  const values: number[] = [104] // start B
  for (const ch of text) {
    const c = ch.charCodeAt(0)
    if (c < 32 || c > 126) return null
    values.push(c - 32)
  }
  let sum = values[0]
  for (let i = 1; i < values.length; i++) sum += values[i] * i
  values.push(sum % 103)
  const out: number[] = []
  for (const v of values) for (const w of PATTERNS[v]) out.push(Number(w))
  out.push(2, 3, 3, 1, 1, 1, 2) // stop
  return out
}
