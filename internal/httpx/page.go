package httpx

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gin-gonic/gin"

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

// BeforeQuery reads a keyset page request, ?before=<id>&limit=<n> and no
// other parameter (BeforePage). On bad input it answers 400 naming the
// fields and returns ok false.
func BeforeQuery(c *gin.Context, def, max int) (before uint64, limit int, ok bool) {
	q, err := QueryOnly(c, "before", "limit")
	if err != nil {
		Fail(c, err)
		return 0, 0, false
	}
	v := &apperr.Validation{}
	before, limit = BeforePage(q, def, max, v)
	if err := v.Err(); err != nil {
		Fail(c, err)
		return 0, 0, false
	}
	return before, limit, true
}

// WriteBeforePage answers 200 with a keyset page: list under key, and
// next_before, the id (by id) of its last item when the page is full,
// else null.
func WriteBeforePage[T any](c *gin.Context, key string, list []T, limit int, id func(T) uint64) {
	var last uint64
	if len(list) > 0 {
		last = id(list[len(list)-1])
	}
	c.JSON(http.StatusOK, gin.H{key: list, "next_before": NextBefore(len(list), limit, last)})
}
