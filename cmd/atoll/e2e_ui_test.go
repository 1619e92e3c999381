package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/compactor"
	"github.com/atoll-metrics/atoll/internal/blockgen"
)

// findChromium locates a Chromium or Chrome to drive.
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestWebUI drives the UI of a started `atoll all` in a real headless
// Chromium, as an operator would: it types a query with completion, reads
// the table and the graph (axes, legend, hover, stacking, gaps), loads a
// shared URL with two panels, and opens every other page. Any console
// error or uncaught exception fails it. Screenshots go to
// $ATOLL_TEST_ARTIFACTS/ui, or to a temporary directory that is logged.
func TestWebUI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	chromium := findChromium()
	if chromium == "" {
		t.Skip("chromium not installed (apt-get install chromium); the UI test drives a real browser")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	dataDir := t.TempDir()
	blocks := fillBucket(ctx, t, filepath.Join(dataDir, "bucket"))
	limits := filepath.Join(t.TempDir(), "limits.yml")
	if err := os.WriteFile(limits, []byte("tenants:\n  team-a:\n    ingestion_rate: 5000\n    max_series: 50\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAtoll(t, dataDir, "--compact.disable", "--receive.limits-config-file="+limits)
	now := time.Now()
	writeUIData(t, a.writeURL, now)

	shots := screenshotDir(t)
	b := newBrowser(ctx, t, chromium)

	// The query page: completion of a function, a metric name and a label
	// value, then the table.
	b.do("open the query page",
		chromedp.Navigate(a.httpURL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`.editor textarea`)))
	b.complete("rat", "rate", "rate()")
	b.do("type a metric name's start", chromedp.SendKeys(chromedp.CSS(`.editor textarea`), "ui_"))
	b.waitJS(`[...document.querySelectorAll('.complete:not(.hidden) .item .t')].length >= 3`, "metric names offered")
	b.screenshot(shots, "query-completion")
	b.complete("req", "ui_requests_total", "rate(ui_requests_total)")
	b.complete("{", "job", "rate(ui_requests_total{job)")
	b.complete(`="`, "api", `rate(ui_requests_total{job="api")`)
	b.do("finish the expression", chromedp.SendKeys(chromedp.CSS(`.editor textarea`), `}[5m]`))
	const expr = `rate(ui_requests_total{job="api"}[5m])`
	if v := b.value(`.editor textarea`); v != expr {
		t.Fatalf("expression after completion = %q, want %q", v, expr)
	}
	b.do("run the table", chromedp.Click(chromedp.CSS(`button.execute`)))
	b.waitCount(`.table-result tbody tr`, 2)
	if txt := b.text(`.qstats`); !strings.Contains(txt, "Samples") || !strings.Contains(txt, "Result series: 2") {
		t.Errorf("query stats under the table = %q, want series and samples", txt)
	}
	b.screenshot(shots, "query-table")

	// The graph: axes with ticks, a legend per series, hover on the
	// nearest point, isolating a series, stacking.
	b.do("open the graph", chromedp.Click(chromedp.CSS(`.tabs button[data-tab=graph]`)),
		chromedp.WaitVisible(chromedp.CSS(`.graph svg`)))
	if n := b.count(`.graph .ytick`); n < 3 {
		t.Errorf("value axis has %d ticks, want at least 3", n)
	}
	if n := b.count(`.graph .xtick`); n < 3 {
		t.Errorf("time axis has %d ticks, want at least 3", n)
	}
	if ticks := b.text(`.graph .axis`); !strings.Contains(ticks, ":") {
		t.Errorf("time ticks %q do not read as times", ticks)
	}
	b.waitCount(`.legend .li`, 2)
	if legend := b.text(`.legend`); !strings.Contains(legend, `instance="a"`) || !strings.Contains(legend, `instance="b"`) {
		t.Errorf("legend = %q, want both series' labels", legend)
	}
	b.hoverPlot(0.5, 0.5)
	b.do("hover shows the nearest point", chromedp.WaitVisible(chromedp.CSS(`.tooltip:not(.hidden)`)))
	if tip := b.text(`.tooltip`); !strings.Contains(tip, "ui_requests_total") && !strings.Contains(tip, `job="api"`) {
		t.Errorf("tooltip = %q, want the series' labels", tip)
	}
	b.screenshot(shots, "query-graph-hover")
	b.do("isolate a series", chromedp.Click(chromedp.CSS(`.legend .li`)))
	b.waitCount(`.legend .li.off`, 1)
	b.do("show all again", chromedp.Click(chromedp.CSS(`.legend .li:not(.off)`)))
	b.waitCount(`.legend .li.off`, 0)
	b.do("stack", chromedp.Click(chromedp.CSS(`button[data-mode=stacked]`)))
	b.waitCount(`.graph path.area`, 2)
	b.screenshot(shots, "query-graph-stacked")

	// The URL holds the view: loading it again shows the same panel.
	shared := eval[string](b, `location.href`)
	for _, want := range []string{"g0.expr=", "g0.tab=graph", "g0.stacked=1"} {
		if !strings.Contains(shared, want) {
			t.Errorf("URL %q lacks %q", shared, want)
		}
	}
	b.do("load the shared URL", chromedp.Navigate(shared), chromedp.WaitVisible(chromedp.CSS(`.graph svg`)))
	if v := b.value(`.editor textarea`); v != expr {
		t.Errorf("shared URL loads expression %q, want %q", v, expr)
	}
	b.waitCount(`.graph path.area`, 2)

	// A shared URL with three panels: a gauge with a gap (drawn as two
	// lines), a native histogram (a bucket chart in the table) and a query
	// with warnings and infos.
	multi := a.httpURL + "/query?g0.expr=ui_temperature_celsius&g0.tab=graph&g0.range_input=1h" +
		"&g1.expr=ui_latency_seconds&g1.tab=table" +
		"&g2.expr=" + strings.ReplaceAll(`histogram_quantile(0.9, rate(ui_temperature_celsius[5m]))`, " ", "%20") + "&g2.tab=table"
	b.do("load a shared URL with three panels", chromedp.Navigate(multi),
		chromedp.WaitVisible(chromedp.CSS(`.panel:nth-of-type(1) .graph svg`)),
		chromedp.WaitVisible(chromedp.CSS(`.panel:nth-of-type(2) .hist-chart`)),
		chromedp.WaitVisible(chromedp.CSS(`.panel:nth-of-type(3) .alert.warn`)))
	if n := b.count(`.panel:nth-of-type(1) .graph path.line`); n != 2 {
		t.Errorf("the gauge with a gap is drawn as %d lines, want 2", n)
	}
	if n := b.count(`.panel:nth-of-type(2) .hist-chart rect.b`); n < 3 {
		t.Errorf("histogram bucket chart has %d bars, want several", n)
	}
	if n := b.count(`.panel:nth-of-type(3) .alert.info`); n == 0 {
		t.Errorf("no info shown for rate() over a gauge")
	}
	b.screenshot(shots, "query-panels")

	// The other pages.
	b.do("open the stores page", chromedp.Navigate(a.httpURL+"/stores"), chromedp.WaitVisible(chromedp.CSS(`table.stores`)))
	b.waitCount(`table.stores tbody tr`, 2)
	if txt := b.text(`main`); strings.Count(txt, "UP") != 2 || !strings.Contains(txt, "tenant_id") {
		t.Errorf("stores table = %q, want two healthy stores with their label sets", txt)
	}
	b.screenshot(shots, "stores")

	b.do("open the ring page", chromedp.Click(chromedp.CSS(`.nav a[href="/ring"]`)), chromedp.WaitVisible(chromedp.CSS(`.no-ring`)))
	if txt := b.text(`.no-ring`); !strings.Contains(txt, "no ring") {
		t.Errorf("ring page in atoll all = %q, want it to say there is no ring", txt)
	}
	b.screenshot(shots, "ring")

	b.do("open the tenants page", chromedp.Navigate(a.httpURL+"/tenants"), chromedp.WaitVisible(chromedp.CSS(`table.tenants`)))
	b.waitCount(`tr.tenant-row`, 2)
	b.waitJS(`[...document.querySelectorAll('tr.tenant-row td.rate')].every(td => /^[0-9.]+[kM]?$/.test(td.textContent))`, "samples/s measured for every tenant")
	if txt := b.text(`tr.tenant-row[data-tenant=team-a]`); !strings.Contains(txt, "50 series") {
		t.Errorf("team-a row = %q, want its max_series limit", txt)
	}
	b.screenshot(shots, "tenants")

	b.do("open the blocks page", chromedp.Navigate(a.httpURL+"/blocks"), chromedp.WaitVisible(chromedp.CSS(`.timeline svg`)))
	b.waitCount(`.timeline .blk`, blocks.total)
	if n := b.count(`.timeline .blk.deleted`); n == 0 {
		t.Errorf("no block is drawn as marked for deletion")
	}
	if n := b.count(`.timeline .blk.nocompact`); n != 1 {
		t.Errorf("%d blocks drawn as no-compact, want 1", n)
	}
	b.screenshot(shots, "blocks")
	b.do("open a block", chromedp.Click(chromedp.CSS(fmt.Sprintf(`.timeline .blk[data-ulid="%s"]`, blocks.noCompact))),
		chromedp.WaitVisible(chromedp.CSS(`.drawer pre.json`)))
	if txt := b.text(`.drawer`); !strings.Contains(txt, blocks.noCompact.String()) || !strings.Contains(txt, "no-compact-mark.json") {
		t.Errorf("block details = %.300q, want its meta and its no-compact mark", txt)
	}
	b.screenshot(shots, "blocks-meta")

	b.do("open the status page", chromedp.Navigate(a.httpURL+"/status"), chromedp.WaitVisible(chromedp.CSS(`#build`)))
	b.waitJS(`document.querySelectorAll('#flags tbody tr').length > 10`, "the flags")
	if txt := b.text(`#build`); !strings.Contains(txt, buildVersion) {
		t.Errorf("build information = %q, want version %s", txt, buildVersion)
	}
	b.screenshot(shots, "status")

	b.checkConsole()
}

// uiBlocks is what fillBucket put in the bucket.
type uiBlocks struct {
	total     int
	noCompact ulid.ULID
}

// fillBucket writes three days of two replicas' blocks and compacts them
// once, so the bucket holds levels, a downsampled group and blocks marked
// for deletion; one block gets a no-compact mark.
func fillBucket(ctx context.Context, t *testing.T, dir string) uiBlocks {
	t.Helper()
	bkt, err := bucket.NewFilesystem(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()
	cfg := blockgen.Config{
		Start:           time.Now().Add(-74 * time.Hour),
		Duration:        72 * time.Hour,
		Interval:        5 * time.Minute,
		Series:          4,
		HistogramSeries: 1,
		ExternalLabels:  map[string]string{"tenant_id": "default-tenant"},
		Seed:            7,
	}
	if _, err := blockgen.Generate(ctx, bkt, t.TempDir(), cfg); err != nil {
		t.Fatal(err)
	}
	o := compactor.DefaultOptions()
	o.DataDir = t.TempDir()
	o.LeaseHolder = "ui-test"
	comp, err := compactor.New(bkt, o, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := comp.Run(ctx); err != nil {
		t.Fatal(err)
	}
	set, err := block.NewFetcher(bkt, nil).Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out uiBlocks
	for _, b := range set.Sorted() {
		out.total++
		if out.noCompact == (ulid.ULID{}) && b.Deletion == nil {
			out.noCompact = b.ID()
		}
	}
	if _, err := block.WriteNoCompactMark(ctx, bkt, out.noCompact, block.NoCompactReasonManual, "kept apart by the UI test", time.Now()); err != nil {
		t.Fatal(err)
	}
	t.Logf("bucket: %d blocks", out.total)
	return out
}

// writeUIData writes half an hour of series the test queries: counters of
// two jobs, a gauge with a 12-minute gap, and a native histogram; a second
// tenant gets a few series.
func writeUIData(t *testing.T, url string, now time.Time) {
	t.Helper()
	const step = 15 * time.Second
	start := now.Add(-30 * time.Minute).Truncate(step)
	lbl := func(kv ...string) []prompb.Label {
		var out []prompb.Label
		for i := 0; i < len(kv); i += 2 {
			out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	series := []prompb.TimeSeries{
		{Labels: lbl("__name__", "ui_requests_total", "instance", "a", "job", "api")},
		{Labels: lbl("__name__", "ui_requests_total", "instance", "b", "job", "api")},
		{Labels: lbl("__name__", "ui_requests_total", "instance", "c", "job", "batch")},
		{Labels: lbl("__name__", "ui_temperature_celsius", "room", "lab")},
		{Labels: lbl("__name__", "ui_latency_seconds", "job", "api")},
	}
	gapFrom, gapTo := now.Add(-20*time.Minute), now.Add(-8*time.Minute)
	for i, ts := 0, start; !ts.After(now); i, ts = i+1, ts.Add(step) {
		ms := ts.UnixMilli()
		for k := range 3 {
			series[k].Samples = append(series[k].Samples, prompb.Sample{Timestamp: ms, Value: float64(i * (k + 1) * 10)})
		}
		if ts.Before(gapFrom) || ts.After(gapTo) {
			series[3].Samples = append(series[3].Samples, prompb.Sample{Timestamp: ms, Value: 20 + float64(i%12)/4})
		}
		// Bucket counts n, 2n, 2n, 3n, 2n, 3n (n = i+1), as deltas.
		n := int64(i + 1)
		h := &histogram.Histogram{
			Count: uint64(13 * n), Sum: 0.3 * float64(n), Schema: 0, ZeroThreshold: 1e-9,
			PositiveSpans:   []histogram.Span{{Offset: -6, Length: 6}},
			PositiveBuckets: []int64{n, n, 0, n, -n, n},
		}
		series[4].Histograms = append(series[4].Histograms, prompb.FromIntHistogram(ms, h))
	}
	req := &prompb.WriteRequest{Timeseries: series, Metadata: []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "ui_requests_total", Help: "Requests served."},
		{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "ui_temperature_celsius", Help: "Temperature of the room."},
	}}
	if code, body := remoteWrite(t, url, "", req); code/100 != 2 {
		t.Fatalf("remote write: %d %s", code, body)
	}
	other := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbl("__name__", "team_jobs", "queue", "x"), Samples: []prompb.Sample{{Timestamp: now.UnixMilli(), Value: 1}}},
		{Labels: lbl("__name__", "team_jobs", "queue", "y"), Samples: []prompb.Sample{{Timestamp: now.UnixMilli(), Value: 2}}},
	}}
	if code, body := remoteWrite(t, url, "team-a", other); code/100 != 2 {
		t.Fatalf("remote write for team-a: %d %s", code, body)
	}
}

func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ATOLL_TEST_ARTIFACTS")
	if dir != "" {
		dir = filepath.Join(dir, "ui")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		var err error
		if dir, err = os.MkdirTemp("", "atoll-ui-screenshots-"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// browser is a headless Chromium with a 1280×800 window that records every
// console error and uncaught exception of the pages it shows.
type browser struct {
	t   *testing.T
	ctx context.Context

	mtx    sync.Mutex
	errors []string
}

func newBrowser(ctx context.Context, t *testing.T, chromium string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-gpu", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: bctx}
	// The first action starts the browser, which lives as long as the
	// context of that action: bctx, not a shorter one.
	exceptions := chromedp.Events(bctx, runtime.ExceptionThrown)
	console := chromedp.Events(bctx, runtime.ConsoleAPICalled)
	logs := chromedp.Events(bctx, cdplog.EntryAdded)
	var wg sync.WaitGroup
	wg.Go(func() {
		for e, err := range exceptions {
			if err != nil {
				return
			}
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
			b.record("uncaught exception: " + msg)
		}
	})
	wg.Go(func() {
		for e, err := range console {
			if err != nil {
				return
			}
			if e.Type != runtime.ConsoleAPICalledTypeError && e.Type != runtime.ConsoleAPICalledTypeAssert {
				continue
			}
			var args []string
			for _, a := range e.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			b.record("console." + string(e.Type) + ": " + strings.Join(args, " "))
		}
	})
	wg.Go(func() {
		for e, err := range logs {
			if err != nil {
				return
			}
			if e.Entry.Level == cdplog.EntryLevelError {
				b.record(fmt.Sprintf("%s error: %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL))
			}
		}
	})
	t.Cleanup(func() {
		bcancel()
		acancel()
		wg.Wait()
	})
	if _, err := chromedp.Call(bctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b.do("set the window", chromedp.EmulateViewport(1280, 800))
	return b
}

func (b *browser) record(msg string) {
	b.mtx.Lock()
	b.errors = append(b.errors, msg)
	b.mtx.Unlock()
}

// do runs actions, bounded in time.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.checkConsole()
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.checkConsole()
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// complete types text into the editor, waits for the completion menu to
// offer item, selects and accepts it with Tab, and checks the editor's text.
func (b *browser) complete(text, item, want string) {
	b.t.Helper()
	b.do("type "+text, chromedp.SendKeys(chromedp.CSS(`.editor textarea`), text))
	b.waitJS(fmt.Sprintf(`[...document.querySelectorAll('.complete:not(.hidden) .item .t')].some(e => e.textContent === %q)`, item),
		"completion offers "+item)
	n := eval[int](b, fmt.Sprintf(`[...document.querySelectorAll('.complete .item .t')].findIndex(e => e.textContent === %q)`, item))
	keys := strings.Repeat(kb.ArrowDown, n) + kb.Tab
	b.do("pick "+item, chromedp.SendKeys(chromedp.CSS(`.editor textarea`), keys))
	if v := b.value(`.editor textarea`); v != want {
		b.t.Fatalf("after completing %q: editor holds %q, want %q", item, v, want)
	}
}

func (b *browser) value(sel string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`document.querySelector(%q).value`, sel))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ''`, sel))
}

func (b *browser) count(sel string) int {
	b.t.Helper()
	return eval[int](b, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

func (b *browser) waitCount(sel string, n int) {
	b.t.Helper()
	b.waitJS(fmt.Sprintf(`document.querySelectorAll(%q).length === %d`, sel, n), fmt.Sprintf("%d of %s", n, sel))
}

// waitJS polls a condition in the page.
func (b *browser) waitJS(cond, what string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !eval[bool](b, cond) {
		if time.Now().After(deadline) {
			b.checkConsole()
			b.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hoverPlot moves the mouse to a point of the first graph's plot, given
// as fractions of its width and height.
func (b *browser) hoverPlot(fx, fy float64) {
	b.t.Helper()
	box := eval[struct{ X, Y, W, H float64 }](b, `(() => { const r = document.querySelector('.graph svg .frame').getBoundingClientRect(); return {X: r.x, Y: r.y, W: r.width, H: r.height}; })()`)
	b.do("hover the plot", chromedp.MouseEvent(chromedp.MouseMoved, box.X+fx*box.W, box.Y+fy*box.H))
}

func (b *browser) screenshot(dir, name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// checkConsole fails the test for every error the pages logged so far.
// Events arrive asynchronously: give the last ones a moment.
func (b *browser) checkConsole() {
	b.t.Helper()
	time.Sleep(200 * time.Millisecond)
	b.mtx.Lock()
	defer b.mtx.Unlock()
	for _, e := range b.errors {
		b.t.Errorf("browser: %s", e)
	}
	b.errors = nil
}
