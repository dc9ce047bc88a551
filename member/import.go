package member

// Member import: a merchant moving from another system brings its members
// as a CSV file. A dry run reads the whole file and reports what a real run
// would do (rows created, rows whose member already exists, rows rejected
// and why). A real run is a job (member_imports) that commits batches of
// rows, each in one transaction with the job's cursor, so an interrupted
// run resumes after the last committed batch, and importing the same file
// again (same content) resumes or reports that job: nothing is imported
// twice. A row whose openid, unionid or phone already belongs to a member
// changes nothing (counted as existing); an imported member's opening
// points are one ledger entry with a key derived from the file and row.

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/db"
)

// Opening is an imported member's opening position, written by the points
// feature (Openings) in the import's transaction.
type Opening struct {
	MemberID uint64
	Points   int64   // opening balance (0: none)
	TierID   *uint64 // nil: no tier
	Key      string  // the balance entry's idempotency key
}

// Openings is what the import needs from points; *points.Service
// satisfies it.
type Openings interface {
	TierIDs(ctx context.Context, merchantID uint64) (map[string]uint64, error) // by lower-cased name
	Open(ctx context.Context, tx *gorm.DB, merchantID uint64, in []Opening) error
}

// ImportColumns are the CSV columns an import understands (the header row
// names them, in any order; only openid, unionid or phone is required per
// row). Dates are YYYY-MM-DD or MM-DD; tags are separated by "|" and must
// exist; tier names an existing tier; points is the opening balance.
var ImportColumns = []string{"openid", "unionid", "phone", "name", "birthday", "wedding_anniversary", "child_birthday",
	"tier", "points", "tags"}

// ImportStatus is where an import job stands.
type ImportStatus string

// Import statuses.
const (
	ImportRunning ImportStatus = "running" // being imported (or interrupted: importing the file again resumes it)
	ImportDone    ImportStatus = "done"
	ImportFailed  ImportStatus = "failed" // stopped on an error; importing the file again resumes it
)

// maxReportedRows bounds the rejected rows a report lists (all are counted).
const maxReportedRows = 1000

// DefaultImportWorkers is how many batches an import writes at once on
// MySQL unless told otherwise (Importer.Workers).
const DefaultImportWorkers = 2

// importBatch is how many rows one transaction imports.
const importBatch = 1000

// RejectedRow is a row an import refuses, and why.
type RejectedRow struct {
	Row    int    `json:"row"` // the CSV line's row number, the header being row 1
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// ImportReport is what a dry run found, or a job has done so far.
type ImportReport struct {
	Rows         int           `json:"rows"`     // data rows read
	Created      int           `json:"created"`  // members created (dry run: that would be)
	Existing     int           `json:"existing"` // rows whose member already exists: nothing changed
	Rejected     int           `json:"rejected"`
	RejectedRows []RejectedRow `json:"rejected_rows"` // the first 1,000
}

// ImportJob is a member_imports row.
type ImportJob struct {
	ID           uint64        `gorm:"primaryKey" json:"id"`
	MerchantID   uint64        `json:"-"`
	FileHash     string        `json:"file_sha256"`
	FileName     string        `json:"file_name"`
	Status       ImportStatus  `json:"status"`
	RowsRead     int           `json:"rows_read"`
	CursorRow    int           `json:"cursor_row"` // the last row whose batch committed
	Created      int           `json:"created"`
	Existing     int           `json:"existing"`
	Rejected     int           `json:"rejected"`
	RejectedRows []RejectedRow `gorm:"serializer:json" json:"rejected_rows"`
	Error        string        `json:"error"`
	LeaseOwner   *string       `json:"-"`
	LeaseUntil   *time.Time    `json:"-"`
	CreatedAt    time.Time     `json:"created_at"`
	UpdatedAt    time.Time     `json:"updated_at"`
	FinishedAt   *time.Time    `json:"finished_at"`
}

// TableName implements gorm's tabler.
func (ImportJob) TableName() string { return "member_imports" }

var errImportNotFound = apperr.New(apperr.ErrNotFound, "import not found")

// Importer imports members from CSV files.
type Importer struct {
	db       *gorm.DB
	openings Openings
	now      func() time.Time
	owner    string
	// Lease is how long a run holds its job without committing a batch.
	Lease time.Duration
	// Progress, when set, is told the job's counts after each batch.
	Progress func(ImportReport)
	// Workers is how many batches a run writes at once on MySQL (each on
	// its own connection; they commit in file order). SQLite writes one.
	Workers int
	// afterBatch, when set (tests), runs after each committed batch; an
	// error stops the run there, as a crash would.
	afterBatch func(cursor int) error
}

// NewImporter returns the importer.
func NewImporter(gdb *gorm.DB, openings Openings, now func() time.Time) *Importer {
	return &Importer{db: gdb, openings: openings, now: now, owner: db.InstanceName(), Lease: 5 * time.Minute,
		Workers: DefaultImportWorkers}
}

// importRow is a valid row.
type importRow struct {
	row             int
	openid, unionid string
	phone, name     string
	birthday        *md
	wedding, child  *md
	tierID          *uint64
	points          int64
	tagIDs          []uint64
	identities      []identityValue
	existing        bool // set by the batch lookup
}

type md struct{ month, day, year int }

type identityValue struct {
	col   identity
	value string
}

var (
	importIDRe    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	importDateRe  = regexp.MustCompile(`^(?:(\d{4})-)?(\d{1,2})-(\d{1,2})$`)
	errNoIdentity = errors.New("needs an openid, unionid or phone")
)

// reader reads an import file: its header, then rows.
type importReader struct {
	r    *csv.Reader
	cols map[string]int
	row  int
}

func newImportReader(r io.Reader) (*importReader, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, apperr.Invalid("file", "is not a CSV file with a header row")
	}
	cols := map[string]int{}
	v := &apperr.Validation{}
	for i, h := range head {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		switch {
		case !slices.Contains(ImportColumns, h):
			v.Add("file", fmt.Sprintf("column %q is not one of %s", h, strings.Join(ImportColumns, ", ")))
		case cols[h] != 0:
			v.Add("file", fmt.Sprintf("column %q appears twice", h))
		default:
			cols[h] = i + 1 // 1-based, so 0 means absent
		}
	}
	if cols["openid"] == 0 && cols["unionid"] == 0 && cols["phone"] == 0 {
		v.Add("file", "the header must name openid, unionid or phone")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	return &importReader{r: cr, cols: cols, row: 1}, nil
}

// next returns the next record (nil at the end) and its row number.
func (ir *importReader) next() ([]string, int, error) {
	rec, err := ir.r.Read()
	ir.row++
	if errors.Is(err, io.EOF) {
		return nil, ir.row, nil
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return []string{}, ir.row, nil // a malformed line: rejected as such
	}
	if err != nil {
		return nil, ir.row, fmt.Errorf("member: import: read row %d: %w", ir.row, err)
	}
	return rec, ir.row, nil
}

func (ir *importReader) get(rec []string, col string) string {
	i := ir.cols[col]
	if i == 0 || i > len(rec) {
		return ""
	}
	return strings.TrimSpace(rec[i-1])
}

// parse validates one record; the RejectedRow is set when it is refused.
func (ir *importReader) parse(rec []string, row int, tiers, tags map[string]uint64) (importRow, *RejectedRow) {
	bad := func(field, reason string) (importRow, *RejectedRow) {
		return importRow{}, &RejectedRow{Row: row, Field: field, Reason: reason}
	}
	if len(rec) == 0 {
		return bad("", "is not a well-formed CSV line")
	}
	r := importRow{row: row, openid: ir.get(rec, "openid"), unionid: ir.get(rec, "unionid"), phone: ir.get(rec, "phone"),
		name: ir.get(rec, "name")}
	for _, c := range []struct {
		col   identity
		field string
		v     string
	}{{byOAOpenID, "openid", r.openid}, {byUnionID, "unionid", r.unionid}, {byPhone, "phone", r.phone}} {
		if c.v == "" {
			continue
		}
		if c.col == byPhone && !phoneRe.MatchString(c.v) || c.col != byPhone && !importIDRe.MatchString(c.v) {
			return bad(c.field, "is not a valid "+c.field)
		}
		r.identities = append(r.identities, identityValue{c.col, c.v})
	}
	if len(r.identities) == 0 {
		return bad("openid", errNoIdentity.Error())
	}
	if utf8.RuneCountInString(r.name) > 64 {
		return bad("name", "must be at most 64 characters")
	}
	for _, d := range []struct {
		field string
		dst   **md
	}{{"birthday", &r.birthday}, {"wedding_anniversary", &r.wedding}, {"child_birthday", &r.child}} {
		s := ir.get(rec, d.field)
		if s == "" {
			continue
		}
		v, ok := parseImportDate(s)
		if !ok {
			return bad(d.field, "must be a date YYYY-MM-DD or MM-DD")
		}
		*d.dst = &v
	}
	if s := ir.get(rec, "tier"); s != "" {
		id, ok := tiers[strings.ToLower(s)]
		if !ok {
			return bad("tier", fmt.Sprintf("names no tier of the merchant (%q)", s))
		}
		r.tierID = &id
	}
	if s := ir.get(rec, "points"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > 1_000_000_000 {
			return bad("points", "must be a whole number from 0 to 1000000000")
		}
		r.points = n
	}
	if s := ir.get(rec, "tags"); s != "" {
		for _, name := range strings.Split(s, "|") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			id, ok := tags[strings.ToLower(name)]
			if !ok {
				return bad("tags", fmt.Sprintf("names no tag of the merchant (%q): create it first", name))
			}
			if !slices.Contains(r.tagIDs, id) {
				r.tagIDs = append(r.tagIDs, id)
			}
		}
	}
	return r, nil
}

func parseImportDate(s string) (md, bool) {
	m := importDateRe.FindStringSubmatch(s)
	if m == nil {
		return md{}, false
	}
	year, _ := strconv.Atoi(m[1])
	month, _ := strconv.Atoi(m[2])
	day, _ := strconv.Atoi(m[3])
	y := year
	if y == 0 {
		y = 2000 // a leap year: 02-29 is a valid birthday
	}
	if y < 1900 || month < 1 || month > 12 || day < 1 || time.Date(y, time.Month(month), day, 0, 0, 0, 0, time.UTC).Day() != day {
		return md{}, false
	}
	return md{month: month, day: day, year: year}, true
}

// seen remembers the identities of the file's earlier rows (as 64-bit
// hashes: 1,000,000 rows of three identities fit in some 60 MB), so a
// second row for one person is rejected rather than merged silently.
type seen map[uint64]int

func (s seen) check(r importRow) *RejectedRow {
	for _, id := range r.identities {
		h := fnv.New64a()
		h.Write([]byte(id.col))
		h.Write([]byte{0})
		h.Write([]byte(id.value))
		k := h.Sum64()
		if first, ok := s[k]; ok {
			return &RejectedRow{Row: r.row, Field: fieldOf(id.col), Reason: fmt.Sprintf("repeats the %s of row %d", fieldOf(id.col), first)}
		}
		s[k] = r.row
	}
	return nil
}

func fieldOf(c identity) string {
	if c == byOAOpenID {
		return "openid"
	}
	return string(c)
}

// lookups are the merchant's tiers and tags by lower-cased name.
func (im *Importer) lookups(ctx context.Context, merchantID uint64) (tiers, tags map[string]uint64, err error) {
	if tiers, err = im.openings.TierIDs(ctx, merchantID); err != nil {
		return nil, nil, err
	}
	var ts []Tag
	if err := im.db.WithContext(ctx).Select("id", "name").Where("merchant_id = ?", merchantID).Find(&ts).Error; err != nil {
		return nil, nil, fmt.Errorf("member: import: tags: %w", err)
	}
	tags = make(map[string]uint64, len(ts))
	for _, t := range ts {
		tags[strings.ToLower(t.Name)] = t.ID
	}
	return tiers, tags, nil
}

// DryRun reads the whole file and reports what importing it would do;
// it changes nothing.
func (im *Importer) DryRun(ctx context.Context, merchantID uint64, file io.Reader) (ImportReport, error) {
	var rep ImportReport
	err := im.scan(ctx, merchantID, file, 0, &rep, func(batch []importRow, _ int) error {
		if err := im.markExisting(ctx, im.db, merchantID, batch); err != nil {
			return err
		}
		for _, r := range batch {
			if r.existing {
				rep.Existing++
			} else {
				rep.Created++
			}
		}
		return nil
	})
	return rep, err
}

// scan reads the file and hands valid rows after row skip to flush in
// batches, with the last row number read; rows up to skip are only
// validated (their rejections are reported again, their identities
// remembered). rep counts rows and rejections.
func (im *Importer) scan(ctx context.Context, merchantID uint64, file io.Reader, skip int, rep *ImportReport,
	flush func(batch []importRow, last int) error) error {
	ir, err := newImportReader(file)
	if err != nil {
		return err
	}
	tiers, tags, err := im.lookups(ctx, merchantID)
	if err != nil {
		return err
	}
	s := seen{}
	batch := make([]importRow, 0, importBatch)
	last := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, row, err := ir.next()
		if err != nil {
			return err
		}
		if rec == nil {
			break
		}
		last = row
		rep.Rows++
		r, rej := ir.parse(rec, row, tiers, tags)
		if rej == nil {
			rej = s.check(r)
		}
		if rej != nil {
			rep.Rejected++
			if len(rep.RejectedRows) < maxReportedRows {
				rep.RejectedRows = append(rep.RejectedRows, *rej)
			}
			continue
		}
		if row <= skip {
			continue
		}
		batch = append(batch, r)
		if len(batch) == importBatch {
			if err := flush(batch, row); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if last > skip {
		return flush(batch, last)
	}
	return nil
}

// markExisting marks the rows one of whose identities already belongs to
// a member: three IN lookups per batch (the unique identity indexes).
func (im *Importer) markExisting(ctx context.Context, q *gorm.DB, merchantID uint64, batch []importRow) error {
	for _, col := range []identity{byOAOpenID, byUnionID, byPhone} {
		var values []string
		for _, r := range batch {
			for _, id := range r.identities {
				if id.col == col {
					values = append(values, id.value)
				}
			}
		}
		if len(values) == 0 {
			continue
		}
		var found []string
		if err := q.WithContext(ctx).Model(&Member{}).Where("merchant_id = ? AND "+string(col)+" IN ?", merchantID, values).
			Pluck(string(col), &found).Error; err != nil {
			return fmt.Errorf("member: import: look up %s: %w", col, err)
		}
		exists := make(map[string]bool, len(found))
		for _, f := range found {
			exists[f] = true
		}
		for i := range batch {
			for _, id := range batch[i].identities {
				if id.col == col && exists[id.value] {
					batch[i].existing = true
				}
			}
		}
	}
	return nil
}

// Import runs (or resumes) the import of a file whose content hashes to
// fileHash (hex SHA-256): open opens the file from its start. A file
// already imported returns its finished job. A job being run by another
// process is a conflict. Each batch of rows commits in one transaction
// with the job's cursor and counts.
func (im *Importer) Import(ctx context.Context, merchantID uint64, fileName, fileHash string,
	open func() (io.ReadCloser, error)) (ImportJob, error) {
	job, err := im.Claim(ctx, merchantID, fileName, fileHash)
	if err != nil || job.Status == ImportDone {
		return job, err
	}
	return im.Run(ctx, job, open)
}

// Run imports the rows of a job Claim returned (not done), then records
// how it ended: done, failed (with the error), or still running when ctx
// ended (interrupted: importing the file again resumes it).
func (im *Importer) Run(ctx context.Context, job ImportJob, open func() (io.ReadCloser, error)) (ImportJob, error) {
	merchantID := job.MerchantID
	err := im.run(ctx, &job, open)
	now := im.now()
	set := map[string]any{"lease_owner": nil, "lease_until": nil, "updated_at": now}
	switch {
	case err == nil:
		set["status"], set["finished_at"] = ImportDone, now
	case ctx.Err() != nil:
		// Interrupted: left running, resumable at once (lease released).
	default:
		set["status"], set["error"] = ImportFailed, clipString(err.Error(), 255)
	}
	if uerr := im.db.WithContext(context.WithoutCancel(ctx)).Model(&ImportJob{}).
		Where("id = ? AND lease_owner = ?", job.ID, im.owner).UpdateColumns(set).Error; uerr != nil && err == nil {
		err = fmt.Errorf("member: import %d: finish: %w", job.ID, uerr)
	}
	if final, gerr := im.Job(context.WithoutCancel(ctx), merchantID, job.ID); gerr == nil {
		job = final
	}
	return job, err
}

// run imports the rows after the job's cursor. The file is read by one
// goroutine and its batches are written by im.workers() transactions at
// once (the database's work per row, index upkeep mostly, is the cost, and
// one connection uses one of its cores), but they commit in file order:
// each batch's transaction writes its rows, waits for the batch before it
// to commit, then moves the job's cursor from that batch's last row to its
// own and commits. A crash therefore leaves the cursor at the end of a
// prefix of batches all committed, and nothing after it committed: the
// resumed run redoes exactly the rows after the cursor, and its counts are
// those of a run that was never interrupted.
func (im *Importer) run(ctx context.Context, job *ImportJob, open func() (io.ReadCloser, error)) error {
	f, err := open()
	if err != nil {
		return fmt.Errorf("member: import: open: %w", err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	prev := &pendingBatch{last: job.CursorRow, created: job.Created, existing: job.Existing, ok: true, done: make(chan struct{})}
	close(prev.done)
	work := make(chan *pendingBatch, im.workers())
	var wg sync.WaitGroup
	for range im.workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				if err := im.commitBatch(ctx, job, b); err != nil {
					cancel(err)
				}
			}
		}()
	}
	var rep ImportReport
	scanErr := im.scan(ctx, job.MerchantID, f, job.CursorRow, &rep, func(batch []importRow, last int) error {
		b := &pendingBatch{prev: prev, rows: slices.Clone(batch), last: last, read: rep.Rows, rejected: rep.Rejected,
			rejectedRows: reportJSON(rep.RejectedRows), done: make(chan struct{})}
		prev = b
		select {
		case work <- b:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err // a batch's error (the scan then stopped on the cancel)
	}
	if scanErr != nil {
		return scanErr
	}
	if !prev.ok {
		return fmt.Errorf("member: import %d: rows up to %d were not imported", job.ID, prev.last)
	}
	job.CursorRow = prev.last
	return nil
}

// pendingBatch is a batch of rows on its way through run: its rows, the
// job's counts as of its last row, and, once done is closed, whether it
// committed (ok) and the created and existing totals after it.
type pendingBatch struct {
	prev              *pendingBatch // the batch that must commit first
	rows              []importRow
	last              int // the last CSV row it covers
	read, rejected    int
	rejectedRows      string
	done              chan struct{}
	ok                bool
	created, existing int
}

var errEarlierBatch = errors.New("an earlier batch was not imported")

// commitBatch writes b in one transaction that commits after b.prev did
// (see run), then closes b.done.
func (im *Importer) commitBatch(ctx context.Context, job *ImportJob, b *pendingBatch) (err error) {
	defer func() {
		// Unlink what is no longer needed: run holds the last batch,
		// which would otherwise hold every batch before it.
		b.prev, b.rows, b.rejectedRows = nil, nil, ""
		close(b.done)
	}()
	var c, e int
	err = im.retry(ctx, func(tx *gorm.DB) error {
		var err error
		if c, e, err = im.write(ctx, tx, job, b.rows); err != nil {
			return err
		}
		select {
		case <-b.prev.done:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if !b.prev.ok {
			return errEarlierBatch
		}
		now := im.now()
		// cursor_row = the previous batch's last row: this batch follows
		// it, and no other run moved the cursor meanwhile.
		res := tx.Model(&ImportJob{}).Where("id = ? AND lease_owner = ? AND cursor_row = ?", job.ID, im.owner, b.prev.last).
			UpdateColumns(map[string]any{"cursor_row": b.last, "rows_read": b.read, "created": b.prev.created + c,
				"existing": b.prev.existing + e, "rejected": b.rejected, "rejected_rows": b.rejectedRows,
				"lease_until": now.Add(im.Lease), "updated_at": now})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return errors.New("the import's lease was lost to another run")
		}
		return nil
	})
	if errors.Is(err, errEarlierBatch) {
		return nil // the earlier batch's error is the run's
	}
	if err != nil {
		return fmt.Errorf("member: import %d: rows up to %d: %w", job.ID, b.last, err)
	}
	b.created, b.existing = b.prev.created+c, b.prev.existing+e
	if im.Progress != nil {
		im.Progress(ImportReport{Rows: b.read, Created: b.created, Existing: b.existing, Rejected: b.rejected})
	}
	if im.afterBatch != nil {
		if err := im.afterBatch(b.last); err != nil {
			return err // as a crash would: the batches after this one roll back
		}
	}
	b.ok = true
	return nil
}

// workers is how many batches are written at once: SQLite has one writer.
func (im *Importer) workers() int {
	if im.db.Dialector.Name() != db.MySQL {
		return 1
	}
	return max(im.Workers, 1)
}

func reportJSON(rows []RejectedRow) string {
	if rows == nil {
		rows = []RejectedRow{}
	}
	b, _ := json.Marshal(rows) // plain structs: cannot fail
	return string(b)
}

// write imports one batch inside tx: the rows whose member exists are
// counted and left alone; the others become members (one multi-row INSERT),
// with their care dates, tags and opening positions.
func (im *Importer) write(ctx context.Context, tx *gorm.DB, job *ImportJob, batch []importRow) (created, existing int, err error) {
	if err := im.markExisting(ctx, tx, job.MerchantID, batch); err != nil {
		return 0, 0, err
	}
	now := im.now()
	var members []Member
	var rows []importRow
	for _, r := range batch {
		if r.existing {
			existing++
			continue
		}
		m := Member{MerchantID: job.MerchantID, OAOpenID: strPtr(r.openid), UnionID: strPtr(r.unionid), Phone: strPtr(r.phone),
			Name: r.name, Source: "import", FollowStatus: FollowNone, LifecycleStage: StagePotential, TierID: r.tierID,
			CreatedAt: now, UpdatedAt: now}
		if r.birthday != nil {
			m.BirthdayMonth, m.BirthdayDay = &r.birthday.month, &r.birthday.day
			if r.birthday.year != 0 {
				m.BirthdayYear = &r.birthday.year
			}
		}
		members = append(members, m)
		rows = append(rows, r)
	}
	if len(members) == 0 {
		return 0, existing, nil
	}
	// One multi-row INSERT per table (a batch is at most importBatch rows,
	// whose values stay under SQLite's 32,766 per statement).
	q := tx.WithContext(ctx)
	// Only the columns an import sets: the others (mp_openid, gender,
	// follow times, channel, remark, ...) take their defaults, which are
	// the zero values gorm would otherwise spell out 1,000 times.
	if err := q.Select(importMemberColumns).CreateInBatches(members, importBatch).Error; err != nil {
		return 0, 0, fmt.Errorf("insert members: %w", err)
	}
	var dates []CareDate
	var tags []memberTag
	var openings []Opening
	for i, r := range rows {
		id := members[i].ID
		for _, d := range []struct {
			kind string
			v    *md
		}{{CareWedding, r.wedding}, {CareChildBirthday, r.child}} {
			if d.v != nil {
				cd := CareDate{MerchantID: job.MerchantID, MemberID: id, Kind: d.kind, Month: d.v.month, Day: d.v.day,
					CreatedAt: now, UpdatedAt: now}
				if d.v.year != 0 {
					y := d.v.year
					cd.Year = &y
				}
				dates = append(dates, cd)
			}
		}
		for _, t := range r.tagIDs {
			tags = append(tags, memberTag{MerchantID: job.MerchantID, TagID: t, MemberID: id, CreatedAt: now})
		}
		if r.points > 0 || r.tierID != nil {
			openings = append(openings, Opening{MemberID: id, Points: r.points, TierID: r.tierID,
				Key: fmt.Sprintf("import:%s:%d", job.FileHash[:16], r.row)})
		}
	}
	if len(dates) > 0 {
		if err := q.CreateInBatches(dates, importBatch).Error; err != nil {
			return 0, 0, fmt.Errorf("insert care dates: %w", err)
		}
	}
	if len(tags) > 0 {
		if err := q.CreateInBatches(tags, importBatch*4).Error; err != nil {
			return 0, 0, fmt.Errorf("insert tags: %w", err)
		}
	}
	if len(openings) > 0 {
		if err := im.openings.Open(ctx, tx, job.MerchantID, openings); err != nil {
			return 0, 0, err
		}
	}
	return len(members), existing, nil
}

// importMemberColumns are the members columns write sets.
var importMemberColumns = []string{"merchant_id", "oa_openid", "unionid", "phone", "name", "birthday_month", "birthday_day",
	"birthday_year", "source", "follow_status", "lifecycle_stage", "tier_id", "created_at", "updated_at"}

// retry runs fn in a transaction, again when it lost a lock wait or ran
// into a member created meanwhile (a unique identity): the rerun looks the
// identities up again.
func (im *Importer) retry(ctx context.Context, fn func(tx *gorm.DB) error) error {
	var err error
	for attempt := range 5 {
		err = im.db.WithContext(ctx).Transaction(fn)
		if err == nil || !(db.IsTransient(err) || db.IsDuplicate(err)) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
	}
	return err
}

// Claim finds or creates the job of the file whose content hashes to
// fileHash and takes its lease; a job already done is returned as it is.
// A job another run holds is a conflict.
func (im *Importer) Claim(ctx context.Context, merchantID uint64, fileName, fileHash string) (ImportJob, error) {
	if len(fileHash) != 64 {
		return ImportJob{}, fmt.Errorf("member: import: bad file hash %q", fileHash)
	}
	now := im.now()
	job := ImportJob{MerchantID: merchantID, FileHash: fileHash, FileName: clipString(fileName, 255), Status: ImportRunning,
		RejectedRows: []RejectedRow{}, CreatedAt: now, UpdatedAt: now}
	if err := im.db.WithContext(ctx).Create(&job).Error; err != nil && !db.IsDuplicate(err) {
		return ImportJob{}, fmt.Errorf("member: import: create job: %w", err)
	}
	res := im.db.WithContext(ctx).Model(&ImportJob{}).
		Where("merchant_id = ? AND file_hash = ? AND status <> ? AND (lease_owner IS NULL OR lease_until < ?)",
			merchantID, fileHash, ImportDone, now).
		UpdateColumns(map[string]any{"status": ImportRunning, "error": "", "lease_owner": im.owner,
			"lease_until": now.Add(im.Lease), "updated_at": now})
	if res.Error != nil {
		return ImportJob{}, fmt.Errorf("member: import: claim: %w", res.Error)
	}
	if err := im.db.WithContext(ctx).Where("merchant_id = ? AND file_hash = ?", merchantID, fileHash).Take(&job).Error; err != nil {
		return ImportJob{}, fmt.Errorf("member: import: job: %w", err)
	}
	if res.RowsAffected == 0 && job.Status != ImportDone {
		return job, apperr.New(apperr.ErrConflict, "this file is being imported (import %d); see its progress", job.ID)
	}
	return job, nil
}

// Job returns one of the merchant's import jobs.
func (im *Importer) Job(ctx context.Context, merchantID, id uint64) (ImportJob, error) {
	var job ImportJob
	err := im.db.WithContext(ctx).Where("merchant_id = ? AND id = ?", merchantID, id).Take(&job).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ImportJob{}, errImportNotFound
	}
	if err != nil {
		return ImportJob{}, fmt.Errorf("member: import %d: %w", id, err)
	}
	return job, nil
}

func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
