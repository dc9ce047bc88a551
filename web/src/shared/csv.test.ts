import { describe, expect, it } from 'vitest'
import { CsvRowCounter, formatBytes } from './csv'

const header = 'id,name,phone,remark\n'

function count(chunks: string[]): number {
  const c = new CsvRowCounter()
  for (const x of chunks) c.push(x)
  return c.finish()
}

describe('CsvRowCounter', () => {
  it('counts data rows, not the header', () => {
    expect(count([header])).toBe(0)
    expect(count([header, '1,王伟,138,\n', '2,李娜,139,\n'])).toBe(2)
  })
  it('does not count line breaks inside quoted fields', () => {
    expect(count([header, '1,王伟,138,"第一行\n第二行"\n', '2,"Li ""Na""",139,"a,b"\n'])).toBe(2)
  })
  it('follows quotes and line ends split across chunks', () => {
    const text = `${header}1,a,1,"x\ny"\r\n2,b,2,""\r\n3,c,3,"""quoted"""\r\n`
    for (let size = 1; size <= 7; size++) {
      const chunks = []
      for (let i = 0; i < text.length; i += size) chunks.push(text.slice(i, i + size))
      expect(count(chunks)).toBe(3)
    }
  })
  it('counts a last row without a line end', () => {
    expect(count([header, '1,a,1,x'])).toBe(1)
  })
  it('reports progress as rows arrive', () => {
    const c = new CsvRowCounter()
    c.push(header)
    c.push('1,a,1,x\n2,b')
    expect(c.rows).toBe(1)
    c.push(',2,y\n')
    expect(c.rows).toBe(2)
  })
})

describe('formatBytes', () => {
  it('shows sizes', () => {
    expect(formatBytes(512)).toBe('512 B')
    expect(formatBytes(1536)).toBe('1.5 KB')
    expect(formatBytes(3 * 1024 * 1024)).toBe('3.0 MB')
  })
})
