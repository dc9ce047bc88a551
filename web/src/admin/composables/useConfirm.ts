// Asking before an action that changes or removes something (WEB.md:
// destructive actions ask first and say what will happen). The question
// names what will happen; the confirming button says the action.
import { ElMessageBox } from 'element-plus'
// Imported by name (not auto-imported), so its CSS is imported here.
import 'element-plus/es/components/message-box/style/css'
import { useI18n } from 'vue-i18n'

export interface Question {
  /** What will happen, in words. */
  message: string
  title: string
  /** The confirming button's text (default: the title). */
  action?: string
  kind?: 'warning' | 'info'
}

/** useConfirm returns confirmed: true when the person confirmed, false when they backed out. */
export function useConfirm() {
  const { t } = useI18n()
  return async function confirmed({ message, title, action = title, kind = 'warning' }: Question): Promise<boolean> {
    try {
      await ElMessageBox.confirm(message, title, { type: kind, confirmButtonText: action, cancelButtonText: t('common.cancel') })
      return true
    } catch {
      return false
    }
  }
}
