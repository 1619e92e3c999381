package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/oklog/run"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/web"
)

// bucketToolConfig is `atoll bucket`: operator tools that read a bucket.
type bucketToolConfig struct {
	bucket  bucketConfig
	dataDir string
	output  string
	timeout time.Duration
	top     int
	deep    bool
	block   string
	// bucket web
	httpAddress string
	http        httpConfig
	refresh     time.Duration
}

// errProblemsFound makes `atoll bucket verify` exit non-zero.
var errProblemsFound = errors.New("bucket has problems")

func registerBucket(app *kingpin.Application, setups map[string]setupFunc) {
	cmd := app.Command("bucket", "Operator tools over a bucket: list, inspect and verify blocks.")
	c := &bucketToolConfig{}
	c.bucket.register(cmd, "Default: a filesystem bucket in <data-dir>/bucket.")
	cmd.Flag("data-dir", "Data directory of `atoll all`, whose bucket is the default.").
		Default("./data").StringVar(&c.dataDir)
	cmd.Flag("timeout", "Longest the command may run.").
		Default("30m").DurationVar(&c.timeout)

	ls := cmd.Command("ls", "List the blocks: time range, external labels, resolution, source, level and size, plus partial uploads and unreadable metas.")
	ls.Flag("output", "Output format: table or json.").Short('o').Default("table").EnumVar(&c.output, "table", "json")

	inspect := cmd.Command("inspect", "Show one block's meta and index statistics: series, label names, and the labels with the most values and series.")
	inspect.Arg("ulid", "The block.").Required().StringVar(&c.block)
	inspect.Flag("top", "How many label names and label pairs to show.").Default("10").IntVar(&c.top)
	inspect.Flag("output", "Output format: table or json.").Short('o').Default("table").EnumVar(&c.output, "table", "json")

	verify := cmd.Command("verify", "Check every block: overlaps within one set of external labels and resolution, missing or corrupt index and chunks, meta.json disagreeing with the files. Exits 1 if anything is wrong.")
	verify.Flag("deep", "Also read every series entry and chunk, checking checksums and where chunks lie (reads the whole bucket).").BoolVar(&c.deep)

	webCmd := cmd.Command("web", "Serve the web UI over the bucket: a timeline of its blocks per group and resolution, with levels, sizes, marks and each block's meta. Runs until stopped.")
	webCmd.Flag("http-address", "Listen address for the UI, /metrics, /-/healthy and /-/ready. This host only by default: the UI shows the bucket's blocks and labels.").
		Default("127.0.0.1:10902").StringVar(&c.httpAddress)
	c.http.register(webCmd)
	webCmd.Flag("refresh", "Longest a block listing is reused before the bucket is listed again; the page can ask for a fresh one.").
		Default("1m").DurationVar(&c.refresh)
	setups[webCmd.FullCommand()] = func(g *run.Group, logger *slog.Logger, reg *prometheus.Registry) (func(), error) {
		flags := flagValues(app, cmd)
		for k, v := range flagValues(app, webCmd) {
			flags[k] = v
		}
		return setupBucketWeb(g, logger, reg, c, flags)
	}

	add := func(sub *kingpin.CmdClause, do func(ctx context.Context, bkt bucket.Bucket, w io.Writer) error) {
		setups[sub.FullCommand()] = func(g *run.Group, logger *slog.Logger, reg *prometheus.Registry) (func(), error) {
			return setupBucketTool(g, logger, reg, c, do)
		}
	}
	add(ls, c.list)
	add(inspect, c.inspect)
	add(verify, c.verify)
}

func setupBucketTool(g *run.Group, logger *slog.Logger, reg *prometheus.Registry, c *bucketToolConfig, f func(context.Context, bucket.Bucket, io.Writer) error) (func(), error) {
	bkt, err := c.bucket.open(logger, reg, filepath.Join(c.dataDir, "bucket"))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	g.Add(func() error { return f(ctx, bkt, os.Stdout) }, func(error) { cancel() })
	return func() {
		cancel()
		_ = bkt.Close()
	}, nil
}

// setupBucketWeb serves the UI's blocks page over a bucket until stopped.
func setupBucketWeb(g *run.Group, logger *slog.Logger, reg *prometheus.Registry, c *bucketToolConfig, flags map[string]string) (func(), error) {
	bkt, err := c.bucket.open(logger, reg, filepath.Join(c.dataDir, "bucket"))
	if err != nil {
		return nil, err
	}
	cleanup := func() { _ = bkt.Close() }
	ready := &readiness{}
	addBucketCheck(g, logger, bkt, ready)
	mux := newOpsMux(reg, ready, &c.http)
	wo := newWebOptions("bucket web", defaultInstanceID(), flags, logger)
	wo.Blocks = bucketBlocks(bkt, logger)
	wo.BlocksMaxAge = c.refresh
	web.New(wo).Register(mux)
	if _, err := c.http.serve(g, logger, reg, "http", c.httpAddress, mux); err != nil {
		return cleanup, err
	}
	ready.set(true)
	return cleanup, nil
}

func (c *bucketToolConfig) list(ctx context.Context, bkt bucket.Bucket, w io.Writer) error {
	set, err := block.NewFetcher(bkt, nil).Fetch(ctx)
	if err != nil {
		return err
	}
	blocks := byStream(set)
	partial := slices.SortedFunc(maps.Keys(set.Partial), ulid.ULID.Compare)
	if c.output == "json" {
		type jsonBlock struct {
			*block.Meta
			DeletionMarked *time.Time `json:"deletion_marked,omitempty"`
		}
		out := struct {
			Blocks  []jsonBlock       `json:"blocks"`
			Partial []ulid.ULID       `json:"partial"`
			BadMeta map[string]string `json:"bad_meta"`
		}{Partial: partial, BadMeta: map[string]string{}}
		for _, b := range blocks {
			jb := jsonBlock{Meta: b.Meta}
			if b.Deletion != nil {
				at := b.Deletion.Time()
				jb.DeletionMarked = &at
			}
			out.Blocks = append(out.Blocks, jb)
		}
		for id, err := range set.Unreadable {
			out.BadMeta[id.String()] = err.Error()
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ULID\tFROM\tUNTIL\tRANGE\tRESOLUTION\tSOURCE\tLEVEL\tSERIES\tSAMPLES\tCHUNKS\tLABELS\tSTATE")
	for _, b := range blocks {
		m := b.Meta
		state := "ok"
		if b.Deletion != nil {
			state = "marked for deletion " + b.Deletion.Time().UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n",
			m.ULID, fmtTime(m.MinTime), fmtTime(m.MaxTime), model.Duration(time.Duration(m.MaxTime-m.MinTime)*time.Millisecond),
			resolutionName(m.Thanos.Downsample.Resolution), m.Thanos.Source, m.Compaction.Level,
			m.Stats.NumSeries, m.Stats.NumSamples, m.Stats.NumChunks, m.ExternalLabels(), state)
	}
	for _, id := range partial {
		fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\t\t\t\tpartial: no %s\n", id, block.MetaFilename)
	}
	for id, err := range set.Unreadable {
		fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\t\t\t\tunreadable %s: %v\n", id, block.MetaFilename, err)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%d blocks, %d partial, %d unreadable\n", len(set.Blocks), len(set.Partial), len(set.Unreadable))
	return err
}

// byStream orders blocks the way operators read a listing: by external
// labels, resolution, then time.
func byStream(set *block.Set) []*block.Block {
	out := set.Sorted()
	slices.SortStableFunc(out, func(a, b *block.Block) int {
		return cmp.Or(
			labels.Compare(a.Meta.ExternalLabels(), b.Meta.ExternalLabels()),
			cmp.Compare(a.Resolution(), b.Resolution()),
			cmp.Compare(a.Meta.MinTime, b.Meta.MinTime),
		)
	})
	return out
}

func (c *bucketToolConfig) inspect(ctx context.Context, bkt bucket.Bucket, w io.Writer) error {
	id, err := ulid.ParseStrict(c.block)
	if err != nil {
		return fmt.Errorf("block %q: %w", c.block, err)
	}
	meta, st, err := block.Inspect(ctx, bkt, id, c.top)
	if err != nil {
		return fmt.Errorf("block %s: %w", id, err)
	}
	if c.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Meta  *block.Meta       `json:"meta"`
			Index *block.IndexStats `json:"index"`
		}{meta, st})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Block\t%s\n", meta.ULID)
	fmt.Fprintf(tw, "Time range\t%s to %s (%s)\n", fmtTime(meta.MinTime), fmtTime(meta.MaxTime), model.Duration(time.Duration(meta.MaxTime-meta.MinTime)*time.Millisecond))
	fmt.Fprintf(tw, "External labels\t%s\n", meta.ExternalLabels())
	fmt.Fprintf(tw, "Resolution\t%s\n", resolutionName(meta.Thanos.Downsample.Resolution))
	fmt.Fprintf(tw, "Source / level\t%s / %d\n", meta.Thanos.Source, meta.Compaction.Level)
	fmt.Fprintf(tw, "Meta stats\t%d series, %d samples, %d chunks\n", meta.Stats.NumSeries, meta.Stats.NumSamples, meta.Stats.NumChunks)
	fmt.Fprintf(tw, "Index\tversion %d, %d bytes, %d symbols\n", st.Version, st.SizeBytes, st.Symbols)
	fmt.Fprintf(tw, "Index series\t%d\n", st.Series)
	fmt.Fprintf(tw, "Label names\t%d (%d label pairs)\n", st.LabelNames, st.LabelPairs)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nLabel names with the most values:\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVALUES\tSERIES")
	for _, n := range st.TopNames {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", n.Name, n.Values, n.Series)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nLabel pairs with the most series:\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVALUE\tSERIES")
	for _, p := range st.TopPairs {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", p.Name, p.Value, p.Series)
	}
	return tw.Flush()
}

func (c *bucketToolConfig) verify(ctx context.Context, bkt bucket.Bucket, w io.Writer) error {
	set, err := block.NewFetcher(bkt, nil).Fetch(ctx)
	if err != nil {
		return err
	}
	problems, err := block.Verify(ctx, bkt, set, block.VerifyOptions{Deep: c.deep})
	if err != nil {
		return err
	}
	blocks := map[ulid.ULID]bool{}
	for _, p := range problems {
		fmt.Fprintln(w, p)
		for _, id := range p.Blocks {
			blocks[id] = true
		}
	}
	what := "structure"
	if c.deep {
		what = "structure, series and chunks"
	}
	fmt.Fprintf(w, "verified %s of %d blocks (%d partial uploads skipped): %d problems in %d blocks\n",
		what, len(set.Blocks)+len(set.Unreadable), len(set.Partial), len(problems), len(blocks))
	if len(problems) > 0 {
		return errProblemsFound
	}
	return nil
}

func fmtTime(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }

func resolutionName(res int64) string {
	if res == 0 {
		return "raw"
	}
	return model.Duration(time.Duration(res) * time.Millisecond).String()
}
