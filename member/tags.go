package member

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/audit"
	"github.com/wxloyalty/loyalty/internal/db"
)

// Tag is a label staff put on members ("VIP", "coffee lover").
type Tag struct {
	ID         uint64 `gorm:"primaryKey"`
	MerchantID uint64
	Name       string // unique per merchant, case-insensitively
	Color      string // "#rrggbb" or ""
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// TagCount is a tag with the number of members holding it.
type TagCount struct {
	Tag
	Members int64
}

// memberTag is a member_tags row.
type memberTag struct {
	MerchantID uint64 `gorm:"primaryKey"`
	TagID      uint64 `gorm:"primaryKey"`
	MemberID   uint64 `gorm:"primaryKey"`
	CreatedAt  time.Time
}

func (memberTag) TableName() string { return "member_tags" }

// Limits of tags.
const (
	maxTagName      = 32
	MaxTags         = 1000 // per merchant: the tag list is one unpaged response
	MaxBulkMembers  = 1000 // member ids per assign or unassign call
	maxIDsInMessage = 10
)

var (
	colorRe        = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)
	errTagNotFound = apperr.New(apperr.ErrNotFound, "tag not found")
	errTagName     = apperr.New(apperr.ErrConflict, "a tag with this name already exists")
)

// TagInput creates a tag, or changes one (absent fields stay as they are).
type TagInput struct {
	Name  *string `json:"name"`
	Color *string `json:"color"` // "#rrggbb"; "" for none
}

func (in TagInput) validate(create bool) (TagInput, error) {
	v := &apperr.Validation{}
	out := TagInput{}
	switch {
	case in.Name != nil:
		name := strings.TrimSpace(*in.Name)
		switch {
		case name == "" || utf8.RuneCountInString(name) > maxTagName:
			v.Add("name", fmt.Sprintf("must be 1 to %d characters", maxTagName))
		case !utf8.ValidString(name) || hasControl(name):
			v.Add("name", "must not contain control characters")
		}
		out.Name = &name
	case create:
		v.Add("name", "is required")
	}
	if in.Color != nil {
		c := strings.ToLower(strings.TrimSpace(*in.Color))
		if c != "" && !colorRe.MatchString(c) {
			v.Add("color", `must be a colour like "#ff8800", or ""`)
		}
		out.Color = &c
	}
	return out, v.Err()
}

// Tags returns the merchant's tags by name, each with its member count.
func (s *Service) Tags(ctx context.Context, merchantID uint64) ([]TagCount, error) {
	var tags []Tag
	if err := s.db.WithContext(ctx).Where("merchant_id = ?", merchantID).Order("name").Find(&tags).Error; err != nil {
		return nil, fmt.Errorf("member: tags: %w", err)
	}
	// One pass over the merchant's assignments in primary-key order
	// (merchant_id, tag_id, member_id): an index-only scan grouped as it is
	// read, no sort. Its cost grows with the number of assignments (about
	// 100 ms per million); if that ever matters, keep a count on tags,
	// updated in the assigning transactions.
	var counts []struct {
		TagID uint64
		N     int64
	}
	err := s.db.WithContext(ctx).Raw("SELECT tag_id, COUNT(*) AS n FROM member_tags WHERE merchant_id = ? GROUP BY tag_id",
		merchantID).Scan(&counts).Error
	if err != nil {
		return nil, fmt.Errorf("member: tag counts: %w", err)
	}
	byTag := make(map[uint64]int64, len(counts))
	for _, c := range counts {
		byTag[c.TagID] = c.N
	}
	out := make([]TagCount, len(tags))
	for i, t := range tags {
		out[i] = TagCount{Tag: t, Members: byTag[t.ID]}
	}
	return out, nil
}

// CreateTag adds a tag.
func (s *Service) CreateTag(ctx context.Context, merchantID uint64, in TagInput) (Tag, error) {
	in, err := in.validate(true)
	if err != nil {
		return Tag{}, err
	}
	now := s.now()
	t := Tag{MerchantID: merchantID, Name: *in.Name, CreatedAt: now, UpdatedAt: now}
	if in.Color != nil {
		t.Color = *in.Color
	}
	err = s.tx(ctx, func(st store) error {
		var n int64
		if err := st.db.WithContext(ctx).Model(&Tag{}).Where("merchant_id = ?", merchantID).Count(&n).Error; err != nil {
			return fmt.Errorf("member: count tags: %w", err)
		}
		if n >= MaxTags {
			return apperr.New(apperr.ErrUnprocessable, "a merchant can have at most %d tags", MaxTags)
		}
		if err := st.db.WithContext(ctx).Create(&t).Error; err != nil {
			return fmt.Errorf("member: create tag: %w", err)
		}
		return audit.Record(ctx, st.db, merchantID, audit.Entry{Action: "tag.create", TargetType: "tag",
			TargetIDs: []uint64{t.ID}, After: map[string]any{"name": t.Name, "color": t.Color}}, now)
	})
	if db.IsDuplicate(err) {
		return Tag{}, errTagName
	}
	return t, err
}

// UpdateTag renames or recolours a tag.
func (s *Service) UpdateTag(ctx context.Context, merchantID, tagID uint64, in TagInput) (Tag, error) {
	in, err := in.validate(false)
	if err != nil {
		return Tag{}, err
	}
	var t Tag
	err = s.tx(ctx, func(st store) error {
		var err error
		if t, err = st.tag(ctx, merchantID, tagID, true); err != nil {
			return err
		}
		before, after := map[string]any{}, map[string]any{}
		if in.Name != nil && *in.Name != t.Name {
			before["name"], after["name"] = t.Name, *in.Name
			t.Name = *in.Name
		}
		if in.Color != nil && *in.Color != t.Color {
			before["color"], after["color"] = t.Color, *in.Color
			t.Color = *in.Color
		}
		now := s.now()
		if len(before) > 0 {
			t.UpdatedAt = now
			err := st.db.WithContext(ctx).Model(&t).Where("merchant_id = ?", merchantID).
				Select("name", "color", "updated_at").Updates(&t).Error
			if err != nil {
				return fmt.Errorf("member: update tag: %w", err)
			}
		}
		return audit.Record(ctx, st.db, merchantID, audit.Entry{Action: "tag.update", TargetType: "tag",
			TargetIDs: []uint64{tagID}, Before: before, After: after}, now)
	})
	if db.IsDuplicate(err) {
		return Tag{}, errTagName
	}
	return t, err
}

// DeleteTag removes a tag and its assignments.
func (s *Service) DeleteTag(ctx context.Context, merchantID, tagID uint64) error {
	return s.tx(ctx, func(st store) error {
		t, err := st.tag(ctx, merchantID, tagID, true)
		if err != nil {
			return err
		}
		tx := st.db.WithContext(ctx)
		res := tx.Where("merchant_id = ? AND tag_id = ?", merchantID, tagID).Delete(&memberTag{})
		if res.Error != nil {
			return fmt.Errorf("member: delete tag assignments: %w", res.Error)
		}
		if err := tx.Where("merchant_id = ? AND id = ?", merchantID, tagID).Delete(&Tag{}).Error; err != nil {
			return fmt.Errorf("member: delete tag: %w", err)
		}
		return audit.Record(ctx, st.db, merchantID, audit.Entry{Action: "tag.delete", TargetType: "tag",
			TargetIDs: []uint64{tagID}, Before: map[string]any{"name": t.Name, "color": t.Color, "members": res.RowsAffected}},
			s.now())
	})
}

// BulkResult says what a bulk assignment changed.
type BulkResult struct {
	TagID     uint64 `json:"tag_id"`
	Requested int    `json:"requested"` // distinct member ids in the request
	Changed   int    `json:"changed"`   // assignments added (assign) or removed (unassign)
}

// AssignTag gives the tag to the members. It is idempotent: members who
// already hold the tag are left as they are. Every id must be a member of
// the merchant, else nothing changes and the call fails with not found; an
// erased member cannot be tagged (conflict).
func (s *Service) AssignTag(ctx context.Context, merchantID, tagID uint64, memberIDs []uint64) (BulkResult, error) {
	return s.bulkTag(ctx, merchantID, tagID, memberIDs, true)
}

// UnassignTag takes the tag away from the members; members without it are
// left as they are. Every id must be a member of the merchant.
func (s *Service) UnassignTag(ctx context.Context, merchantID, tagID uint64, memberIDs []uint64) (BulkResult, error) {
	return s.bulkTag(ctx, merchantID, tagID, memberIDs, false)
}

func checkBulkIDs(ids []uint64) ([]uint64, error) {
	if len(ids) == 0 || len(ids) > MaxBulkMembers {
		return nil, apperr.Invalid("member_ids", fmt.Sprintf("must hold 1 to %d member ids", MaxBulkMembers))
	}
	out := make([]uint64, 0, len(ids))
	for _, id := range ids {
		if id == 0 {
			return nil, apperr.Invalid("member_ids", "must hold member ids")
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (s *Service) bulkTag(ctx context.Context, merchantID, tagID uint64, memberIDs []uint64, assign bool) (BulkResult, error) {
	ids, err := checkBulkIDs(memberIDs)
	if err != nil {
		return BulkResult{}, err
	}
	for attempt := 0; ; attempt++ {
		res, err := s.bulkTagOnce(ctx, merchantID, tagID, ids, assign)
		// A concurrent assignment of the same member won an insert: what
		// the caller asked for exists, and one retry sees and reports it.
		if !db.IsDuplicate(err) || attempt == 1 {
			return res, err
		}
	}
}

func (s *Service) bulkTagOnce(ctx context.Context, merchantID, tagID uint64, ids []uint64, assign bool) (BulkResult, error) {
	res := BulkResult{TagID: tagID, Requested: len(ids)}
	err := s.tx(ctx, func(st store) error {
		// The tag's row lock orders this against a concurrent delete of the
		// tag, which would otherwise leave assignments of a deleted tag.
		t, err := st.tag(ctx, merchantID, tagID, true)
		if err != nil {
			return err
		}
		// Assigning locks the members too (primary key, in id order), so an
		// erasure running at the same time cannot miss the new assignment.
		found, err := st.membersByID(ctx, merchantID, ids, assign)
		if err != nil {
			return err
		}
		if missing := missingIDs(ids, found); len(missing) > 0 {
			return apperr.New(apperr.ErrNotFound, "member not found: %s", idList(missing))
		}
		tx := st.db.WithContext(ctx)
		var have []uint64
		// Primary key (merchant_id, tag_id, member_id): one range probe per id.
		if err := tx.Model(&memberTag{}).Where("merchant_id = ? AND tag_id = ? AND member_id IN ?", merchantID, tagID, ids).
			Order("member_id").Pluck("member_id", &have).Error; err != nil {
			return fmt.Errorf("member: tag assignments: %w", err)
		}
		var changed []uint64
		now := s.now()
		if assign {
			var erased []uint64
			for _, id := range ids {
				if found[id] {
					erased = append(erased, id)
				}
			}
			if len(erased) > 0 {
				return apperr.New(apperr.ErrConflict, "erased members cannot be tagged: %s", idList(erased))
			}
			rows := make([]memberTag, 0, len(ids))
			for _, id := range ids {
				if _, ok := slices.BinarySearch(have, id); !ok {
					rows = append(rows, memberTag{MerchantID: merchantID, TagID: tagID, MemberID: id, CreatedAt: now})
					changed = append(changed, id)
				}
			}
			if len(rows) > 0 {
				if err := tx.CreateInBatches(rows, 500).Error; err != nil {
					return fmt.Errorf("member: assign tag: %w", err)
				}
			}
		} else {
			changed = have
			if len(changed) > 0 {
				if err := tx.Where("merchant_id = ? AND tag_id = ? AND member_id IN ?", merchantID, tagID, changed).
					Delete(&memberTag{}).Error; err != nil {
					return fmt.Errorf("member: unassign tag: %w", err)
				}
			}
		}
		res.Changed = len(changed)
		action := "tag.assign"
		if !assign {
			action = "tag.unassign"
		}
		// The targets are the members whose tags changed; the tag is in the
		// summary.
		return audit.Record(ctx, st.db, merchantID, audit.Entry{Action: action, TargetType: "member",
			TargetIDs: changed, After: map[string]any{"tag_id": tagID, "tag": t.Name, "requested": len(ids),
				"changed": len(changed)}}, now)
	})
	return res, err
}

// membersByID returns which of ids are members of the merchant, mapped to
// whether they were erased. lock takes their row locks.
func (s store) membersByID(ctx context.Context, merchantID uint64, ids []uint64, lock bool) (map[uint64]bool, error) {
	var rows []struct {
		ID       uint64
		ErasedAt *time.Time
	}
	// Primary key lookups (members.id), checked against the merchant.
	err := s.q(ctx, lock).Model(&Member{}).Select("id", "erased_at").
		Where("merchant_id = ? AND id IN ?", merchantID, ids).Order("id").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("member: find members: %w", err)
	}
	out := make(map[uint64]bool, len(rows))
	for _, r := range rows {
		out[r.ID] = r.ErasedAt != nil
	}
	return out, nil
}

func missingIDs(ids []uint64, found map[uint64]bool) []uint64 {
	var out []uint64
	for _, id := range ids {
		if _, ok := found[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

// idList names up to maxIDsInMessage ids for a message.
func idList(ids []uint64) string {
	var b strings.Builder
	for i, id := range ids {
		if i == maxIDsInMessage {
			fmt.Fprintf(&b, " and %d more", len(ids)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatUint(id, 10))
	}
	return b.String()
}

func (s store) tag(ctx context.Context, merchantID, id uint64, lock bool) (Tag, error) {
	var t Tag
	err := s.q(ctx, lock).Where("merchant_id = ? AND id = ?", merchantID, id).Take(&t).Error
	if err != nil {
		if isRecordNotFound(err) {
			return Tag{}, errTagNotFound
		}
		return Tag{}, fmt.Errorf("member: get tag: %w", err)
	}
	return t, nil
}

// tagIDsOf returns the tags of each member, sorted. idx_member_tags_member
// (merchant_id, member_id): one probe per member.
func (s store) tagIDsOf(ctx context.Context, merchantID uint64, memberIDs []uint64) (map[uint64][]uint64, error) {
	out := make(map[uint64][]uint64, len(memberIDs))
	if len(memberIDs) == 0 {
		return out, nil
	}
	var rows []memberTag
	err := s.db.WithContext(ctx).Select("member_id", "tag_id").
		Where("merchant_id = ? AND member_id IN ?", merchantID, memberIDs).Order("member_id, tag_id").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("member: tags of members: %w", err)
	}
	for _, r := range rows {
		out[r.MemberID] = append(out[r.MemberID], r.TagID)
	}
	return out, nil
}

// tagsOfMember returns one member's tags by name.
func (s store) tagsOfMember(ctx context.Context, merchantID, memberID uint64) ([]Tag, error) {
	var out []Tag
	err := s.db.WithContext(ctx).Table("tags").Select("tags.*").
		Joins("JOIN member_tags mt ON mt.merchant_id = tags.merchant_id AND mt.tag_id = tags.id").
		Where("mt.merchant_id = ? AND mt.member_id = ?", merchantID, memberID).Order("tags.name").Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("member: tags of member: %w", err)
	}
	return out, nil
}

// lockTags locks the tags (sorted ids) of the merchant, in id order; any
// id that is not one is not found.
func (s store) lockTags(ctx context.Context, merchantID uint64, ids []uint64) error {
	var found []uint64
	if err := s.db.WithContext(ctx).Model(&Tag{}).Where("merchant_id = ? AND id IN ?", merchantID, ids).
		Clauses(clause.Locking{Strength: "UPDATE"}).Order("id").Pluck("id", &found).Error; err != nil {
		return fmt.Errorf("member: lock tags: %w", err)
	}
	var missing []uint64
	for _, id := range ids {
		if _, ok := slices.BinarySearch(found, id); !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return apperr.New(apperr.ErrNotFound, "tag not found: %s", idList(missing))
	}
	return nil
}

// setMemberTags makes tagIDs (sorted, distinct, locked with lockTags) the
// member's tags and returns the tags held before.
func (s store) setMemberTags(ctx context.Context, merchantID, memberID uint64, tagIDs []uint64, now time.Time) ([]uint64, error) {
	tx := s.db.WithContext(ctx)
	var was []uint64
	if err := tx.Model(&memberTag{}).Where("merchant_id = ? AND member_id = ?", merchantID, memberID).
		Order("tag_id").Pluck("tag_id", &was).Error; err != nil {
		return nil, fmt.Errorf("member: tags of member: %w", err)
	}
	if was == nil {
		was = []uint64{}
	}
	var drop []uint64
	for _, id := range was {
		if _, ok := slices.BinarySearch(tagIDs, id); !ok {
			drop = append(drop, id)
		}
	}
	if len(drop) > 0 {
		if err := tx.Where("merchant_id = ? AND member_id = ? AND tag_id IN ?", merchantID, memberID, drop).
			Delete(&memberTag{}).Error; err != nil {
			return nil, fmt.Errorf("member: remove tags: %w", err)
		}
	}
	var add []memberTag
	for _, id := range tagIDs {
		if _, ok := slices.BinarySearch(was, id); !ok {
			add = append(add, memberTag{MerchantID: merchantID, TagID: id, MemberID: memberID, CreatedAt: now})
		}
	}
	if len(add) > 0 {
		if err := tx.Create(&add).Error; err != nil {
			return nil, fmt.Errorf("member: add tags: %w", err)
		}
	}
	return was, nil
}
