package admin

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// PasswordOptions tune Passwords. The zero value is the production setting.
type PasswordOptions struct {
	// Cost is the bcrypt cost of new hashes; 0 means bcrypt.DefaultCost.
	// Only tests lower it (bcrypt.MinCost), to keep hundreds of logins
	// fast under -race; production wiring never sets it.
	Cost int
	// Concurrency is how many bcrypt computations may run at once; 0 means
	// half of GOMAXPROCS (at least one), so a flood of logins leaves CPU
	// for every other request.
	Concurrency int
	// MaxWait is how long a request waits for a free slot before it is
	// refused with 503 and Retry-After; 0 means 2 seconds.
	MaxWait time.Duration
}

// Passwords hashes and checks staff passwords with bcrypt, a few at a time.
// bcrypt is deliberately slow (about 50-100 ms of one core at the default
// cost): without a bound, a hundred parallel logins take every core and
// /healthz, POS orders and callbacks wait behind them. Requests beyond the
// bound queue for at most MaxWait, then get 503 with Retry-After instead of
// queueing without end.
type Passwords struct {
	cost    int
	slots   chan struct{}
	maxWait time.Duration
	waiting atomic.Int64
}

// NewPasswords returns the bounded bcrypt worker.
func NewPasswords(o PasswordOptions) *Passwords {
	if o.Cost == 0 {
		o.Cost = bcrypt.DefaultCost
	}
	if o.Concurrency <= 0 {
		o.Concurrency = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 2 * time.Second
	}
	return &Passwords{cost: o.Cost, slots: make(chan struct{}, o.Concurrency), maxWait: o.MaxWait}
}

// errBusy is the answer when every bcrypt slot stayed taken for MaxWait.
var errBusy = &apperr.RetryAfter{Seconds: 1,
	Err: apperr.New(apperr.ErrUnavailable, "the server is busy checking passwords; try again in a moment")}

// Acquire takes one bcrypt slot, waiting at most MaxWait and no longer than
// ctx allows; the caller must call the returned release. Exported so a
// test can fill every slot and watch what other requests do meanwhile.
func (p *Passwords) Acquire(ctx context.Context) (release func(), err error) {
	select {
	case p.slots <- struct{}{}:
		return p.release, nil
	default:
	}
	p.waiting.Add(1)
	defer p.waiting.Add(-1)
	t := time.NewTimer(p.maxWait)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return p.release, nil
	case <-t.C:
		return nil, errBusy
	case <-ctx.Done():
		return nil, fmt.Errorf("admin: waiting to check a password: %w", ctx.Err())
	}
}

func (p *Passwords) release() { <-p.slots }

// Waiting returns how many requests are waiting for a bcrypt slot now.
func (p *Passwords) Waiting() int { return int(p.waiting.Load()) }

// Hash returns the bcrypt hash of password.
func (p *Passwords) Hash(ctx context.Context, password string) ([]byte, error) {
	release, err := p.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	h, err := bcrypt.GenerateFromPassword([]byte(password), p.cost)
	if err != nil {
		return nil, fmt.Errorf("admin: hash password: %w", err)
	}
	return h, nil
}

// Matches reports whether password matches hash. A malformed hash is a
// mismatch, not an error: the caller answers as for a wrong password.
func (p *Passwords) Matches(ctx context.Context, hash []byte, password string) (bool, error) {
	release, err := p.Acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil, nil
}
