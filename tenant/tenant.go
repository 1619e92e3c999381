package tenant

import (
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"
)

// The headers that carry a request's tenant, read in this order: what
// Thanos users send, then what Mimir and Cortex users send.
const (
	HeaderThanos = "THANOS-TENANT"
	HeaderOrgID  = "X-Scope-OrgID"
)

// Label is the external label of a tenant's TSDB and blocks; its value is
// the tenant id.
const Label = "tenant_id"

// Default receives writes, and answers queries, that name no tenant.
const Default = "default-tenant"

// maxLength bounds tenant ids; they become directory names and label values.
const maxLength = 128

// ErrInvalid is returned, wrapped, for tenant ids that cannot name a
// directory or a label value.
var ErrInvalid = errors.New("invalid tenant")

// FromHeader returns the tenant a request names in its headers, or "" when
// it names none.
func FromHeader(h http.Header) string {
	if v := h.Get(HeaderThanos); v != "" {
		return v
	}
	return h.Get(HeaderOrgID)
}

// Validate reports whether id is safe as a directory name and label value.
func Validate(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty tenant id", ErrInvalid)
	case len(id) > maxLength:
		return fmt.Errorf("%w: tenant id is %d bytes, more than %d", ErrInvalid, len(id), maxLength)
	case id == "." || id == "..":
		return fmt.Errorf("%w: tenant id %q is a relative path", ErrInvalid, id)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: tenant id is not valid UTF-8", ErrInvalid)
	}
	for _, r := range id {
		if r == '/' || r == '\\' || r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: tenant id %q contains a path separator or control character", ErrInvalid, id)
		}
	}
	return nil
}
