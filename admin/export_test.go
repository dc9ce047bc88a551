package admin

// OnDashboardWait makes h call f whenever a cold computation has to wait
// for a slot: its merchant's ("merchant") or a shared one ("overall").
func OnDashboardWait(h *DashboardHandler, f func(merchantID uint64, slot string)) { h.slots.onWait = f }
