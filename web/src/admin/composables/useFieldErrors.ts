// The API's 400 `fields` (JSON path → reason) shown next to the form items
// they name: <el-form-item :error="fe.errors.amount">. `map` renames API
// fields to the form's props where they differ (amount_fen → amount).
import { reactive } from 'vue'
import { ApiError } from '@/api/errors'

export function useFieldErrors(map: Record<string, string> = {}) {
  const errors = reactive<Record<string, string>>({})
  function clear() {
    for (const k of Object.keys(errors)) delete errors[k]
  }
  /** take shows the error's fields; it reports whether any was shown. */
  function take(err: unknown): boolean {
    clear()
    if (!(err instanceof ApiError)) return false
    for (const [path, reason] of Object.entries(err.fields)) errors[map[path] ?? path] = reason
    return Object.keys(err.fields).length > 0
  }
  return { errors, take, clear }
}
