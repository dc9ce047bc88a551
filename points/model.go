package points

import (
	"time"

	"github.com/wxloyalty/loyalty/event"
)

// Entry kinds. points is the change of the available balance and pending
// that of the pending balance.
const (
	KindEarn    = "earn"    // an order or a check-in (pending while on hold)
	KindRedeem  = "redeem"  // a reward redeemed (negative)
	KindExpire  = "expire"  // what was left of a lot at its expiry (negative)
	KindAdjust  = "adjust"  // a manual adjustment by staff, with a reason
	KindReverse = "reverse" // a refund taking back order points (negative), or a cancelled redemption giving points back
	KindGift    = "gift"    // one-off bonuses and campaign gifts
	KindRelease = "release" // held points becoming available: points +n, pending -n
)

// Lot statuses.
const (
	lotPending   = "pending"   // held until available_at
	lotActive    = "active"    // spendable; remaining > 0
	lotUsed      = "used"      // nothing left
	lotExpired   = "expired"   // what was left expired
	lotCancelled = "cancelled" // a refund took all of a held lot
)

// Reference types of entries.
const (
	refOrder      = "order"
	refRefund     = "refund"
	refCheckIn    = "checkin"
	refBonus      = "bonus"
	refLot        = "lot"
	refReward     = "reward"
	refRedemption = "redemption"
	refAdmin      = "admin"
	refGift       = "gift"
)

// Entry is one ledger entry: an immutable change of a member's points.
type Entry struct {
	ID             uint64     `gorm:"primaryKey" json:"id"`
	MerchantID     uint64     `json:"-"`
	MemberID       uint64     `json:"member_id"`
	Kind           string     `json:"kind"`
	Points         int64      `json:"points"`  // change of the available balance
	Pending        int64      `json:"pending"` // change of the pending balance
	Balance        int64      `json:"balance"` // available balance after the entry
	Reason         string     `json:"reason"`
	RefType        string     `json:"ref_type"`
	RefID          string     `json:"ref_id"`
	RuleVersion    int        `json:"rule_version"`
	IdempotencyKey string     `json:"-"`
	ExpiresAt      *time.Time `json:"expires_at"` // credits: when the lot expires
	CreatedAt      time.Time  `json:"created_at"`
}

// TableName implements gorm's tabler.
func (Entry) TableName() string { return "points_ledger" }

// account is a points_accounts row.
type account struct {
	MerchantID     uint64 `gorm:"primaryKey"`
	MemberID       uint64 `gorm:"primaryKey"`
	Available      int64
	Pending        int64
	Debt           int64 // points a refund took back that were already spent; paid from the next credits
	TierID         *uint64
	TierSince      *time.Time
	TierReviewAt   *time.Time
	TierGraceUntil *time.Time
	CapDay         int // local yyyymmdd of cap_earned
	CapEarned      int64
	StreakDay      int // local yyyymmdd of the last check-in
	Streak         int
	BonusFlags     int
	CreatedAt      time.Time
	UpdatedAt      time.Time

	was     balances            // the balances as locked or last saved (not a column): see emitBalance
	entries []event.PointsEntry // the entries written since (not a column): see emitBalance
}

// balances are an account's balances at one moment.
type balances struct{ available, pending int64 }

// locked remembers the balances as they are now.
func (a *account) locked() { a.was, a.entries = balances{a.Available, a.Pending}, nil }

// wrote remembers an entry written for the account, for the next
// points.changed event.
func (a *account) wrote(e Entry) {
	a.entries = append(a.entries, event.PointsEntry{ID: e.ID, Kind: e.Kind, Points: e.Points, Pending: e.Pending, Reason: e.Reason,
		RefType: e.RefType, RefID: e.RefID})
}

func (account) TableName() string { return "points_accounts" }

// lot is a points_lots row.
type lot struct {
	ID          uint64 `gorm:"primaryKey"`
	MerchantID  uint64
	MemberID    uint64
	LedgerID    uint64
	Status      string
	Points      int64
	Remaining   int64
	AvailableAt *time.Time
	ExpiresAt   *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func (lot) TableName() string { return "points_lots" }

// Order is an order posted by a shop or POS.
type Order struct {
	ID             uint64 `gorm:"primaryKey"`
	MerchantID     uint64
	MemberID       uint64
	ExternalID     string
	AmountFen      int64
	RefundedFen    int64
	Points         int64 // earned (on hold or available)
	PointsReversed int64 // taken back by refunds
	LotID          *uint64
	LedgerID       *uint64
	RuleVersion    int
	EarnDetail     string // JSON EarnDetail
	CampaignID     *uint64
	Items          *string // JSON []Item
	OrderedAt      time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// TableName implements gorm's tabler.
func (Order) TableName() string { return "points_orders" }

// Refund is a full or partial refund of an order.
type Refund struct {
	ID               uint64 `gorm:"primaryKey"`
	MerchantID       uint64
	OrderID          uint64
	MemberID         uint64
	RefundID         string
	AmountFen        int64
	PointsReversed   int64 // taken from the available balance (or owed as debt)
	PendingCancelled int64 // taken from points still on hold
	LedgerID         *uint64
	Reason           string
	CreatedAt        time.Time
}

// TableName implements gorm's tabler.
func (Refund) TableName() string { return "points_refunds" }

// Tier is a merchant-defined level.
type Tier struct {
	ID            uint64 `gorm:"primaryKey"`
	MerchantID    uint64
	Name          string
	Level         int
	Threshold     int64
	MultiplierPct int
	Benefits      string // JSON array of strings
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// TableName implements gorm's tabler.
func (Tier) TableName() string { return "points_tiers" }

// TierChange is a points_tier_history row.
type TierChange struct {
	ID         uint64 `gorm:"primaryKey"`
	MerchantID uint64
	MemberID   uint64
	FromTierID *uint64
	ToTierID   *uint64
	Reason     string
	Qualifying int64
	CreatedAt  time.Time
}

// TableName implements gorm's tabler.
func (TierChange) TableName() string { return "points_tier_history" }

// Tier change reasons.
const (
	tierUpgrade   = "upgrade"
	tierDowngrade = "downgrade"
	tierGrace     = "grace"
	tierRetain    = "retain"
	tierMerge     = "merge"
)

// Reward kinds.
const (
	RewardGift       = "gift"
	RewardCoupon     = "coupon"
	RewardPointsCash = "points_cash"
)

// Reward is a catalogue item.
type Reward struct {
	ID             uint64 `gorm:"primaryKey"`
	MerchantID     uint64
	Name           string
	Description    string
	Kind           string
	PointsCost     int64
	CashFen        int64
	StockTotal     *int64 // nil: unlimited
	StockLeft      *int64
	PerMemberLimit int
	ValidFrom      *time.Time
	ValidUntil     *time.Time
	// CouponValidDays is how long a coupon reward's coupon stays valid
	// after the redemption (never past ValidUntil).
	CouponValidDays int
	Active          bool
	CreatedAt       time.Time
	UpdatedAt       time.Time
	DeletedAt       *time.Time
}

// TableName implements gorm's tabler.
func (Reward) TableName() string { return "points_rewards" }

// Redemption statuses.
const (
	RedemptionCompleted = "completed"
	RedemptionCancelled = "cancelled"
)

// Redemption is a reward redeemed by a member.
type Redemption struct {
	ID             uint64 `gorm:"primaryKey"`
	MerchantID     uint64
	MemberID       uint64
	RewardID       uint64
	RewardName     string
	IdempotencyKey string
	Points         int64
	CashFen        int64
	Code           *string
	Status         string
	LedgerID       uint64
	CancelLedgerID *uint64
	CancelReason   string
	CreatedAt      time.Time
	CancelledAt    *time.Time
}

// TableName implements gorm's tabler.
func (Redemption) TableName() string { return "points_redemptions" }

type redemptionLot struct {
	MerchantID   uint64 `gorm:"primaryKey"`
	RedemptionID uint64 `gorm:"primaryKey"`
	LotID        uint64 `gorm:"primaryKey"`
	Points       int64
}

func (redemptionLot) TableName() string { return "points_redemption_lots" }

type ruleVersion struct {
	MerchantID uint64 `gorm:"primaryKey"`
	Version    int    `gorm:"primaryKey;autoIncrement:false"`
	Body       string
	CreatedBy  string
	CreatedAt  time.Time
}

func (ruleVersion) TableName() string { return "points_rule_versions" }
