package tenant

import (
	"errors"
	"fmt"
	"net/http"
)

// The headers that carry a request's tenant, read in this order: what
// Thanos users send, then what Mimir and Cortex users send.
const (
	HeaderThanos = "THANOS-TENANT"
	HeaderOrgID  = "X-Scope-OrgID"
)

// MetadataKey is the gRPC metadata key that scopes a Store API request to
// one tenant (gRPC lowercases keys; Thanos's querier uses the same one).
const MetadataKey = "thanos-tenant"

// Label is the external label of a tenant's TSDB and blocks; its value is
// the tenant id.
const Label = "tenant_id"

// Default receives writes, and answers queries, that name no tenant.
const Default = "default-tenant"

// MaxLength bounds tenant ids; they become directory names and label
// values. It is Mimir's bound, so ids that Mimir takes are taken here.
const MaxLength = 150

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

// Validate reports whether id is a tenant id: 1 to MaxLength characters,
// each an ASCII letter or digit or one of ! - _ . * ' ( ), and neither "."
// nor "..". This is the set Mimir and Cortex allow. It leaves out
// everything that can hide in a directory name, a log line or a page:
// path separators, whitespace, control, bidirectional and zero-width
// characters, and any non-ASCII look-alike of another tenant's id.
func Validate(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty tenant id", ErrInvalid)
	case len(id) > MaxLength:
		return fmt.Errorf("%w: tenant id is %d bytes, more than %d", ErrInvalid, len(id), MaxLength)
	case id == "." || id == "..":
		return fmt.Errorf("%w: tenant id %q is a path element", ErrInvalid, id)
	}
	for i := 0; i < len(id); i++ {
		if !allowed(id[i]) {
			return fmt.Errorf("%w: tenant id %q has %q at byte %d; allowed are ASCII letters, digits and ! - _ . * ' ( )", ErrInvalid, id, id[i], i)
		}
	}
	return nil
}

func allowed(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '-', '_', '.', '*', '\'', '(', ')':
		return true
	}
	return false
}
