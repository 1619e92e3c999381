package deploytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/atoll-metrics/atoll/internal/e2eproc"
)

// exposedMetrics maps every series name the Atoll components expose (a
// histogram's _bucket, _sum and _count series each) to the label names seen
// on it.
type exposedMetrics map[string]map[string]bool

var observed struct {
	once    sync.Once
	metrics exposedMetrics
	err     error
}

// observedMetrics starts every kind of Atoll process once per test binary,
// drives each code path that creates labelled series (writes, forwards,
// quorum failures, shipping, gateway syncs, compactions, every query
// endpoint, a partial response), and returns what their /metrics exposed.
func observedMetrics(t *testing.T) exposedMetrics {
	t.Helper()
	observed.once.Do(func() {
		observed.metrics, observed.err = runComponents(t)
	})
	if observed.err != nil {
		t.Fatalf("collecting the components' metrics: %v", observed.err)
	}
	return observed.metrics
}

type component struct {
	name    string
	p       *e2eproc.Process
	http    string // base URL
	write   string // remote-write URL, for receivers
	gossip  string
	grpc    string
	scraped bool
}

func runComponents(t *testing.T) (exposedMetrics, error) {
	bin := atollBinary(t)
	dir := t.TempDir()
	bucket := fmt.Sprintf("--objstore.config=type: FILESYSTEM\nconfig:\n  directory: %s", filepath.Join(dir, "bucket"))
	ports := e2eproc.Ports(t, 20)
	next := func() string {
		p := ports[0]
		ports = ports[1:]
		return fmt.Sprintf("127.0.0.1:%d", p)
	}
	const blockDuration = "--tsdb.block-duration=1m"

	newComponent := func(name string) *component {
		return &component{name: name, http: next(), gossip: next(), grpc: next()}
	}
	recvA, recvB := newComponent("receive-a"), newComponent("receive-b")
	for _, c := range []*component{recvA, recvB} {
		write := next()
		c.write = "http://" + write + "/api/v1/receive"
		c.p = startProcess(t, c.name, bin, "receive",
			"--data-dir="+filepath.Join(dir, c.name),
			"--http-address="+c.http, "--grpc-address="+c.grpc, "--remote-write.address="+write,
			"--ring.listen-address="+c.gossip, "--ring.join="+recvA.gossip, "--ring.instance-id="+c.name,
			"--receive.replication-factor=2", "--receive.forward-timeout=2s",
			blockDuration, "--shipper.interval=1s", bucket,
			// The dashboards and alerts show each tenant, as the deploy
			// files' receivers do.
			"--metrics.per-tenant")
	}
	store := newComponent("store")
	store.p = startProcess(t, "store", bin, "store",
		"--data-dir="+filepath.Join(dir, "store"), "--http-address="+store.http, "--grpc-address="+store.grpc,
		"--ring.listen-address="+store.gossip, "--ring.join="+recvA.gossip, "--ring.instance-id=store",
		"--sync-block-duration=1s", bucket)
	query := newComponent("query")
	query.p = startProcess(t, "query", bin, "query",
		"--http-address="+query.http, "--grpc-address="+query.grpc,
		"--ring.listen-address="+query.gossip, "--ring.join="+recvA.gossip, "--ring.instance-id=query",
		"--store.check-interval=1s")
	compact := &component{name: "compact", http: next()}
	compact.p = startProcess(t, "compact", bin, "compact", "--wait", "--wait-interval=1s",
		"--data-dir="+filepath.Join(dir, "compact"), "--http-address="+compact.http,
		"--compact.ranges=1m,4m", bucket)
	all := &component{name: "all", http: next(), grpc: next()}
	allWrite := next()
	all.write = "http://" + allWrite + "/api/v1/receive"
	all.p = startProcess(t, "all", bin, "all",
		"--data-dir="+filepath.Join(dir, "all"), "--http-address="+all.http, "--grpc-address="+all.grpc,
		"--remote-write.address="+allWrite, blockDuration, "--shipper.interval=1s", "--compact.interval=1s", "--metrics.per-tenant")
	components := []*component{recvA, recvB, store, query, compact, all}

	waitFor := func(timeout time.Duration, what string, f func() error) error {
		deadline := time.Now().Add(timeout)
		for {
			err := f()
			if err == nil {
				return nil
			}
			for _, c := range components {
				if c.p.Exited() && !c.scraped {
					return fmt.Errorf("%s exited:\n%s", c.name, tail(c.p.Output().String(), 2048))
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: not within %s: %w", what, timeout, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	atLeast := func(c *component, name string, want float64) func() error {
		return func() error {
			v, _, err := metricValue("http://"+c.http+"/metrics", name)
			if err == nil && v < want {
				err = fmt.Errorf("%s of %s is %v, want at least %v", name, c.name, v, want)
			}
			return err
		}
	}

	for _, c := range components {
		if err := waitFor(60*time.Second, c.name+" ready", func() error {
			_, err := get("http://" + c.http + "/-/ready")
			return err
		}); err != nil {
			return nil, err
		}
	}
	if err := waitFor(30*time.Second, "the querier sees both receivers and the gateway",
		atLeast(query, "atoll_querier_endpoints_healthy", 3)); err != nil {
		return nil, err
	}

	// Ten minutes of history over one-minute blocks: the receivers and
	// `atoll all` cut and ship blocks, the gateway loads them and the
	// compactor merges the two receivers' replicas.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now().Add(-10 * time.Minute)
	history := &prompb.WriteRequest{}
	for i := range 5 {
		ts := prompb.TimeSeries{Labels: seriesLabels(historyMetric, i)}
		for j := range 40 {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: start.Add(time.Duration(j) * historyStep).UnixMilli(), Value: float64(j)})
		}
		history.Timeseries = append(history.Timeseries, ts)
	}
	for _, c := range []*component{recvA, all} {
		if code, body, err := remoteWrite(ctx, c.write, history); err != nil || code/100 != 2 {
			return nil, fmt.Errorf("history to %s: %d %s %v", c.name, code, body, err)
		}
	}
	// A sample for a new series older than the head takes: a 4xx code.
	old := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  seriesLabels(historyMetric, 0),
		Samples: []prompb.Sample{{Timestamp: start.Add(-time.Minute).UnixMilli(), Value: 1}},
	}}}
	if code, _, err := remoteWrite(ctx, recvA.write, old); err != nil || code/100 == 2 {
		return nil, fmt.Errorf("an out-of-order sample got %d, %v; want a refusal", code, err)
	}
	for _, w := range []struct {
		c    *component
		name string
	}{
		{recvA, "atoll_shipper_uploads_total"},
		{store, "atoll_gateway_blocks_loaded"},
		{compact, "atoll_compactor_blocks_marked_for_deletion_total"},
		{all, "atoll_shipper_uploads_total"},
	} {
		if err := waitFor(90*time.Second, w.c.name+" "+w.name, atLeast(w.c, w.name, 1)); err != nil {
			return nil, err
		}
	}

	queries := func(c *component) error {
		now := time.Now()
		for _, path := range []string{
			"/api/v1/query?query=" + historyMetric,
			fmt.Sprintf("/api/v1/query_range?query=rate(%s[2m])&start=%d&end=%d&step=15", historyMetric, start.Unix(), now.Unix()),
			"/api/v1/series?match[]=" + historyMetric,
			"/api/v1/labels",
			"/api/v1/label/series/values",
		} {
			if _, err := get("http://" + c.http + path); err != nil {
				return err
			}
		}
		return nil
	}
	for _, c := range []*component{query, all} {
		if err := queries(c); err != nil {
			return nil, err
		}
	}
	// The gateway answers once the querier's view of its time range
	// includes the blocks it loaded.
	if err := waitFor(30*time.Second, "the gateway answers the querier", func() error {
		if err := queries(query); err != nil {
			return err
		}
		return atLeast(store, "atoll_gateway_series_returned_total", 1)()
	}); err != nil {
		return nil, err
	}

	metrics := exposedMetrics{}
	scrape := func(c *component) error {
		body, err := get("http://" + c.http + "/metrics")
		if err != nil {
			return err
		}
		if err := addExposition(metrics, body); err != nil {
			return fmt.Errorf("%s /metrics: %w", c.name, err)
		}
		c.scraped = true
		return nil
	}

	// receive-b dies: receive-a's forwards to it fail, quorum is missed
	// until the ring notices, and the querier answers without it.
	if err := scrape(recvB); err != nil {
		return nil, err
	}
	recvB.p.Kill()
	round := &prompb.WriteRequest{}
	for i := range 5 {
		round.Timeseries = append(round.Timeseries, prompb.TimeSeries{
			Labels:  seriesLabels(roundMetric, i),
			Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: 1}},
		})
	}
	if code, body, err := remoteWrite(ctx, recvA.write, round); err != nil {
		return nil, fmt.Errorf("write with receive-b dead: %v", err)
	} else if code/100 == 2 {
		return nil, fmt.Errorf("write with receive-b dead and RF=2 acknowledged (%d %s); want quorum missed", code, body)
	}
	if err := waitFor(30*time.Second, "a partial response from the querier", func() error {
		if err := queries(query); err != nil {
			return err
		}
		return atLeast(query, "atoll_querier_partial_responses_total", 1)()
	}); err != nil {
		return nil, err
	}

	for _, c := range components {
		if c == recvB {
			continue
		}
		if err := scrape(c); err != nil {
			return nil, err
		}
	}
	return metrics, nil
}

// addExposition adds the series names and label names of a text-format
// exposition to m.
func addExposition(m exposedMetrics, body []byte) error {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return err
	}
	add := func(name string, labels []*dto.LabelPair, extra ...string) {
		set := m[name]
		if set == nil {
			set = map[string]bool{}
			m[name] = set
		}
		for _, l := range labels {
			set[l.GetName()] = true
		}
		for _, l := range extra {
			set[l] = true
		}
	}
	for name, f := range families {
		for _, s := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				add(name+"_bucket", s.GetLabel(), "le")
				add(name+"_sum", s.GetLabel())
				add(name+"_count", s.GetLabel())
				add(name, s.GetLabel()) // native histograms
			case dto.MetricType_SUMMARY:
				add(name, s.GetLabel(), "quantile")
				add(name+"_sum", s.GetLabel())
				add(name+"_count", s.GetLabel())
			default:
				add(name, s.GetLabel())
			}
		}
	}
	return nil
}

// scrapeLabels are the labels Prometheus adds to every scraped series, and
// the series a scrape itself produces.
var (
	scrapeLabels  = map[string]bool{"job": true, "instance": true}
	scrapeSeries  = map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true}
	errNotExposed = errors.New("not exposed by any Atoll component")
)

// checkSelector reports whether a selector of metric name with matchers on
// labels can match what the components expose.
func (m exposedMetrics) checkSelector(name string, labels []string) error {
	if scrapeSeries[name] {
		return nil
	}
	seen, ok := m[name]
	if !ok {
		return fmt.Errorf("metric %s: %w", name, errNotExposed)
	}
	var missing []string
	for _, l := range labels {
		if l != model.MetricNameLabel && !scrapeLabels[l] && !seen[l] {
			missing = append(missing, l)
		}
	}
	if len(missing) > 0 {
		var have []string
		for l := range seen {
			have = append(have, l)
		}
		sort.Strings(have)
		return fmt.Errorf("metric %s has no label %s (it has %s)", name, strings.Join(missing, ", "), strings.Join(have, ", "))
	}
	return nil
}
