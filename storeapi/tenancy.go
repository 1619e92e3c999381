package storeapi

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/atoll-metrics/atoll/tenant"
)

// A Store API request scoped to a tenant reads that tenant's data only.
// The querier scopes every request of a tenant-scoped query with
// WithTenant; Remote sends the scope as gRPC metadata
// (tenant.MetadataKey), and the server adds it to the request as a
// tenant_id matcher that no matcher of the caller can widen: matchers
// only ever narrow. A request without scope reads every tenant; only
// components may make one, which is what mutual TLS on the gRPC server
// (--grpc-server-tls-client-ca) ensures.

type tenantKey struct{}

// WithTenant scopes the Store API requests made with ctx to tenant id.
func WithTenant(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, tenantKey{}, id)
}

// TenantFrom returns the tenant ctx is scoped to, if any.
func TenantFrom(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(tenantKey{}).(string)
	return id, ok && id != ""
}

// outgoing carries the scope of ctx to a remote store.
func outgoing(ctx context.Context) context.Context {
	if id, ok := TenantFrom(ctx); ok {
		return metadata.AppendToOutgoingContext(ctx, tenant.MetadataKey, id)
	}
	return ctx
}

// incomingScope reads the scope a caller sent. Several values are refused
// rather than picked from.
func incomingScope(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vs := md.Get(tenant.MetadataKey)
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", status.Errorf(codes.InvalidArgument, "%d tenants in %s metadata; a request is scoped to one", len(vs), tenant.MetadataKey)
	}
	if err := tenant.Validate(vs[0]); err != nil {
		return "", status.Error(codes.InvalidArgument, err.Error())
	}
	return vs[0], nil
}

// scoped adds the tenant matcher of a scoped request to ms.
func scoped(id string, ms []*labels.Matcher) []*labels.Matcher {
	if id == "" {
		return ms
	}
	out := make([]*labels.Matcher, 0, len(ms)+1)
	out = append(out, ms...)
	return append(out, labels.MustNewMatcher(labels.MatchEqual, tenant.Label, id))
}

// scopedInfo keeps the label sets a scoped caller may see: its tenant's.
// Label sets without a tenant (a store of Prometheus blocks) hold nothing
// the tenant matcher lets through, so they are left out as well.
func scopedInfo(id string, info Info) Info {
	if id == "" {
		return info
	}
	m := labels.MustNewMatcher(labels.MatchEqual, tenant.Label, id)
	var sets []labels.Labels
	for _, ls := range info.LabelSets {
		if m.Matches(ls.Get(tenant.Label)) {
			sets = append(sets, ls)
		}
	}
	info.LabelSets = sets
	if len(sets) == 0 {
		// A store with no label set may hold anything: say instead that it
		// holds nothing for this tenant.
		info.MinTime, info.MaxTime = emptyRange.MinTime, emptyRange.MaxTime
		info.LabelSets = []labels.Labels{labels.FromStrings(tenant.Label, id)}
	}
	return info
}
