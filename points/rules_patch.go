package points

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/wxloyalty/loyalty/internal/apperr"
	"github.com/wxloyalty/loyalty/internal/authz"
	"github.com/wxloyalty/loyalty/internal/httpx"
)

// PatchRules changes some of the merchant's rules and saves the result as
// the next version, audited like SetRules. patch is a JSON object in the
// shape of Rules (RFC 7396 merge patch): a field left out keeps its
// current value, an object is merged field by field, an array (the streak
// bonuses) replaces the old one. No rules field is nullable, so a null is
// refused naming the field (leave the field out to keep it).
//
// The patch is applied inside the transaction that saves the version, on
// the version it replaces (saveRules): of two patches saved at once the
// second is retried on top of the first, so neither loses the other's
// change.
func (s *Service) PatchRules(ctx context.Context, merchantID uint64, patch json.RawMessage) (RuleSet, error) {
	if err := checkRulesPatch(patch, ""); err != nil {
		return RuleSet{}, err
	}
	return s.saveRules(ctx, merchantID, func(cur Rules) (Rules, error) {
		merged, err := mergePatch([]byte(marshalRules(cur)), patch)
		if err != nil {
			return Rules{}, err
		}
		var r Rules
		if err := httpx.DecodeJSON(merged, &r, ""); err != nil {
			return Rules{}, err
		}
		r.normalize()
		return r, r.Validate()
	})
}

// checkRulesPatch refuses a patch that is not an object, and any null in
// it, naming the field.
func checkRulesPatch(patch json.RawMessage, path string) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(patch, &obj); err != nil || obj == nil {
		name := path
		if name == "" {
			name = "body"
		}
		return apperr.Invalid(name, "must be an object")
	}
	for k, v := range obj {
		p := k
		if path != "" {
			p = path + "." + k
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.Equal(v, []byte("null")):
			return apperr.Invalid(p, "cannot be null: leave it out to keep its value")
		case len(v) > 0 && v[0] == '{':
			if err := checkRulesPatch(v, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// mergePatch applies an RFC 7396 merge patch without nulls (see
// checkRulesPatch) to doc: objects merge key by key, anything else
// replaces. Keys keep doc's order, new ones follow in the patch's order.
func mergePatch(doc, patch []byte) ([]byte, error) {
	patch = bytes.TrimSpace(patch)
	if len(patch) == 0 || patch[0] != '{' {
		return patch, nil
	}
	var base map[string]json.RawMessage
	if d := bytes.TrimSpace(doc); len(d) == 0 || d[0] != '{' || json.Unmarshal(d, &base) != nil {
		base = map[string]json.RawMessage{}
	}
	keys, err := objectKeys(doc)
	if err != nil {
		keys = nil
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, apperr.Invalid("body", "must be an object")
	}
	pkeys, _ := objectKeys(patch)
	for _, k := range pkeys {
		merged, err := mergePatch(base[k], p[k])
		if err != nil {
			return nil, err
		}
		if _, ok := base[k]; !ok {
			keys = append(keys, k)
		}
		base[k] = merged
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, k := range slices.Compact(keys) {
		if i > 0 {
			buf.WriteByte(',')
		}
		name, _ := json.Marshal(k)
		buf.Write(name)
		buf.WriteByte(':')
		buf.Write(base[k])
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// objectKeys lists a JSON object's keys in their order.
func objectKeys(obj []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := t.(string)
		keys = append(keys, k)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// patchRules serves PATCH /points/rules.
func (h *Handler) patchRules(c *gin.Context) {
	p := authz.MustFrom(c)
	var patch json.RawMessage
	if err := httpx.BindJSON(c, &patch); err != nil {
		httpx.Fail(c, err)
		return
	}
	rs, err := h.svc.PatchRules(c.Request.Context(), p.MerchantID, patch)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	c.JSON(http.StatusOK, ruleSetView(rs))
}
