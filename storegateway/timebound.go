package storegateway

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// TimeBound is one end of the time window a gateway serves: an absolute
// time, or a duration relative to the moment of each sync ("-2w" is two
// weeks before it), so a relative window slides forward as time passes.
// The zero TimeBound leaves that end of the window open.
type TimeBound struct {
	abs time.Time
	rel time.Duration
	set bool
	// isRel tells a relative bound of 0 ("0s", now) from an absolute one.
	isRel bool
}

// ParseTimeBound reads an RFC 3339 time (2026-01-02T15:04:05Z) or a
// Prometheus duration with an optional sign (-36h, -2w, 0d).
func ParseTimeBound(s string) (TimeBound, error) {
	if s == "" {
		return TimeBound{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return TimeBound{abs: t, set: true}, nil
	}
	sign := time.Duration(1)
	d := s
	switch {
	case strings.HasPrefix(s, "-"):
		sign, d = -1, s[1:]
	case strings.HasPrefix(s, "+"):
		d = s[1:]
	}
	dur, err := model.ParseDuration(d)
	if err != nil {
		return TimeBound{}, fmt.Errorf("time bound %q is neither an RFC 3339 time nor a duration like -2w", s)
	}
	return TimeBound{rel: sign * time.Duration(dur), set: true, isRel: true}, nil
}

// IsZero reports whether the bound leaves its end of the window open.
func (b TimeBound) IsZero() bool { return !b.set }

// Time returns the bound at now.
func (b TimeBound) Time(now time.Time) time.Time {
	if b.isRel {
		return now.Add(b.rel)
	}
	return b.abs
}

// String renders the bound as ParseTimeBound reads it.
func (b TimeBound) String() string {
	switch {
	case !b.set:
		return ""
	case b.isRel:
		if b.rel < 0 {
			return "-" + model.Duration(-b.rel).String()
		}
		return model.Duration(b.rel).String()
	}
	return b.abs.Format(time.RFC3339)
}
