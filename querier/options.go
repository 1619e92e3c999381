package querier

import (
	"context"
	"time"

	"github.com/prometheus/prometheus/storage"
)

// queryOptions are the per-request choices a query carries from the HTTP
// layer down to Select, where the PromQL engine gives no other channel.
type queryOptions struct {
	// tenant scopes the query to one tenant; empty means every tenant,
	// with series keeping their tenant label.
	tenant string
	// dedup merges replicas; off, every replica's series is returned.
	dedup bool
	// partialResponse turns store failures into warnings.
	partialResponse bool
	// maxResolution is the coarsest downsampled resolution accepted, in
	// milliseconds; autoResolution picks one from the query step.
	maxResolution  int64
	autoResolution bool
}

type queryOptionsKey struct{}

func withQueryOptions(ctx context.Context, o queryOptions) context.Context {
	return context.WithValue(ctx, queryOptionsKey{}, o)
}

// optionsFrom returns the request's options, or the querier's defaults for
// calls that did not come through the HTTP API (rule evaluation, tests).
func (q *Querier) optionsFrom(ctx context.Context) queryOptions {
	if o, ok := ctx.Value(queryOptionsKey{}).(queryOptions); ok {
		return o
	}
	tenant := q.opts.DefaultTenant
	if q.opts.AllTenants {
		tenant = ""
	}
	return queryOptions{
		tenant:          tenant,
		dedup:           true,
		partialResponse: q.opts.PartialResponse,
	}
}

// resolutionFor is the coarsest downsampling resolution a Select may read.
// With auto, it is the coarsest whose windows still fit the query step
// several times over, so every step sees whole aggregates, and the range
// of a range selector as well: rate(m[10m]) over 1h windows would see one
// aggregate or none and answer nothing where raw data answers.
func (o queryOptions) resolutionFor(hints *storage.SelectHints) int64 {
	if !o.autoResolution {
		return o.maxResolution
	}
	if hints == nil || hints.Step <= 0 {
		return 0
	}
	const fitsSteps = 5
	fits := func(res int64) bool {
		return hints.Step >= fitsSteps*res && (hints.Range == 0 || hints.Range >= fitsSteps*res)
	}
	for _, res := range []int64{time.Hour.Milliseconds(), (5 * time.Minute).Milliseconds()} {
		if fits(res) {
			return res
		}
	}
	return 0
}
