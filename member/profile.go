package member

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm/clause"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// Profile is what a member sees and edits about themselves.
type Profile struct {
	Member    Member
	CareDates []CareDate
	Consents  []Consent
	History   []FollowEvent // newest first, at most historyLimit
}

const historyLimit = 50

// Profile returns the member's profile.
func (s *Service) Profile(ctx context.Context, merchantID, memberID uint64) (Profile, error) {
	st := store{s.db}
	m, err := st.get(ctx, merchantID, memberID, false)
	if err != nil {
		return Profile{}, err
	}
	return s.profileOf(ctx, st, m)
}

func (s *Service) profileOf(ctx context.Context, st store, m Member) (Profile, error) {
	p := Profile{Member: m}
	var err error
	if p.CareDates, err = st.careDates(ctx, m.MerchantID, m.ID); err != nil {
		return Profile{}, err
	}
	if p.Consents, err = st.consents(ctx, m.MerchantID, m.ID); err != nil {
		return Profile{}, err
	}
	if p.History, err = st.history(ctx, m.MerchantID, m.ID, historyLimit); err != nil {
		return Profile{}, err
	}
	return p, nil
}

// ProfileUpdate is a member's change to their profile. Absent fields stay
// as they are.
type ProfileUpdate struct {
	Name   *string `json:"name"`
	Gender *string `json:"gender"` // male, female or unknown
	// Birthday: absent keeps it, null clears it, an object sets it
	// ({"month":2,"day":29} or with "year").
	Birthday json.RawMessage `json:"birthday"`
	// CareDates replaces all care dates ([] clears them).
	CareDates *[]CareDateInput `json:"care_dates"`
	// Consents sets the given channels (template, subscribe, sms).
	Consents map[string]bool `json:"consents"`
}

// DateInput is a day of the year with an optional year.
type DateInput struct {
	Month int  `json:"month"`
	Day   int  `json:"day"`
	Year  *int `json:"year"`
}

// CareDateInput is one care date.
type CareDateInput struct {
	Kind  string `json:"kind"` // wedding_anniversary, child_birthday or custom
	Label string `json:"label"`
	DateInput
}

// Limits of the profile.
const (
	maxNameLength  = 64
	maxLabelLength = 32
	maxCareDates   = 20
)

var careKinds = map[string]bool{CareWedding: true, CareChildBirthday: true, CareCustom: true}

var consentChannels = map[string]bool{ConsentTemplate: true, ConsentSubscribe: true, ConsentSMS: true}

var genders = map[string]Gender{"unknown": GenderUnknown, "male": GenderMale, "female": GenderFemale}

// parsedUpdate is a validated ProfileUpdate.
type parsedUpdate struct {
	ProfileUpdate
	gender        *Gender
	birthdaySet   bool
	birthday      *DateInput // nil with birthdaySet: clear
	trimmedName   *string
	careDateInput []CareDateInput
}

// validate checks every field and reports all problems at once, each under
// its JSON path (care_dates[1].day, consents.sms...).
func (u ProfileUpdate) validate(today time.Time) (parsedUpdate, error) {
	p := parsedUpdate{ProfileUpdate: u}
	v := &apperr.Validation{}
	if u.Name != nil {
		name := strings.TrimSpace(*u.Name)
		switch {
		case utf8.RuneCountInString(name) > maxNameLength:
			v.Add("name", fmt.Sprintf("must be at most %d characters", maxNameLength))
		case strings.IndexFunc(name, unicode.IsControl) >= 0:
			v.Add("name", "must not contain control characters")
		}
		p.trimmedName = &name
	}
	if u.Gender != nil {
		g, ok := genders[*u.Gender]
		if !ok {
			v.Add("gender", "must be male, female or unknown")
		}
		p.gender = &g
	}
	if len(u.Birthday) > 0 {
		p.birthdaySet = true
		if string(u.Birthday) != "null" {
			var d DateInput
			if err := httpx.DecodeJSON(u.Birthday, &d, "birthday"); err != nil {
				return p, err
			}
			checkDate(v, "birthday", d, 1900, today.Year())
			p.birthday = &d
		}
	}
	if u.CareDates != nil {
		if len(*u.CareDates) > maxCareDates {
			v.Add("care_dates", fmt.Sprintf("must hold at most %d dates", maxCareDates))
		}
		for i, c := range *u.CareDates {
			path := fmt.Sprintf("care_dates[%d]", i)
			if !careKinds[c.Kind] {
				v.Add(path+".kind", "must be wedding_anniversary, child_birthday or custom")
			}
			c.Label = strings.TrimSpace(c.Label)
			switch {
			case utf8.RuneCountInString(c.Label) > maxLabelLength:
				v.Add(path+".label", fmt.Sprintf("must be at most %d characters", maxLabelLength))
			case strings.IndexFunc(c.Label, unicode.IsControl) >= 0:
				v.Add(path+".label", "must not contain control characters")
			case c.Kind == CareCustom && c.Label == "":
				v.Add(path+".label", "is required for a custom date")
			}
			checkDate(v, path, c.DateInput, 1900, 2100)
			p.careDateInput = append(p.careDateInput, c)
		}
	}
	for ch := range u.Consents {
		if !consentChannels[ch] {
			v.Add("consents."+ch, "is not a channel (template, subscribe, sms)")
		}
	}
	return p, v.Err()
}

// checkDate validates a month/day with an optional year. February 29 is
// allowed without a year (it exists in leap years), and with a year only if
// that year is a leap year.
func checkDate(v *apperr.Validation, path string, d DateInput, minYear, maxYear int) {
	if d.Month < 1 || d.Month > 12 {
		v.Add(path+".month", "must be 1 to 12")
		return
	}
	year := 2000 // a leap year: any day that exists in some year is accepted
	if d.Year != nil {
		if *d.Year < minYear || *d.Year > maxYear {
			v.Add(path+".year", fmt.Sprintf("must be between %d and %d", minYear, maxYear))
			return
		}
		year = *d.Year
	}
	if last := daysIn(year, time.Month(d.Month)); d.Day < 1 || d.Day > last {
		if d.Year != nil && d.Month == 2 && d.Day == 29 {
			v.Add(path+".day", fmt.Sprintf("February 29 does not exist in %d", year))
			return
		}
		v.Add(path+".day", fmt.Sprintf("must be 1 to %d for month %d", last, d.Month))
	}
}

func daysIn(year int, month time.Month) int {
	return time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// UpdateProfile applies a member's change in one transaction: either every
// field is written or, when any field is invalid, none is.
func (s *Service) UpdateProfile(ctx context.Context, merchantID, memberID uint64, u ProfileUpdate) (Profile, error) {
	p, err := u.validate(s.now())
	if err != nil {
		return Profile{}, err
	}
	var out Profile
	err = s.inTx(ctx, func(st store) error {
		m, err := st.get(ctx, merchantID, memberID, true)
		if err != nil {
			return err
		}
		now := s.now()
		if p.trimmedName != nil {
			m.Name = *p.trimmedName
		}
		if p.gender != nil {
			m.Gender = *p.gender
		}
		if p.birthdaySet {
			m.BirthdayMonth, m.BirthdayDay, m.BirthdayYear = nil, nil, nil
			if b := p.birthday; b != nil {
				m.BirthdayMonth, m.BirthdayDay, m.BirthdayYear = &b.Month, &b.Day, b.Year
			}
		}
		m.UpdatedAt = now
		if err := st.save(ctx, &m); err != nil {
			return err
		}
		tx := st.db.WithContext(ctx)
		if u.CareDates != nil {
			if err := tx.Where("merchant_id = ? AND member_id = ?", merchantID, memberID).Delete(&CareDate{}).Error; err != nil {
				return fmt.Errorf("member: replace care dates: %w", err)
			}
			rows := make([]CareDate, 0, len(p.careDateInput))
			for _, c := range p.careDateInput {
				rows = append(rows, CareDate{MerchantID: merchantID, MemberID: memberID, Kind: c.Kind, Label: c.Label,
					Month: c.Month, Day: c.Day, Year: c.Year, CreatedAt: now, UpdatedAt: now})
			}
			if len(rows) > 0 {
				if err := tx.Create(&rows).Error; err != nil {
					return fmt.Errorf("member: replace care dates: %w", err)
				}
			}
		}
		if len(u.Consents) > 0 {
			if err := s.setConsents(ctx, st, m, u.Consents, now); err != nil {
				return err
			}
		}
		if err := s.profileChanged(ctx, st.db, merchantID, memberID); err != nil {
			return err
		}
		out, err = s.profileOf(ctx, st, m)
		return err
	})
	return out, err
}

// setConsents records consent changes. granted_at keeps the time consent
// was first given (re-confirming does not move it); withdrawing sets
// revoked_at.
func (s *Service) setConsents(ctx context.Context, st store, m Member, set map[string]bool, now time.Time) error {
	current, err := st.consents(ctx, m.MerchantID, m.ID)
	if err != nil {
		return err
	}
	byChannel := map[string]Consent{}
	for _, c := range current {
		byChannel[c.Channel] = c
	}
	for ch, granted := range set {
		c, ok := byChannel[ch]
		if !ok {
			c = Consent{MerchantID: m.MerchantID, MemberID: m.ID, Channel: ch}
		}
		switch {
		case granted && !c.Granted:
			c.Granted, c.GrantedAt, c.RevokedAt = true, &now, nil
		case !granted && (c.Granted || !ok):
			c.Granted, c.RevokedAt = false, &now
		default:
			continue // no change
		}
		c.UpdatedAt = now
		err := st.db.WithContext(ctx).Clauses(clause.OnConflict{UpdateAll: true}).Create(&c).Error
		if err != nil {
			return fmt.Errorf("member: consent %s: %w", ch, err)
		}
	}
	return nil
}
