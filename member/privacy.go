package member

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/audit"
)

// EraseHook removes a feature's personal data of a member inside the
// erasure transaction (a feature that stores addresses, say). Totals such as
// points or order sums are not personal once the member is anonymous, and
// stay.
type EraseHook func(ctx context.Context, tx *gorm.DB, merchantID, memberID uint64) error

// OnErase registers a hook run whenever a member is erased. Register before
// serving.
func (s *Service) OnErase(h EraseHook) { s.eraseHooks = append(s.eraseHooks, h) }

// Erasure is the outcome of an erasure.
type Erasure struct {
	MemberID      uint64
	ErasedAt      time.Time
	AlreadyErased bool     // the member had been erased before; nothing changed
	Fields        []string // personal fields that held data and were cleared
}

// Erase carries out a PIPL erasure request in one transaction. Cleared: the
// WeChat identities (official-account and mini-program openids, unionid, so
// the person's next follow or login creates a new, unrelated member), phone,
// name, gender, birthday, the staff remark and the last interaction time;
// deleted: care dates, consents and tag assignments; revoked: the member's
// refresh tokens (every signed-in app signs out). Kept, because they no
// longer relate to an identifiable person: the row and its id (so points,
// orders and deliveries keep pointing at something and totals stay right),
// source, follow status and times, the acquisition channel (channel_scene,
// so channel figures stay right), lifecycle stage, tier, and the follow
// history (kind, scene, time). erased_at is set and the member disappears
// from lists and exports. Erasing an erased member changes nothing.
//
// Not covered here: raw WeChat callback rows (wechat_events, which hold the
// openid and message text) are deleted by the inbox's retention (7 days by
// default), not by member.
func (s *Service) Erase(ctx context.Context, merchantID, memberID uint64) (Erasure, error) {
	var out Erasure
	err := s.tx(ctx, func(st store) error {
		m, err := st.get(ctx, merchantID, memberID, true)
		if err != nil {
			return err
		}
		now := s.now()
		out = Erasure{MemberID: memberID}
		if m.ErasedAt != nil {
			out.ErasedAt, out.AlreadyErased = *m.ErasedAt, true
			return audit.Record(ctx, st.db, merchantID, audit.Entry{Action: "member.erase", TargetType: "member",
				TargetIDs: []uint64{memberID}, After: map[string]any{"already_erased": true}}, now)
		}
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"oa_openid", m.OAOpenID != nil}, {"mp_openid", m.MPOpenID != nil}, {"unionid", m.UnionID != nil},
			{"phone", m.Phone != nil}, {"name", m.Name != ""}, {"avatar_url", m.AvatarURL != nil}, {"gender", m.Gender != GenderUnknown},
			{"birthday", m.BirthdayMonth != nil || m.BirthdayYear != nil}, {"remark", m.Remark != ""},
			{"last_interaction_at", m.LastInteractionAt != nil},
		} {
			if f.set {
				out.Fields = append(out.Fields, f.name)
			}
		}
		m.OAOpenID, m.MPOpenID, m.UnionID, m.Phone = nil, nil, nil, nil
		m.Name, m.AvatarURL, m.Gender, m.Remark = "", nil, GenderUnknown, ""
		m.BirthdayMonth, m.BirthdayDay, m.BirthdayYear = nil, nil, nil
		m.LastInteractionAt = nil
		m.ErasedAt, m.UpdatedAt = &now, now
		if err := st.save(ctx, &m); err != nil {
			return err
		}
		tx := st.db.WithContext(ctx)
		deleted := map[string]int64{}
		for _, d := range []struct {
			what  string
			model any
		}{{"care_dates", &CareDate{}}, {"consents", &Consent{}}, {"tags", &memberTag{}}} {
			res := tx.Where("merchant_id = ? AND member_id = ?", merchantID, memberID).Delete(d.model)
			if res.Error != nil {
				return fmt.Errorf("member: erase %d: %s: %w", memberID, d.what, res.Error)
			}
			deleted[d.what] = res.RowsAffected
		}
		// Signed-in apps of the person sign out: no refresh token of theirs
		// works again (access tokens are refused by the member check).
		if err := revokeMemberSessions(ctx, st.db, merchantID, memberID, now); err != nil {
			return err
		}
		for _, h := range s.eraseHooks {
			if err := h(ctx, st.db, merchantID, memberID); err != nil {
				return fmt.Errorf("member: erase %d: hook: %w", memberID, err)
			}
		}
		out.ErasedAt = now
		fields := out.Fields
		if fields == nil {
			fields = []string{}
		}
		// Which fields were erased, never their values.
		return audit.Record(ctx, st.db, merchantID, audit.Entry{Action: "member.erase", TargetType: "member",
			TargetIDs: []uint64{memberID}, After: map[string]any{"erased_fields": fields, "deleted": deleted}}, now)
	})
	if err == nil && !out.AlreadyErased {
		s.log.InfoContext(ctx, "member erased", "merchant_id", merchantID, "member_id", memberID)
	}
	return out, err
}

// PrivacyDocument is everything stored about a member, for a PIPL access
// request: the profile with identities, care dates, consents, the whole
// follow history, tags and the records merged into this one.
type PrivacyDocument struct {
	ExportedAt    time.Time              `json:"exported_at"`
	Member        privacyMember          `json:"member"`
	CareDates     []careDateView         `json:"care_dates"`
	Consents      map[string]consentView `json:"consents"`
	FollowHistory []historyView          `json:"follow_history"`
	Tags          []privacyTag           `json:"tags"`
	MergedFrom    []privacyMerge         `json:"merged_from"`
}

type privacyMember struct {
	ID                uint64     `json:"id"`
	OAOpenID          *string    `json:"official_account_openid"`
	MPOpenID          *string    `json:"mini_program_openid"`
	UnionID           *string    `json:"unionid"`
	Phone             *string    `json:"phone"`
	Name              string     `json:"name"`
	Gender            string     `json:"gender"`
	Birthday          *DateInput `json:"birthday"`
	Source            string     `json:"source"`
	FollowStatus      string     `json:"follow_status"`
	FollowedAt        *time.Time `json:"followed_at"`
	UnfollowedAt      *time.Time `json:"unfollowed_at"`
	ChannelScene      *string    `json:"channel_scene"`
	LastInteractionAt *time.Time `json:"last_interaction_at"`
	Remark            string     `json:"remark"`
	Stage             string     `json:"stage"`
	TierID            *uint64    `json:"tier_id"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
	ErasedAt          *time.Time `json:"erased_at"`
}

type privacyTag struct {
	ID         uint64    `json:"id"`
	Name       string    `json:"name"`
	AssignedAt time.Time `json:"assigned_at"`
}

type privacyMerge struct {
	MemberID uint64    `json:"member_id"`
	Reason   string    `json:"reason"`
	MergedAt time.Time `json:"merged_at"`
}

// maxPrivacyHistory bounds the follow history of an export (a person who
// followed and unfollowed more often than this is a test account).
const maxPrivacyHistory = 10000

// PrivacyExport returns everything stored about the member and records the
// access in the audit log (reading a person's complete data is worth a
// trace even though it changes nothing).
func (s *Service) PrivacyExport(ctx context.Context, merchantID, memberID uint64) (PrivacyDocument, error) {
	st := store{s.db}
	m, err := st.get(ctx, merchantID, memberID, false)
	if err != nil {
		return PrivacyDocument{}, err
	}
	p := Profile{Member: m}
	if p.CareDates, err = st.careDates(ctx, merchantID, memberID); err != nil {
		return PrivacyDocument{}, err
	}
	if p.Consents, err = st.consents(ctx, merchantID, memberID); err != nil {
		return PrivacyDocument{}, err
	}
	if p.History, err = st.history(ctx, merchantID, memberID, maxPrivacyHistory); err != nil {
		return PrivacyDocument{}, err
	}
	var tags []struct {
		ID        uint64
		Name      string
		CreatedAt time.Time
	}
	err = s.db.WithContext(ctx).Table("member_tags mt").Select("t.id, t.name, mt.created_at").
		Joins("JOIN tags t ON t.merchant_id = mt.merchant_id AND t.id = mt.tag_id").
		Where("mt.merchant_id = ? AND mt.member_id = ?", merchantID, memberID).Order("t.name").Scan(&tags).Error
	if err != nil {
		return PrivacyDocument{}, fmt.Errorf("member: privacy export tags: %w", err)
	}
	var merges []mergeRecord
	if err := s.db.WithContext(ctx).Where("merchant_id = ? AND into_member_id = ?", merchantID, memberID).
		Order("id").Find(&merges).Error; err != nil {
		return PrivacyDocument{}, fmt.Errorf("member: privacy export merges: %w", err)
	}
	v := viewOf(p)
	doc := PrivacyDocument{ExportedAt: s.now(), CareDates: v.CareDates, Consents: v.Consents,
		FollowHistory: v.FollowHistory, Tags: []privacyTag{}, MergedFrom: []privacyMerge{},
		Member: privacyMember{ID: m.ID, OAOpenID: m.OAOpenID, MPOpenID: m.MPOpenID, UnionID: m.UnionID,
			Phone: m.Phone, Name: m.Name, Gender: m.Gender.String(), Birthday: v.Birthday, Source: m.Source,
			FollowStatus: m.FollowStatus, FollowedAt: m.FollowedAt, UnfollowedAt: m.UnfollowedAt,
			ChannelScene: m.ChannelScene, LastInteractionAt: m.LastInteractionAt, Remark: m.Remark,
			Stage: m.LifecycleStage, TierID: m.TierID, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
			ErasedAt: m.ErasedAt}}
	for _, t := range tags {
		doc.Tags = append(doc.Tags, privacyTag{ID: t.ID, Name: t.Name, AssignedAt: t.CreatedAt})
	}
	for _, r := range merges {
		doc.MergedFrom = append(doc.MergedFrom, privacyMerge{MemberID: r.FromMemberID, Reason: r.Reason, MergedAt: r.CreatedAt})
	}
	err = audit.Record(ctx, s.db, merchantID, audit.Entry{Action: "member.privacy_export", TargetType: "member",
		TargetIDs: []uint64{memberID}}, doc.ExportedAt)
	if err != nil {
		return PrivacyDocument{}, err
	}
	return doc, nil
}

// ChannelFigures are an acquisition channel's numbers.
type ChannelFigures struct {
	Followers int64 // distinct members whose subscribe event carried the scene
	Members   int64 // members whose acquisition channel (first scene seen) is the scene
}

// maxScenesPerQuery bounds the IN list of one statement.
const maxScenesPerQuery = 500

// ChannelStats returns the figures of each scene (every requested scene is
// in the map, with zeros when nothing matched). Erased members still count:
// erasure keeps their scene and follow history, which are not personal once
// the member is anonymous.
func (s *Service) ChannelStats(ctx context.Context, merchantID uint64, scenes []string) (map[string]ChannelFigures, error) {
	out := make(map[string]ChannelFigures, len(scenes))
	for _, sc := range scenes {
		out[sc] = ChannelFigures{}
	}
	for start := 0; start < len(scenes); start += maxScenesPerQuery {
		chunk := scenes[start:min(start+maxScenesPerQuery, len(scenes))]
		var followers, members []struct {
			Scene string
			N     int64
		}
		// idx_follow_events_scene (merchant_id, scene, kind, member_id)
		// covers this: per scene one range of subscribe rows, already in
		// member_id order, so DISTINCT needs no temporary table.
		err := s.db.WithContext(ctx).Raw("SELECT scene, COUNT(DISTINCT member_id) AS n FROM member_follow_events"+
			" WHERE merchant_id = ? AND scene IN ? AND kind = ? GROUP BY scene",
			merchantID, chunk, HistorySubscribe).Scan(&followers).Error
		if err != nil {
			return nil, fmt.Errorf("member: channel followers: %w", err)
		}
		// idx_members_channel (merchant_id, channel_scene, id): index-only
		// counts, one range per scene.
		err = s.db.WithContext(ctx).Raw("SELECT channel_scene AS scene, COUNT(*) AS n FROM members"+
			" WHERE merchant_id = ? AND channel_scene IN ? GROUP BY channel_scene",
			merchantID, chunk).Scan(&members).Error
		if err != nil {
			return nil, fmt.Errorf("member: channel members: %w", err)
		}
		for _, r := range followers {
			if f, ok := out[r.Scene]; ok {
				f.Followers = r.N
				out[r.Scene] = f
			}
		}
		for _, r := range members {
			if f, ok := out[r.Scene]; ok {
				f.Members = r.N
				out[r.Scene] = f
			}
		}
	}
	return out, nil
}
