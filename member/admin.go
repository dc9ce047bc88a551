package member

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/db"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// ListedMember is a member as the admin list shows it.
type ListedMember struct {
	Member
	TagIDs []uint64 // sorted
}

// MemberPage is one page of the admin member list.
type MemberPage struct {
	Members    []ListedMember
	NextCursor string // cursor of the next page; "" on the last one
}

// SQL returns the statement (with arguments) that reads one page of f for
// the merchant, for EXPLAIN in load programs and when debugging a slow list.
func (f MemberFilter) SQL(merchantID uint64) (string, []any) {
	q := f.listQuery(merchantID, f.Limit+1)
	return q.text, q.args
}

// ListMembers returns one page of the merchant's members matching f, newest
// first. The page reads limit+1 rows: the extra one only says whether a next
// page exists.
func (s *Service) ListMembers(ctx context.Context, merchantID uint64, f MemberFilter) (MemberPage, error) {
	if f.Limit < 1 || f.Limit > MaxPageSize {
		return MemberPage{}, apperr.Invalid("limit", fmt.Sprintf("must be 1 to %d", MaxPageSize))
	}
	rows, err := s.listBatch(ctx, s.db, merchantID, f, f.Limit+1)
	if err != nil {
		return MemberPage{}, err
	}
	var page MemberPage
	if len(rows) > f.Limit {
		rows = rows[:f.Limit]
		page.NextCursor = EncodeCursor(rows[len(rows)-1].ID)
	}
	tags, err := store{s.db}.tagIDsOf(ctx, merchantID, memberIDs(rows))
	if err != nil {
		return MemberPage{}, err
	}
	page.Members = make([]ListedMember, len(rows))
	for i, m := range rows {
		page.Members[i] = ListedMember{Member: m, TagIDs: tags[m.ID]}
	}
	return page, nil
}

func (s *Service) listBatch(ctx context.Context, gdb *gorm.DB, merchantID uint64, f MemberFilter, limit int) ([]Member, error) {
	q := f.listQuery(merchantID, limit)
	rows := make([]Member, 0, limit)
	if err := gdb.WithContext(ctx).Raw(q.text, q.args...).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("member: list: %w", err)
	}
	return rows, nil
}

func memberIDs(ms []Member) []uint64 {
	ids := make([]uint64, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

// Detail is everything the admin API shows about one member.
type Detail struct {
	Profile
	Tags []Tag // by name
}

// Detail returns the member with their care dates, consents, recent follow
// history and tags. An erased member is returned too (an anonymous
// tombstone with ErasedAt set).
func (s *Service) Detail(ctx context.Context, merchantID, memberID uint64) (Detail, error) {
	st := store{s.db}
	m, err := st.get(ctx, merchantID, memberID, false)
	if err != nil {
		return Detail{}, err
	}
	return s.detailOf(ctx, st, m)
}

func (s *Service) detailOf(ctx context.Context, st store, m Member) (Detail, error) {
	p, err := s.profileOf(ctx, st, m)
	if err != nil {
		return Detail{}, err
	}
	tags, err := st.tagsOfMember(ctx, m.MerchantID, m.ID)
	if err != nil {
		return Detail{}, err
	}
	return Detail{Profile: p, Tags: tags}, nil
}

// AdminUpdate is a staff member's change to a member. Absent fields stay as
// they are.
type AdminUpdate struct {
	Remark *string `json:"remark"` // staff note, at most 500 characters ("" clears)
	Name   *string `json:"name"`
	Gender *string `json:"gender"` // male, female or unknown
	// Birthday: absent keeps it, null clears it, {"month","day"[,"year"]} sets it.
	Birthday json.RawMessage `json:"birthday"`
	// Phone: absent keeps it, null clears it, a string sets it (mainland
	// numbers as 11 digits, others as +<country code><number>).
	Phone json.RawMessage `json:"phone"`
	// TagIDs replaces the member's tags ([] removes them all).
	TagIDs *[]uint64 `json:"tag_ids"`
}

// Limits of the admin update.
const (
	maxRemarkLength = 500
	maxMemberTags   = 100
)

var (
	// phoneRe accepts what BindPhone stores: mainland numbers without a
	// country code, others with +<code>.
	phoneRe = regexp.MustCompile(`^(1[0-9]{10}|\+[1-9][0-9]{6,18})$`)

	errErased = apperr.New(apperr.ErrConflict, "this member was erased (PIPL) and cannot be changed")
	errPhone  = apperr.New(apperr.ErrConflict, "this phone number is already bound to another member")
)

type parsedAdminUpdate struct {
	profile  parsedUpdate
	remark   *string
	phoneSet bool
	phone    *string // nil with phoneSet: clear
	tagIDs   []uint64
}

func (u AdminUpdate) validate(today time.Time) (parsedAdminUpdate, error) {
	v := &apperr.Validation{}
	var p parsedAdminUpdate
	var err error
	p.profile, err = ProfileUpdate{Name: u.Name, Gender: u.Gender, Birthday: u.Birthday}.validate(today)
	if err != nil {
		var ve *apperr.Validation
		if !errors.As(err, &ve) {
			return p, err
		}
		for f, reason := range ve.Fields {
			v.Add(f, reason)
		}
	}
	if u.Remark != nil {
		r := strings.TrimSpace(*u.Remark)
		switch {
		case utf8.RuneCountInString(r) > maxRemarkLength:
			v.Add("remark", fmt.Sprintf("must be at most %d characters", maxRemarkLength))
		case !utf8.ValidString(r) || strings.IndexFunc(r, isControlNotSpace) >= 0:
			v.Add("remark", "must not contain control characters other than line breaks and tabs")
		}
		p.remark = &r
	}
	if len(u.Phone) > 0 {
		p.phoneSet = true
		if string(u.Phone) != "null" {
			var phone string
			if err := httpx.DecodeJSON(u.Phone, &phone, "phone"); err != nil {
				v.Add("phone", "must be a string or null")
			} else {
				phone, ok := NormalizePhone(phone)
				if !ok {
					v.Add("phone", "must be an 11-digit mainland number or +<country code><number>")
				}
				p.phone = &phone
			}
		}
	}
	if u.TagIDs != nil {
		if len(*u.TagIDs) > maxMemberTags {
			v.Add("tag_ids", fmt.Sprintf("must hold at most %d tags", maxMemberTags))
		}
		for _, id := range *u.TagIDs {
			if id == 0 {
				v.Add("tag_ids", "must hold tag ids")
				break
			}
			if !slices.Contains(p.tagIDs, id) {
				p.tagIDs = append(p.tagIDs, id)
			}
		}
		slices.Sort(p.tagIDs)
		if p.tagIDs == nil {
			p.tagIDs = []uint64{}
		}
	}
	return p, v.Err()
}

func isControlNotSpace(r rune) bool {
	return r != '\n' && r != '\r' && r != '\t' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0))
}

// Personal fields appear in audit summaries only as "set" or "empty": the
// audit log is append-only and outlives a PIPL erasure, so it must not keep
// copies of personal data. The summary still says which field changed and
// whether it was added, replaced or removed.
func presence(set bool) string {
	if set {
		return "set"
	}
	return "empty"
}

// UpdateByStaff applies a staff member's change in one transaction with its
// audit entry: every field is written or, when any is invalid, none is.
func (s *Service) UpdateByStaff(ctx context.Context, merchantID, memberID uint64, u AdminUpdate) (Detail, error) {
	p, err := u.validate(s.now())
	if err != nil {
		return Detail{}, err
	}
	var out Detail
	err = s.tx(ctx, func(st store) error {
		// Locks are taken tags first, then members, on every path that
		// takes both (here and bulk assignment), so two of them cannot
		// deadlock. The tag locks keep a concurrent delete of a tag from
		// leaving an assignment behind.
		if len(p.tagIDs) > 0 {
			if err := st.lockTags(ctx, merchantID, p.tagIDs); err != nil {
				return err
			}
		}
		m, err := st.get(ctx, merchantID, memberID, true)
		if err != nil {
			return err
		}
		if m.ErasedAt != nil {
			return errErased
		}
		before, after := map[string]any{}, map[string]any{}
		changed := func(field string, was, now bool) {
			before[field], after[field] = presence(was), presence(now)
		}
		if p.remark != nil && *p.remark != m.Remark {
			changed("remark", m.Remark != "", *p.remark != "")
			m.Remark = *p.remark
		}
		if n := p.profile.trimmedName; n != nil && *n != m.Name {
			changed("name", m.Name != "", *n != "")
			m.Name = *n
		}
		if g := p.profile.gender; g != nil && *g != m.Gender {
			changed("gender", m.Gender != GenderUnknown, *g != GenderUnknown)
			m.Gender = *g
		}
		if p.profile.birthdaySet {
			var month, day, year *int
			if b := p.profile.birthday; b != nil {
				month, day, year = &b.Month, &b.Day, b.Year
			}
			if !eqInt(month, m.BirthdayMonth) || !eqInt(day, m.BirthdayDay) || !eqInt(year, m.BirthdayYear) {
				changed("birthday", m.BirthdayMonth != nil, month != nil)
				m.BirthdayMonth, m.BirthdayDay, m.BirthdayYear = month, day, year
			}
		}
		if p.phoneSet && str(p.phone) != str(m.Phone) {
			if p.phone != nil {
				other, err := st.by(ctx, merchantID, byPhone, *p.phone, false)
				if err == nil && other.ID != m.ID {
					return errPhone
				}
				if err != nil && !isNotFound(err) {
					return err
				}
			}
			changed("phone", m.Phone != nil, p.phone != nil)
			m.Phone = p.phone
		}
		now := s.now()
		if len(before) > 0 {
			m.UpdatedAt = now
			if err := st.save(ctx, &m); err != nil {
				return err
			}
		}
		if p.tagIDs != nil {
			was, err := st.setMemberTags(ctx, merchantID, memberID, p.tagIDs, now)
			if err != nil {
				return err
			}
			if !slices.Equal(was, p.tagIDs) {
				before["tag_ids"], after["tag_ids"] = was, p.tagIDs
			}
		}
		err = audit.Record(ctx, st.db, merchantID, audit.Entry{Action: "member.update", TargetType: "member",
			TargetIDs: []uint64{memberID}, Before: before, After: after}, now)
		if err != nil {
			return err
		}
		if len(before) > 0 {
			if err := s.profileChanged(ctx, st.db, merchantID, memberID); err != nil {
				return err
			}
		}
		out, err = s.detailOf(ctx, st, m)
		return err
	})
	if db.IsDuplicate(err) {
		// Two staff members giving one number to two members at once: the
		// unique index stops the second.
		return Detail{}, errPhone
	}
	return out, err
}

func eqInt(a, b *int) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// tx runs fn in a transaction (without inTx's retry: admin changes that hit
// a unique index are conflicts to report, not races to retry).
func (s *Service) tx(ctx context.Context, fn func(st store) error) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return fn(store{tx}) })
}
