import { describe, expect, it } from 'vitest'
import { code128B } from './code128'

describe('code128B', () => {
  it('draws start B, the characters, the checksum and the stop', () => {
    // 104 + 48·1 + 42·2 + 42·3 + 17·4 + 18·5 + 19·6 + 35·7 = 879; 879 mod 103 = 55.
    const w = code128B('PJJ123C')!
    expect(w.length).toBe((1 + 7 + 1) * 6 + 7)
    expect(w.slice(0, 6).join('')).toBe('211214') // start B
    expect(w.slice(8 * 6, 9 * 6).join('')).toBe('311321') // checksum 55
    expect(w.slice(-7).join('')).toBe('2331112') // stop
    // every symbol is 11 modules, the stop 13
    for (let i = 0; i < 9; i++) expect(w.slice(i * 6, i * 6 + 6).reduce((a, b) => a + b, 0)).toBe(11)
  })

  it('refuses characters outside set B', () => {
    expect(code128B('会员')).toBeNull()
  })
})
