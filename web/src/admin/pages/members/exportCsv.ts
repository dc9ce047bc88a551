// The members CSV export with progress: the file streams (chunked) and
// ends with an X-Export-Rows trailer, which browsers do not expose; a
// failed export aborts the connection, so the stream errors instead of
// ending. Rows are counted as they arrive.
import { authedFetch } from '@/api/client'
import { CsvRowCounter } from '@/shared/csv'

export interface ExportProgress {
  rows: number
  bytes: number
}

/**
 * exportMembers downloads the export into a Blob, reporting progress; path
 * is the members export or a segment's (same CSV).
 */
export async function exportMembers(
  query: URLSearchParams,
  onProgress: (p: ExportProgress) => void,
  signal: AbortSignal,
  path = '/api/admin/v1/members/export.csv',
): Promise<{ blob: Blob; rows: number; filename: string }> {
  const qs = query.toString()
  const res = await authedFetch(`${path}${qs ? `?${qs}` : ''}`, {}, signal)
  const disposition = res.headers.get('Content-Disposition') ?? ''
  const filename = /filename="([^"]+)"/.exec(disposition)?.[1] ?? 'members.csv'
  if (!res.body) throw new Error('the export has no body')
  const reader = res.body.getReader()
  const decoder = new TextDecoder()
  const counter = new CsvRowCounter()
  const chunks: Uint8Array[] = []
  let bytes = 0
  for (;;) {
    const { done, value } = await reader.read() // throws when the server aborts
    if (done) break
    chunks.push(value)
    bytes += value.byteLength
    counter.push(decoder.decode(value, { stream: true }))
    onProgress({ rows: counter.rows, bytes })
  }
  counter.push(decoder.decode())
  const rows = counter.finish()
  onProgress({ rows, bytes })
  return { blob: new Blob(chunks as BlobPart[], { type: 'text/csv;charset=utf-8' }), rows, filename }
}

/** saveBlob hands a file to the browser's downloads. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob)
  const a = document.createElement('a')
  a.href = url
  a.download = filename
  document.body.appendChild(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10_000)
}
