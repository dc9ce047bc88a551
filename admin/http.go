package admin

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

const principalKey = "admin.principal"

// RequireStaff authenticates the bearer token of an admin API request and
// stores the Principal for handlers (see PrincipalOf).
func (s *Staffs) RequireStaff() gin.HandlerFunc {
	return func(c *gin.Context) {
		token, ok := bearer(c)
		if !ok {
			httpx.Fail(c, ErrBadToken)
			return
		}
		p, err := s.Authenticate(c.Request.Context(), token)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		c.Set(principalKey, p)
		c.Next()
	}
}

// PrincipalOf returns the caller authenticated by RequireStaff.
func PrincipalOf(c *gin.Context) Principal {
	return c.MustGet(principalKey).(Principal)
}

func bearer(c *gin.Context) (string, bool) {
	h := c.GetHeader("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	token = strings.TrimSpace(token)
	return token, ok && token != ""
}

// RegisterPublic registers the routes that need no token (login).
func (s *Staffs) RegisterPublic(r gin.IRouter) {
	r.POST("/login", s.login)
}

// Register registers the routes for authenticated staff.
func (s *Staffs) Register(r gin.IRouter) {
	r.POST("/logout", s.logout)
	r.GET("/me", s.me)
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *Staffs) login(c *gin.Context) {
	var req loginRequest
	if err := httpx.BindJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	v := &apperr.Validation{}
	if req.Username == "" {
		v.Add("username", "is required")
	}
	if req.Password == "" {
		v.Add("password", "is required")
	}
	if err := v.Err(); err != nil {
		httpx.Fail(c, err)
		return
	}
	token, expires, err := s.Login(c.Request.Context(), req.Username, req.Password)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, loginResponse{Token: token, ExpiresAt: expires})
}

func (s *Staffs) logout(c *gin.Context) {
	token, _ := bearer(c)
	if err := s.Logout(c.Request.Context(), token); err != nil {
		httpx.Fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

type meResponse struct {
	MerchantID uint64 `json:"merchant_id"`
	StaffID    uint64 `json:"staff_id"`
	Username   string `json:"username"`
	Role       Role   `json:"role"`
}

func (s *Staffs) me(c *gin.Context) {
	p := PrincipalOf(c)
	c.JSON(http.StatusOK, meResponse{MerchantID: p.MerchantID, StaffID: p.StaffID, Username: p.Username, Role: p.Role})
}
