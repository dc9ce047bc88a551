// Idempotency keys for writes a person may retry (adjustments): the same
// key makes the API return the first result instead of doing it twice.
// crypto.randomUUID needs a secure context; getRandomValues works everywhere.
export function newRequestId(): string {
  const b = new Uint8Array(16)
  crypto.getRandomValues(b)
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
}
