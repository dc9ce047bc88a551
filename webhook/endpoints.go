package webhook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/secrets"
)

// Sealer seals and opens endpoint secrets; *secrets.Keyring satisfies it.
type Sealer interface {
	Encrypt(l secrets.Label, plaintext string) (string, error)
	Decrypt(l secrets.Label, stored string) (string, error)
}

// MaxEndpoints bounds a merchant's endpoints.
const MaxEndpoints = 20

var errEndpointNotFound = apperr.New(apperr.ErrNotFound, "webhook endpoint not found")

// Endpoints is a merchant's webhook endpoints: registration, and the
// cached answer to "who subscribes to this event" the outbox asks on every
// change.
type Endpoints struct {
	db      *gorm.DB
	sealer  Sealer
	targets Targets
	now     func() time.Time

	mu    sync.Mutex
	cache map[uint64]cachedEndpoints // merchant id → its enabled endpoints
	// TTL bounds how long another instance's change to a merchant's
	// endpoints takes to reach this one's outbox (this instance's own
	// changes apply at once).
	TTL time.Duration
}

type cachedEndpoints struct {
	list []Endpoint
	at   time.Time
}

// NewEndpoints returns the endpoint store.
func NewEndpoints(gdb *gorm.DB, sealer Sealer, targets Targets, now func() time.Time) *Endpoints {
	return &Endpoints{db: gdb, sealer: sealer, targets: targets, now: now, cache: map[uint64]cachedEndpoints{},
		TTL: 10 * time.Second}
}

// EndpointInput is what a merchant sets on an endpoint. On update, a nil
// field is left as it is.
type EndpointInput struct {
	URL         *string      `json:"url"`
	Description *string      `json:"description"`
	Events      []event.Type `json:"events"`
	Enabled     *bool        `json:"enabled"`
}

func (in EndpointInput) apply(ctx context.Context, t Targets, e *Endpoint, creating bool) error {
	v := &apperr.Validation{}
	switch {
	case in.URL != nil:
		u, err := t.check(ctx, strings.TrimSpace(*in.URL))
		if err != nil {
			v.Add("url", err.Error())
		}
		e.URL = u
	case creating:
		v.Add("url", "is required")
	}
	if in.Description != nil {
		if len([]rune(*in.Description)) > 255 {
			v.Add("description", "must be at most 255 characters")
		}
		e.Description = *in.Description
	}
	switch {
	case in.Events != nil:
		if len(in.Events) == 0 {
			v.Add("events", "must name at least one event type")
		}
		seen := map[event.Type]bool{}
		e.Events = e.Events[:0:0]
		for i, t := range in.Events {
			if !t.Valid() {
				v.Add(fmt.Sprintf("events[%d]", i), "is not an event type")
			} else if !seen[t] {
				seen[t] = true
				e.Events = append(e.Events, t)
			}
		}
	case creating:
		v.Add("events", "is required")
	}
	if in.Enabled != nil {
		e.Enabled = *in.Enabled
	}
	return v.Err()
}

func label(merchantID uint64) secrets.Label {
	return secrets.Label{Purpose: "webhook_endpoint.secret", Owner: "merchant/" + strconv.FormatUint(merchantID, 10)}
}

// newSecret returns a fresh signing secret and its sealed form.
func (s *Endpoints) newSecret(merchantID uint64) (plain, sealed string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("webhook: secret: %w", err)
	}
	plain = "whsec_" + hex.EncodeToString(b)
	sealed, err = s.sealer.Encrypt(label(merchantID), plain)
	if err != nil {
		return "", "", fmt.Errorf("webhook: seal secret: %w", err)
	}
	return plain, sealed, nil
}

// Create registers an endpoint, enabled unless in says otherwise, and
// returns it with its signing secret (the only time the secret is shown).
func (s *Endpoints) Create(ctx context.Context, merchantID uint64, in EndpointInput) (Endpoint, string, error) {
	e := Endpoint{MerchantID: merchantID, Enabled: true}
	if err := in.apply(ctx, s.targets, &e, true); err != nil {
		return Endpoint{}, "", err
	}
	plain, sealed, err := s.newSecret(merchantID)
	if err != nil {
		return Endpoint{}, "", err
	}
	e.Secret = sealed
	e.CreatedAt, e.UpdatedAt = s.now(), s.now()
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Endpoint{}).Where("merchant_id = ?", merchantID).Count(&n).Error; err != nil {
			return err
		}
		if n >= MaxEndpoints {
			return apperr.New(apperr.ErrConflict, "a merchant has at most %d webhook endpoints", MaxEndpoints)
		}
		return tx.Create(&e).Error
	})
	if err != nil {
		return Endpoint{}, "", fmt.Errorf("webhook: create endpoint: %w", err)
	}
	s.forget(merchantID)
	return e, plain, nil
}

// List returns the merchant's endpoints, oldest first.
func (s *Endpoints) List(ctx context.Context, merchantID uint64) ([]Endpoint, error) {
	var out []Endpoint
	// idx_webhook_endpoints_merchant.
	if err := s.db.WithContext(ctx).Where("merchant_id = ?", merchantID).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("webhook: list endpoints: %w", err)
	}
	return out, nil
}

// Get returns one of the merchant's endpoints.
func (s *Endpoints) Get(ctx context.Context, merchantID, id uint64) (Endpoint, error) {
	var e Endpoint
	err := s.db.WithContext(ctx).Where("merchant_id = ? AND id = ?", merchantID, id).Take(&e).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Endpoint{}, errEndpointNotFound
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhook: endpoint %d: %w", id, err)
	}
	return e, nil
}

// Update changes the fields in sets.
func (s *Endpoints) Update(ctx context.Context, merchantID, id uint64, in EndpointInput) (Endpoint, error) {
	e, err := s.Get(ctx, merchantID, id)
	if err != nil {
		return Endpoint{}, err
	}
	if err := in.apply(ctx, s.targets, &e, false); err != nil {
		return Endpoint{}, err
	}
	e.UpdatedAt = s.now()
	if err := s.db.WithContext(ctx).Model(&Endpoint{}).Where("merchant_id = ? AND id = ?", merchantID, id).
		Select("url", "description", "events", "enabled", "updated_at").Updates(&e).Error; err != nil {
		return Endpoint{}, fmt.Errorf("webhook: update endpoint %d: %w", id, err)
	}
	s.forget(merchantID)
	return e, nil
}

// RotateSecret gives the endpoint a new signing secret and returns it (the
// only time it is shown); deliveries sign with it from then on.
func (s *Endpoints) RotateSecret(ctx context.Context, merchantID, id uint64) (Endpoint, string, error) {
	e, err := s.Get(ctx, merchantID, id)
	if err != nil {
		return Endpoint{}, "", err
	}
	plain, sealed, err := s.newSecret(merchantID)
	if err != nil {
		return Endpoint{}, "", err
	}
	e.Secret, e.UpdatedAt = sealed, s.now()
	if err := s.db.WithContext(ctx).Model(&Endpoint{}).Where("merchant_id = ? AND id = ?", merchantID, id).
		Updates(map[string]any{"secret": sealed, "updated_at": e.UpdatedAt}).Error; err != nil {
		return Endpoint{}, "", fmt.Errorf("webhook: rotate secret of %d: %w", id, err)
	}
	s.forget(merchantID)
	return e, plain, nil
}

// Delete removes the endpoint and its deliveries (pending ones are not
// sent; the events stay for the other endpoints).
func (s *Endpoints) Delete(ctx context.Context, merchantID, id uint64) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Where("merchant_id = ? AND id = ?", merchantID, id).Delete(&Endpoint{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errEndpointNotFound
		}
		return tx.Where("endpoint_id = ?", id).Delete(&Delivery{}).Error
	})
	if err != nil && !errors.Is(err, errEndpointNotFound) {
		err = fmt.Errorf("webhook: delete endpoint %d: %w", id, err)
	}
	s.forget(merchantID)
	return err
}

// secret returns the endpoint's signing secret in clear.
func (s *Endpoints) secret(e Endpoint) (string, error) {
	plain, err := s.sealer.Decrypt(label(e.MerchantID), e.Secret)
	if err != nil {
		return "", fmt.Errorf("webhook: secret of endpoint %d: %w", e.ID, err)
	}
	return plain, nil
}

func (s *Endpoints) forget(merchantID uint64) {
	s.mu.Lock()
	delete(s.cache, merchantID)
	s.mu.Unlock()
}

// enabled returns the merchant's enabled endpoints, from the cache when
// it is fresh, else read through q (the caller's transaction).
func (s *Endpoints) enabled(ctx context.Context, q *gorm.DB, merchantID uint64) ([]Endpoint, error) {
	now := time.Now()
	s.mu.Lock()
	c, ok := s.cache[merchantID]
	s.mu.Unlock()
	if ok && now.Sub(c.at) < s.TTL {
		return c.list, nil
	}
	var list []Endpoint
	// idx_webhook_endpoints_merchant.
	if err := q.WithContext(ctx).Select("id", "merchant_id", "events", "enabled").
		Where("merchant_id = ? AND enabled = ?", merchantID, true).Order("id").Find(&list).Error; err != nil {
		return nil, fmt.Errorf("webhook: endpoints of merchant %d: %w", merchantID, err)
	}
	s.mu.Lock()
	s.cache[merchantID] = cachedEndpoints{list: list, at: now}
	s.mu.Unlock()
	return list, nil
}
