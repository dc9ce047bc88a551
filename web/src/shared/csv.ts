// Counting the rows of a CSV as it streams in, for the export's progress.
// A remark may hold line breaks inside quotes, so rows are counted as line
// ends outside quoted fields, across chunk boundaries.

/** CsvRowCounter counts complete records (the header included) of a streamed CSV. */
export class CsvRowCounter {
  private inQuotes = false
  private records = 0
  private pending = false // characters seen since the last record end

  /** push feeds the next decoded chunk. */
  push(chunk: string): void {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i)
      if (c === 34 /* " */) {
        // A doubled quote inside quotes toggles twice: still inside.
        this.inQuotes = !this.inQuotes
        this.pending = true
      } else if (c === 10 /* \n */ && !this.inQuotes) {
        this.records++
        this.pending = false
      } else if (c !== 13 /* \r */) {
        this.pending = true
      }
    }
  }

  /** rows is the number of data records so far (the header excluded). */
  get rows(): number {
    return Math.max(0, this.records - 1)
  }

  /** finish counts a last record without a final line end. */
  finish(): number {
    if (this.pending && !this.inQuotes) {
      this.records++
      this.pending = false
    }
    return this.rows
  }
}

/** formatBytes shows a size: 1536 → "1.5 KB". */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`
  return `${(n / 1024 / 1024).toFixed(1)} MB`
}
