package webhook

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/event"
	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// Handler serves the webhook admin routes.
type Handler struct {
	endpoints  *Endpoints
	deliveries *Deliveries
}

// NewHandler returns the webhook routes' handler.
func NewHandler(endpoints *Endpoints, deliveries *Deliveries) *Handler {
	return &Handler{endpoints: endpoints, deliveries: deliveries}
}

// Register adds the admin routes under the authenticated group
// (/api/admin/v1), each scoped to the caller's merchant. Webhooks are
// integration settings: reading them needs settings:read, changing them
// settings:manage.
//
//	GET    /webhook-endpoints                              list
//	POST   /webhook-endpoints                              register (the secret is in the answer, once)
//	GET    /webhook-endpoints/:endpoint_id
//	PATCH  /webhook-endpoints/:endpoint_id
//	DELETE /webhook-endpoints/:endpoint_id
//	POST   /webhook-endpoints/:endpoint_id/rotate-secret   a new secret, shown once
//	GET    /webhook-deliveries                             ?status=dead is the dead-letter list
//	POST   /webhook-deliveries/:delivery_id/replay         dead → pending
func (h *Handler) Register(r gin.IRouter) {
	read, manage := authz.Require(authz.SettingsRead), authz.Require(authz.SettingsManage)
	r.GET("/webhook-endpoints", read, h.list)
	r.POST("/webhook-endpoints", manage, h.create)
	r.GET("/webhook-endpoints/:endpoint_id", read, h.get)
	r.PATCH("/webhook-endpoints/:endpoint_id", manage, h.update)
	r.DELETE("/webhook-endpoints/:endpoint_id", manage, h.delete)
	r.POST("/webhook-endpoints/:endpoint_id/rotate-secret", manage, h.rotate)
	r.GET("/webhook-deliveries", read, h.deliveryList)
	r.POST("/webhook-deliveries/:delivery_id/replay", manage, h.replay)
}

// EndpointView is an endpoint as the API shows it (never its secret).
type EndpointView struct {
	ID          uint64       `json:"id"`
	URL         string       `json:"url"`
	Description string       `json:"description"`
	Events      []event.Type `json:"events"`
	Enabled     bool         `json:"enabled"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
}

func viewOf(e Endpoint) EndpointView {
	return EndpointView{ID: e.ID, URL: e.URL, Description: e.Description, Events: e.Events, Enabled: e.Enabled,
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
}

// withSecret is an endpoint with its signing secret: the answer of create
// and rotate-secret, the only times the secret is shown.
type withSecret struct {
	EndpointView
	Secret string `json:"secret"`
}

func (h *Handler) list(c *gin.Context) {
	if _, err := httpx.QueryOnly(c); err != nil {
		httpx.Fail(c, err)
		return
	}
	eps, err := h.endpoints.List(c.Request.Context(), authz.MustFrom(c).MerchantID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]EndpointView, len(eps))
	for i, e := range eps {
		out[i] = viewOf(e)
	}
	c.JSON(http.StatusOK, gin.H{"endpoints": out, "event_types": event.Types})
}

func (h *Handler) create(c *gin.Context) {
	var in EndpointInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	e, secret, err := h.endpoints.Create(c.Request.Context(), authz.MustFrom(c).MerchantID, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, withSecret{EndpointView: viewOf(e), Secret: secret})
}

func (h *Handler) get(c *gin.Context) {
	id, ok := httpx.PathID(c, "endpoint_id", errEndpointNotFound)
	if !ok {
		return
	}
	e, err := h.endpoints.Get(c.Request.Context(), authz.MustFrom(c).MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(e))
}

func (h *Handler) update(c *gin.Context) {
	id, ok := httpx.PathID(c, "endpoint_id", errEndpointNotFound)
	if !ok {
		return
	}
	var in EndpointInput
	if err := httpx.BindJSON(c, &in); err != nil {
		httpx.Fail(c, err)
		return
	}
	e, err := h.endpoints.Update(c.Request.Context(), authz.MustFrom(c).MerchantID, id, in)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(e))
}

func (h *Handler) delete(c *gin.Context) {
	id, ok := httpx.PathID(c, "endpoint_id", errEndpointNotFound)
	if !ok {
		return
	}
	if err := h.endpoints.Delete(c.Request.Context(), authz.MustFrom(c).MerchantID, id); err != nil {
		httpx.Fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (h *Handler) rotate(c *gin.Context) {
	id, ok := httpx.PathID(c, "endpoint_id", errEndpointNotFound)
	if !ok {
		return
	}
	e, secret, err := h.endpoints.RotateSecret(c.Request.Context(), authz.MustFrom(c).MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, withSecret{EndpointView: viewOf(e), Secret: secret})
}

func (h *Handler) deliveryList(c *gin.Context) {
	q, err := httpx.QueryOnly(c, "status", "endpoint_id", "before", "limit")
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	v := &apperr.Validation{}
	f := DeliveryFilter{Status: Status(q.Get("status")), Limit: 50}
	if f.Status != "" && !slices.Contains(Statuses, f.Status) {
		v.Add("status", "must be pending, claimed, delivered or dead")
	}
	for name, dst := range map[string]*uint64{"endpoint_id": &f.EndpointID, "before": &f.Before} {
		if s := q.Get(name); s != "" {
			n, ok := httpx.ParseID(s)
			if !ok {
				v.Add(name, fmt.Sprintf("must be a whole number from 1 to %d", uint64(httpx.MaxID)))
			}
			*dst = n
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			v.Add("limit", "must be 1 to 200")
		}
		f.Limit = n
	}
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	list, err := h.deliveries.List(c.Request.Context(), authz.MustFrom(c).MerchantID, f)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	var next *uint64
	if len(list) == f.Limit {
		next = &list[len(list)-1].ID
	}
	c.JSON(http.StatusOK, gin.H{"deliveries": list, "next_before": next})
}

func (h *Handler) replay(c *gin.Context) {
	id, ok := httpx.PathID(c, "delivery_id", errDeliveryNotFound)
	if !ok {
		return
	}
	d, err := h.deliveries.Replay(c.Request.Context(), authz.MustFrom(c).MerchantID, id)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, d)
}
