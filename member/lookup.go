package member

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// LookupKey names a member by one of the identities the service keeps for
// them. Members have no member code or card number of their own: the id,
// the WeChat identities and the phone number are what identify them.
type LookupKey struct {
	OpenID  string // official-account or mini-program openid
	UnionID string
	Phone   string // as NormalizePhone returns it
}

// Lookup returns the member with the identity, in full (as Detail). An
// erased member has no identities left and is not found; so is another
// merchant's. Each probe is one of the unique identity indexes (merchant,
// oa_openid / mp_openid / unionid / phone).
func (s *Service) Lookup(ctx context.Context, merchantID uint64, k LookupKey) (Detail, error) {
	st := store{s.db}
	var (
		m   Member
		err error
	)
	switch {
	case k.OpenID != "":
		// An openid is one app's: the official account's and the
		// mini-program's never collide, so trying both is unambiguous.
		m, err = st.by(ctx, merchantID, byOAOpenID, k.OpenID, false)
		if isNotFound(err) {
			m, err = st.by(ctx, merchantID, byMPOpenID, k.OpenID, false)
		}
	case k.UnionID != "":
		m, err = st.by(ctx, merchantID, byUnionID, k.UnionID, false)
	case k.Phone != "":
		m, err = st.by(ctx, merchantID, byPhone, k.Phone, false)
	default:
		return Detail{}, apperr.Invalid("openid", "give one of openid, unionid or phone")
	}
	if isNotFound(err) {
		return Detail{}, errMemberNotFound
	}
	if err != nil {
		return Detail{}, err
	}
	return s.detailOf(ctx, st, m)
}

// lookup serves GET /members/lookup?openid=|unionid=|phone= (exactly one):
// the member as GET /members/{member_id} shows it (phone masked for
// viewers, who may still look a member up by a whole number).
func (h *AdminHandler) lookup(c *gin.Context) {
	p := authz.MustFrom(c)
	q, err := httpx.QueryOnly(c, "openid", "unionid", "phone")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	v := &apperr.Validation{}
	given := 0
	for name, vs := range q {
		given++
		switch {
		case len(vs) > 1:
			v.Add(name, "is given more than once")
		case vs[0] == "" || len(vs[0]) > 64:
			v.Add(name, "must be 1 to 64 characters")
		}
	}
	if given != 1 && v.Err() == nil {
		name := "openid"
		for _, n := range []string{"openid", "unionid", "phone"} {
			if q.Has(n) {
				name = n
				break
			}
		}
		v.Add(name, "give exactly one of openid, unionid or phone")
	}
	k := LookupKey{OpenID: q.Get("openid"), UnionID: q.Get("unionid")}
	if s := q.Get("phone"); s != "" && v.Err() == nil {
		phone, ok := NormalizePhone(s)
		if !ok {
			v.Add("phone", "must be an 11-digit mainland number or +<country code><number>")
		}
		k.Phone = phone
	}
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	d, err := h.svc.Lookup(c.Request.Context(), p.MerchantID, k)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, detailView(d, masked(p)))
}
