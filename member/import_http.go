package member

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// MaxImportBytes bounds an uploaded import file (some 2,000,000 rows).
const MaxImportBytes = 256 << 20

// ImportHandler serves the import routes.
type ImportHandler struct {
	im  *Importer
	dir string // where uploaded files wait for their job
	// background runs a job after its request has been answered; the
	// service stops (and the job's lease is released) on shutdown.
	background func(func(ctx context.Context))
}

// NewImportHandler returns the import routes' handler: uploads are kept
// in dir while their job runs (and deleted when it is done).
func NewImportHandler(im *Importer, dir string, background func(func(ctx context.Context))) *ImportHandler {
	return &ImportHandler{im: im, dir: dir, background: background}
}

// Register adds the admin routes under the authenticated group:
//
//	POST /member-imports?dry_run=true   members:write  a report of what the CSV body would do; nothing changes
//	POST /member-imports                members:write  import the CSV body (202 and the job; the same file again resumes it)
//	GET  /member-imports/:import_id     members:read   the job's progress and rejected rows
func (h *ImportHandler) Register(r gin.IRouter) {
	r.POST("/member-imports", authz.Require(authz.MembersWrite), h.upload)
	r.GET("/member-imports/:import_id", authz.Require(authz.MembersRead), h.get)
}

func (h *ImportHandler) upload(c *gin.Context) {
	q, err := httpx.QueryOnly(c, "dry_run", "file_name")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	dry := q.Get("dry_run")
	if dry != "" && dry != "true" && dry != "false" {
		httpx.Fail(c, apperr.Invalid("dry_run", "must be true or false"))
		return
	}
	name := q.Get("file_name")
	if len(name) > 255 {
		httpx.Fail(c, apperr.Invalid("file_name", "must be at most 255 characters"))
		return
	}
	p := authz.MustFrom(c)
	ctx := c.Request.Context()
	body := http.MaxBytesReader(c.Writer, c.Request.Body, MaxImportBytes)
	if dry == "true" {
		rep, err := h.im.DryRun(ctx, p.MerchantID, body)
		if err != nil {
			httpx.Fail(c, tooLarge(err))
			return
		}
		c.JSON(http.StatusOK, rep)
		return
	}
	path, hash, err := h.spool(p.MerchantID, body)
	if err != nil {
		httpx.Fail(c, tooLarge(err))
		return
	}
	job, err := h.im.Claim(ctx, p.MerchantID, name, hash)
	if err != nil || job.Status == ImportDone {
		_ = os.Remove(path)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		c.JSON(http.StatusOK, job)
		return
	}
	h.background(func(ctx context.Context) {
		_, err := h.im.Run(ctx, job, func() (io.ReadCloser, error) { return os.Open(path) })
		if err == nil {
			_ = os.Remove(path)
		}
	})
	c.JSON(http.StatusAccepted, job)
}

// tooLarge turns an oversized body into a 400 naming it.
func tooLarge(err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return apperr.Invalid("file", fmt.Sprintf("must be at most %d bytes", MaxImportBytes))
	}
	return err
}

// spool copies the upload to a file named by the merchant and its SHA-256
// (an upload of the same content again replaces it).
func (h *ImportHandler) spool(merchantID uint64, body io.Reader) (path, hash string, err error) {
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		return "", "", fmt.Errorf("member: import: %w", err)
	}
	tmp, err := os.CreateTemp(h.dir, "upload-*.csv")
	if err != nil {
		return "", "", fmt.Errorf("member: import: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	sum := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, sum), body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", "", err
	}
	hash = hex.EncodeToString(sum.Sum(nil))
	path = filepath.Join(h.dir, fmt.Sprintf("%d-%s.csv", merchantID, hash))
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", "", fmt.Errorf("member: import: %w", err)
	}
	return path, hash, nil
}

func (h *ImportHandler) get(c *gin.Context) {
	id, ok := httpx.PathID(c, "import_id", errImportNotFound)
	if !ok {
		return
	}
	job, err := h.im.Job(c.Request.Context(), authz.MustFrom(c).MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, job)
}
