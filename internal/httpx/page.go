package httpx

import (
	"fmt"
	"net/url"
	"strconv"

	"github.com/wxloyalty/loyalty/internal/apperr"
)

// BeforePage reads keyset paging by id, newest first: before (the last id
// of the previous page, 0 when absent) and limit (1 to max, def when
// absent). Bad values are added to v under their names.
func BeforePage(q url.Values, def, max int, v *apperr.Validation) (before uint64, limit int) {
	if s := q.Get("before"); s != "" {
		id, ok := ParseID(s)
		if !ok {
			v.Add("before", fmt.Sprintf("must be a whole number from 1 to %d", uint64(MaxID)))
		}
		before = id
	}
	limit = def
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > max {
			v.Add("limit", fmt.Sprintf("must be 1 to %d", max))
		}
		limit = n
	}
	return before, limit
}

// NextBefore is the before of the page after one of n rows whose last id
// is last: nil when the page was not full.
func NextBefore(n, limit int, last uint64) *uint64 {
	if n < limit {
		return nil
	}
	return &last
}
