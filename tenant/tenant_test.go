package tenant

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		id string
		ok bool
	}{
		{"default-tenant", true},
		{"team_a.prod-1", true},
		{"Team_A.prod-1!*'()", true},
		{"ünïcode", false},
		{"a b", false},
		{"a\u200bb", false},      // zero-width space
		{"evil\u202egnp", false}, // right-to-left override
		{"a\u00a0b", false},      // no-break space
		{"a|b", false},
		{"a:b", false},
		{"a%2fb", false},
		{"\x7f", false},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{`a\b`, false},
		{"a\x00b", false},
		{"tab\there", false},
		{strings.Repeat("x", MaxLength), true},
		{strings.Repeat("x", MaxLength+1), false},
		{"\xff\xfe", false},
	} {
		err := Validate(c.id)
		if (err == nil) != c.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", c.id, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%q) error does not match ErrInvalid: %v", c.id, err)
		}
	}
}

func TestFromHeader(t *testing.T) {
	for _, c := range []struct {
		headers map[string]string
		want    string
	}{
		{nil, ""},
		{map[string]string{"Thanos-Tenant": "a"}, "a"},
		{map[string]string{"X-Scope-OrgID": "b"}, "b"},
		{map[string]string{"THANOS-TENANT": "a", "X-Scope-OrgID": "b"}, "a"},
		{map[string]string{"THANOS-TENANT": "", "X-Scope-OrgID": "b"}, "b"},
	} {
		h := http.Header{}
		for k, v := range c.headers {
			h.Set(k, v)
		}
		if got := FromHeader(h); got != c.want {
			t.Errorf("FromHeader(%v) = %q, want %q", c.headers, got, c.want)
		}
	}
}
