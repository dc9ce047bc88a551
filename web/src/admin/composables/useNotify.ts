// Toasts that say what happened; failures carry the API's message.
import { ElMessage } from 'element-plus'
// Imported by name (not auto-imported), so its CSS is imported here.
import 'element-plus/es/components/message/style/css'
import { useI18n } from 'vue-i18n'
import { errorText } from '@/shared/errors'

export function useNotify() {
  const { t } = useI18n()
  return {
    success: (message: string) => ElMessage({ type: 'success', message, showClose: true, duration: 4000 }),
    error: (err: unknown) => ElMessage({ type: 'error', message: errorText(err, t), showClose: true, duration: 8000 }),
  }
}
