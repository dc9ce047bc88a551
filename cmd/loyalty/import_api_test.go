package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestMemberImportAPI(t *testing.T) { eachBackendName(t, testMemberImportAPI) }

// The import over HTTP: a bad file is a 400 naming it; the dry run reports
// the rejected row and changes nothing; the upload answers 202 with a job
// whose progress ends done; the same file again answers 200 with that job
// and changes nothing.
func testMemberImportAPI(t *testing.T, backend string) {
	a := startAppOn(t, onBackend(t, backend))
	token := a.login()
	if st, body := a.csv("/api/admin/v1/member-imports?dry_run=true", token, "email,name\nx@y,z\n"); st != 400 ||
		!strings.Contains(body, `"file"`) {
		t.Fatalf("bad header: %d %s", st, body)
	}
	if st, body := a.csv("/api/admin/v1/member-imports?dry_run=maybe", token, "openid\no_1\n"); st != 400 ||
		!strings.Contains(body, `"dry_run"`) {
		t.Fatalf("bad dry_run: %d %s", st, body)
	}
	members := func() int64 { return a.count("members", "merchant_id = ?", a.merchant) }
	before := members()
	file := "openid,phone,name,points\no_api_1,13700000001,Ada,40\no_api_2,bad,Bo,\no_api_3,,Cy,\n"

	var rep struct {
		Rows, Created, Existing, Rejected int
		RejectedRows                      []struct {
			Row   int
			Field string
		} `json:"rejected_rows"`
	}
	st, body := a.csv("/api/admin/v1/member-imports?dry_run=true", token, file)
	if st != 200 || json.Unmarshal([]byte(body), &rep) != nil || rep.Rows != 3 || rep.Created != 2 || rep.Rejected != 1 ||
		len(rep.RejectedRows) != 1 || rep.RejectedRows[0].Row != 3 || rep.RejectedRows[0].Field != "phone" {
		t.Fatalf("dry run: %d %s", st, body)
	}
	if members() != before {
		t.Fatal("the dry run created members")
	}

	var job struct {
		ID                          uint64
		Status                      string
		Created, Existing, Rejected int
	}
	st, body = a.csv("/api/admin/v1/member-imports?file_name=shop.csv", token, file)
	if st != http.StatusAccepted || json.Unmarshal([]byte(body), &job) != nil || job.ID == 0 {
		t.Fatalf("import: %d %s", st, body)
	}
	deadline := time.Now().Add(30 * time.Second) // a liveness bound
	for job.Status != "done" {
		if time.Now().After(deadline) {
			t.Fatalf("import not done: %+v", job)
		}
		time.Sleep(20 * time.Millisecond)
		if st := a.call("GET", fmt.Sprintf("/api/admin/v1/member-imports/%d", job.ID), token, nil, &job); st != 200 {
			t.Fatalf("progress: %d", st)
		}
	}
	if job.Created != 2 || job.Rejected != 1 || members() != before+2 {
		t.Fatalf("done: %+v, members %d (before %d)", job, members(), before)
	}
	var again struct {
		ID      uint64
		Status  string
		Created int
	}
	st, body = a.csv("/api/admin/v1/member-imports", token, file)
	if st != 200 || json.Unmarshal([]byte(body), &again) != nil || again.ID != job.ID || again.Status != "done" || members() != before+2 {
		t.Fatalf("the same file again: %d %s", st, body)
	}
}
