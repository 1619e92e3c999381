package storeapi

import (
	"context"
	"math"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/atoll-metrics/atoll/storeapi/storepb"
	"github.com/atoll-metrics/atoll/tenant"
)

// tenantTSDB is a real TSDB holding one tenant, as tsdbshard's are.
type tenantTSDB struct {
	*tsdb.DB
	ext labels.Labels
}

func (t *tenantTSDB) ExternalLabels() labels.Labels { return t.ext }
func (t *tenantTSDB) TimeRange() (int64, int64) {
	h := t.Head()
	if h.NumSeries() == 0 {
		return math.MaxInt64, math.MinInt64
	}
	return h.MinTime(), h.MaxTime()
}
func (t *tenantTSDB) Metadata(string, int) map[string]metadata.Metadata {
	return map[string]metadata.Metadata{"secret_of_" + t.ext.Get(tenant.Label): {Type: model.MetricTypeGauge}}
}

func newTenantTSDB(t *testing.T, id string, ts int64) *tenantTSDB {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	app := db.AppenderV2(context.Background())
	if _, err := app.Append(0, labels.FromStrings("__name__", "m", "owner", id), 0, ts, 1, nil, nil, storage.AOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	return &tenantTSDB{DB: db, ext: labels.FromStrings("receive_replica", "r1", tenant.Label, id)}
}

// TestTenantScopedStoreAPI: a request scoped to tenant a gets nothing of
// tenant b over the Store API, whatever matchers it sends.
func TestTenantScopedStoreAPI(t *testing.T) {
	now := time.Now().UnixMilli()
	a, b := newTenantTSDB(t, "team-a", now), newTenantTSDB(t, "team-b", now)
	local := NewLocal("local", ComponentReceive, func() []TSDB { return []TSDB{a, b} })
	srv := grpc.NewServer()
	RegisterServer(srv, local)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	remote := NewRemote("r", conn)

	owners := func(ctx context.Context, ms ...*labels.Matcher) []string {
		t.Helper()
		var out []string
		if _, err := remote.Series(ctx, &SeriesRequest{MinTime: 0, MaxTime: math.MaxInt64, Matchers: ms}, func(s Series) error {
			out = append(out, s.Labels.Get("owner")+"@"+s.Labels.Get(tenant.Label))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	name := labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")
	ctxA := WithTenant(context.Background(), "team-a")
	for _, ms := range [][]*labels.Matcher{
		{name},
		{name, labels.MustNewMatcher(labels.MatchEqual, tenant.Label, "team-b")},
		{name, labels.MustNewMatcher(labels.MatchRegexp, tenant.Label, ".*")},
		{name, labels.MustNewMatcher(labels.MatchNotEqual, tenant.Label, "team-a")},
	} {
		got := owners(ctxA, ms...)
		if len(got) > 1 || len(got) == 1 && got[0] != "team-a@team-a" {
			t.Errorf("scoped to team-a, matchers %v: got %v", ms, got)
		}
	}
	if got := owners(context.Background(), name); !slices.Equal(got, []string{"team-a@team-a", "team-b@team-b"}) {
		t.Errorf("unscoped: got %v, want both tenants", got)
	}

	values, _, err := remote.LabelValues(ctxA, tenant.Label, &LabelsRequest{MinTime: 0, MaxTime: math.MaxInt64})
	if err != nil || !slices.Equal(values, []string{"team-a"}) {
		t.Errorf("scoped tenant_id values: %v %v", values, err)
	}
	owner, _, err := remote.LabelValues(ctxA, "owner", &LabelsRequest{MinTime: 0, MaxTime: math.MaxInt64})
	if err != nil || !slices.Equal(owner, []string{"team-a"}) {
		t.Errorf("scoped owner values: %v %v", owner, err)
	}
	md, err := remote.Metadata(ctxA, &MetadataRequest{})
	if _, leak := md["secret_of_team-b"]; err != nil || leak || len(md) != 1 {
		t.Errorf("scoped metadata: %v %v", md, err)
	}
	if err := remote.RefreshInfo(ctxA); err != nil {
		t.Fatal(err)
	}
	info, _ := remote.Info(ctxA)
	for _, ls := range info.LabelSets {
		if ls.Get(tenant.Label) != "team-a" {
			t.Errorf("scoped info shows label set %v", ls)
		}
	}

	// The scope cannot be doubled up or malformed.
	client := storepb.NewStoreClient(conn)
	for _, md := range []grpcmd.MD{
		grpcmd.Pairs(tenant.MetadataKey, "team-a", tenant.MetadataKey, "team-b"),
		grpcmd.Pairs(tenant.MetadataKey, "../team-b"),
	} {
		ctx := grpcmd.NewOutgoingContext(context.Background(), md)
		_, err := client.LabelNames(ctx, &storepb.LabelNamesRequest{MaxTime: math.MaxInt64})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "tenant") {
			t.Errorf("metadata %v: %v, want InvalidArgument", md, err)
		}
	}
}
