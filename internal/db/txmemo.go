package db

import (
	"database/sql"
	"runtime"
	"sync"
	"weak"

	"gorm.io/gorm"
)

// TxMemo remembers, per database transaction, which keys a caller has
// already handled in it, so work that needs doing once per transaction
// (a mark, a notification row) is written once however many of the
// transaction's steps ask for it. A transaction is told apart by its
// *sql.Tx: a transaction run again after a rollback is a new one, and
// the memo of a finished transaction goes away when its *sql.Tx is
// collected. The zero value is ready to use; it is safe for concurrent
// use.
type TxMemo struct {
	mu   sync.Mutex
	seen map[weak.Pointer[sql.Tx]]map[any]struct{}
}

// First reports whether key is new in tx's transaction, and remembers it.
// Outside a transaction it is always true: nothing can be shared there.
func (m *TxMemo) First(tx *gorm.DB, key any) bool {
	sqlTx, ok := tx.Statement.ConnPool.(*sql.Tx)
	if !ok {
		return true
	}
	w := weak.Make(sqlTx)
	m.mu.Lock()
	defer m.mu.Unlock()
	keys, ok := m.seen[w]
	if !ok {
		if m.seen == nil {
			m.seen = map[weak.Pointer[sql.Tx]]map[any]struct{}{}
		}
		keys = map[any]struct{}{}
		m.seen[w] = keys
		runtime.AddCleanup(sqlTx, m.forget, w)
	}
	if _, dup := keys[key]; dup {
		return false
	}
	keys[key] = struct{}{}
	return true
}

func (m *TxMemo) forget(w weak.Pointer[sql.Tx]) {
	m.mu.Lock()
	delete(m.seen, w)
	m.mu.Unlock()
}

// len is the number of transactions remembered (for tests).
func (m *TxMemo) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}
