package member

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wxloyalty/loyalty/internal/audit"
)

// ExportOptions tune ExportCSV.
type ExportOptions struct {
	MaskPhones bool // write phone numbers as 138****5678
	BatchSize  int  // members per query (and per flush); DefaultExportBatch when 0
	// Begin is called once, after the first query succeeded and before the
	// first byte is written: the last moment to set response headers or to
	// fail with a proper error status.
	Begin func()
}

// DefaultExportBatch is how many members the export reads per query.
const DefaultExportBatch = 1000

// exportHeader is the CSV header. Times are UTC (RFC 3339).
var exportHeader = []string{"id", "name", "phone", "gender", "birthday", "follow_status", "followed_at",
	"channel", "stage", "tier_id", "tags", "remark", "created_at", "last_interaction_at"}

// ExportCSV writes the merchant's members matching f (paging fields
// ignored) to w as CSV, newest first, and returns how many it wrote. It reads
// them in keyset batches through the list's query, so memory stays bounded
// by one batch whatever the number of members, and flushes w after each
// batch when w is an http.Flusher. It is not a snapshot: members who join
// during the export are not in it (their ids are above the first batch).
//
// The export is recorded in the audit log (a bulk read of personal data).
// Errors before Begin leave w untouched; later ones can only be returned.
func (s *Service) ExportCSV(ctx context.Context, merchantID uint64, f MemberFilter, o ExportOptions, w io.Writer) (int64, error) {
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultExportBatch
	}
	f.Before, f.Limit = 0, o.BatchSize
	tagNames, err := s.tagNames(ctx, merchantID)
	if err != nil {
		return 0, err
	}
	batch, err := s.listBatch(ctx, s.db, merchantID, f, o.BatchSize)
	if err != nil {
		return 0, err
	}
	err = audit.Record(ctx, s.db, merchantID, audit.Entry{Action: "member.export", TargetType: "member",
		After: map[string]any{"filter": f.summary(), "masked": o.MaskPhones}}, s.now())
	if err != nil {
		return 0, err
	}
	if o.Begin != nil {
		o.Begin()
	}
	// A UTF-8 byte order mark, so spreadsheet programs read Chinese names
	// correctly instead of guessing a legacy encoding.
	if _, err := io.WriteString(w, "\ufeff"); err != nil {
		return 0, err
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(exportHeader); err != nil {
		return 0, err
	}
	flusher, _ := w.(http.Flusher)
	record := make([]string, len(exportHeader))
	var n int64
	for {
		tags, err := store{s.db}.tagIDsOf(ctx, merchantID, memberIDs(batch))
		if err != nil {
			return n, err
		}
		for _, m := range batch {
			exportRecord(record, m, tags[m.ID], tagNames, o.MaskPhones)
			if err := cw.Write(record); err != nil {
				return n, err
			}
			n++
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return n, fmt.Errorf("member: export: write: %w", err)
		}
		if flusher != nil {
			flusher.Flush()
		}
		if len(batch) < o.BatchSize {
			return n, nil
		}
		f.Before = batch[len(batch)-1].ID
		if batch, err = s.listBatch(ctx, s.db, merchantID, f, o.BatchSize); err != nil {
			return n, err
		}
	}
}

func exportRecord(rec []string, m Member, tagIDs []uint64, tagNames map[uint64]string, mask bool) {
	phone := str(m.Phone)
	if mask {
		phone = MaskPhone(phone)
	}
	birthday := ""
	if m.BirthdayMonth != nil && m.BirthdayDay != nil {
		birthday = fmt.Sprintf("%02d-%02d", *m.BirthdayMonth, *m.BirthdayDay)
		if m.BirthdayYear != nil {
			birthday = fmt.Sprintf("%04d-%s", *m.BirthdayYear, birthday)
		}
	}
	names := make([]string, 0, len(tagIDs))
	for _, id := range tagIDs {
		names = append(names, tagNames[id])
	}
	tier := ""
	if m.TierID != nil {
		tier = strconv.FormatUint(*m.TierID, 10)
	}
	rec[0] = strconv.FormatUint(m.ID, 10)
	rec[1] = csvCell(m.Name)
	rec[2] = csvCell(phone)
	rec[3] = m.Gender.String()
	rec[4] = birthday
	rec[5] = m.FollowStatus
	rec[6] = csvTime(m.FollowedAt)
	rec[7] = csvCell(str(m.ChannelScene))
	rec[8] = m.LifecycleStage
	rec[9] = tier
	rec[10] = csvCell(strings.Join(names, "|"))
	rec[11] = csvCell(m.Remark)
	rec[12] = m.CreatedAt.UTC().Format(time.RFC3339)
	rec[13] = csvTime(m.LastInteractionAt)
}

// csvCell defuses CSV formula injection: a spreadsheet runs a cell that
// starts with = + - @ (or a tab or carriage return, which some strip first)
// as a formula, so such cells get a leading apostrophe and are shown as
// text. Applied to every cell holding text that came from outside.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func csvTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// MaskPhone hides the middle of a phone number: 13812345678 becomes
// 138****5678. Numbers too short to keep 7 digits visible keep their last
// two only.
func MaskPhone(p string) string {
	switch {
	case p == "":
		return ""
	case len(p) >= 11:
		return p[:3] + "****" + p[len(p)-4:]
	case len(p) > 2:
		return "****" + p[len(p)-2:]
	}
	return "****"
}

func (s *Service) tagNames(ctx context.Context, merchantID uint64) (map[uint64]string, error) {
	var tags []Tag
	if err := s.db.WithContext(ctx).Select("id", "name").Where("merchant_id = ?", merchantID).Find(&tags).Error; err != nil {
		return nil, fmt.Errorf("member: tag names: %w", err)
	}
	out := make(map[uint64]string, len(tags))
	for _, t := range tags {
		out[t.ID] = t.Name
	}
	return out, nil
}

// summary describes the filter for the audit log: which filters were used,
// with values except the search text (which may be a name or a phone
// number).
func (f MemberFilter) summary() map[string]any {
	out := map[string]any{}
	if f.FollowStatus != "" {
		out["follow_status"] = f.FollowStatus
	}
	if f.Channel != "" {
		out["channel"] = f.Channel
	}
	if len(f.TagIDs) > 0 {
		out["tag"] = f.TagIDs
	}
	if f.TierID != 0 {
		out["tier"] = f.TierID
	}
	if f.Stage != "" {
		out["stage"] = f.Stage
	}
	if f.BirthdayMonth != 0 {
		out["birthday_month"] = f.BirthdayMonth
	}
	if f.PhonePrefix != "" || f.NamePrefix != "" {
		out["q"] = "set"
	}
	if f.Segment != nil {
		out["segment_id"] = f.Segment.ID
	}
	return out
}
