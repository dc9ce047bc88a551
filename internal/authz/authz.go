// Package authz is the admin API's vocabulary of callers and permissions,
// shared by admin (which authenticates) and the feature packages (which
// check). A request that passed admin's authentication carries a Principal
// in its context; a route declares the permission it needs with Require.
package authz

import (
	"context"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// Perm is one thing a caller may do. API key scopes are Perms too.
type Perm string

// Permissions of the admin API.
const (
	MembersRead    Perm = "members:read"    // list, view members and tags
	MembersWrite   Perm = "members:write"   // edit merchant-side fields, tags, assign tags
	MembersExport  Perm = "members:export"  // CSV export of member lists
	PrivacyManage  Perm = "privacy:manage"  // PIPL export and erasure of a member
	ChannelsRead   Perm = "channels:read"   // acquisition channels and their figures
	ChannelsWrite  Perm = "channels:write"  // create channel QR codes
	StaffManage    Perm = "staff:manage"    // staff accounts
	APIKeysManage  Perm = "apikeys:manage"  // API keys
	SettingsRead   Perm = "settings:read"   // merchant settings (secrets never shown)
	SettingsManage Perm = "settings:manage" // merchant settings and WeChat credentials
	AuditRead      Perm = "audit:read"      // the audit log
	OrdersWrite    Perm = "orders:write"    // post orders and refunds (POS, shop)
	PointsRead     Perm = "points:read"     // ledgers, rules, reports
	PointsWrite    Perm = "points:write"    // rules, tiers, rewards, manual adjustments
	CampaignsRead  Perm = "campaigns:read"  // segments, campaigns, care rules
	CampaignsWrite Perm = "campaigns:write" // edit segments, campaigns, care rules
	Sandbox        Perm = "sandbox"         // sandbox simulation tools
)

// AllPerms lists every permission, in a stable order.
var AllPerms = []Perm{MembersRead, MembersWrite, MembersExport, PrivacyManage, ChannelsRead, ChannelsWrite,
	StaffManage, APIKeysManage, SettingsRead, SettingsManage, AuditRead, OrdersWrite, PointsRead, PointsWrite,
	CampaignsRead, CampaignsWrite, Sandbox}

// Valid reports whether p is a known permission.
func (p Perm) Valid() bool { return slices.Contains(AllPerms, p) }

// Role is a staff member's role.
type Role string

// Roles: owner and admin manage staff and settings; marketer manages
// members' tags, segments, campaigns and care rules; viewer only reads.
const (
	RoleOwner    Role = "owner"
	RoleAdmin    Role = "admin"
	RoleMarketer Role = "marketer"
	RoleViewer   Role = "viewer"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return rolePerms[r] != nil }

var readPerms = []Perm{MembersRead, ChannelsRead, SettingsRead, PointsRead, CampaignsRead}

// rolePerms is what each role may do. Owner and admin differ only in what
// admin's staff rules enforce (an admin cannot touch owners).
var rolePerms = map[Role][]Perm{
	RoleOwner:    AllPerms,
	RoleAdmin:    AllPerms,
	RoleMarketer: append(slices.Clone(readPerms), MembersWrite, MembersExport, ChannelsWrite, CampaignsWrite, Sandbox),
	// A viewer only reads: the sandbox tools write (they create members
	// and stored events) and hand out login codes.
	RoleViewer: slices.Clone(readPerms),
}

// Principal is the authenticated caller of the admin API: a staff member
// (StaffID set) or an API key (APIKeyID set).
type Principal struct {
	MerchantID uint64
	StaffID    uint64
	APIKeyID   uint64
	Name       string // username, or the API key's name
	Role       Role   // staff only
	Scopes     []Perm // API keys only
	ClientIP   string
	RequestID  string
}

// Can reports whether the principal holds perm.
func (p Principal) Can(perm Perm) bool {
	if p.APIKeyID != 0 {
		return slices.Contains(p.Scopes, perm)
	}
	return slices.Contains(rolePerms[p.Role], perm)
}

// IsStaff reports whether the caller is a person rather than an API key.
func (p Principal) IsStaff() bool { return p.StaffID != 0 }

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// From returns the principal in ctx, if any.
func From(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// MustFrom returns the principal of an authenticated request. Routes are
// registered behind the authentication middleware, so a missing principal
// is a wiring bug.
func MustFrom(c *gin.Context) Principal {
	p, ok := From(c.Request.Context())
	if !ok {
		panic("authz: route registered without authentication")
	}
	return p
}

// errForbidden is the answer to an authenticated caller without the
// permission a route needs.
func errForbidden(perm Perm) error {
	return apperr.New(apperr.ErrForbidden, "this action needs the %q permission", perm)
}

// Require lets the request through only if its principal holds perm.
func Require(perm Perm) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, ok := From(c.Request.Context())
		if !ok {
			httpx.Fail(c, apperr.New(apperr.ErrUnauthenticated, "missing, invalid or expired token"))
			return
		}
		if !p.Can(perm) {
			httpx.Fail(c, errForbidden(perm))
			return
		}
		c.Next()
	}
}
