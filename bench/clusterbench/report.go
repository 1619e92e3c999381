package main

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// cell is one value of the table: a number to take ratios of, or a text.
type cell struct {
	v    float64
	text string
}

func num(v float64, format string) cell { return cell{v: v, text: fmt.Sprintf(format, v)} }
func text(s string) cell                { return cell{text: s} }

// row is one line of the table; value reads it from a setup's run, which
// is the median ingest run or, for query rows, the run that was queried.
type row struct {
	label string
	query bool
	// ratio says whether ratio columns apply: they would mislead for
	// counts of errors, or for texts.
	ratio bool
	value func(r *runResult) (cell, bool)
}

// column is a setup, or the ratio of two setups' values.
type column struct {
	title    string
	key      string
	num, den string
}

func columns(ss []setup) []column {
	var cols []column
	var single, firstOne string
	for _, spread := range []bool{false, true} {
		var keys []string
		var titles []string
		for _, s := range ss {
			if s.single() || s.Spread != spread {
				continue
			}
			cols = append(cols, column{title: s.Title, key: s.Key})
			keys, titles = append(keys, s.Key), append(titles, fmt.Sprintf("RF=%d", s.RF))
		}
		if len(keys) >= 2 {
			cols = append(cols, column{title: titles[0] + "/" + titles[1], num: keys[0], den: keys[1]})
		}
		if !spread && len(keys) > 0 {
			firstOne = keys[0]
		}
	}
	for _, s := range ss {
		if s.single() {
			single = s.Key
			cols = append(cols, column{title: s.Title, key: s.Key})
		}
	}
	if single != "" && firstOne != "" {
		var title string
		for _, s := range ss {
			if s.Key == firstOne {
				title = s.Title
			}
		}
		cols = append(cols, column{title: title + " / atoll all", num: firstOne, den: single})
	}
	return cols
}

func rows(c config, results []*runResult) []row {
	steady := func(r *runResult) phase { return r.Load.phase("steady") }
	warm := func(r *runResult) phase { return r.Load.phase("warmup") }
	out := []row{
		{"ingest, steady: samples/s (wall)", false, true, func(r *runResult) (cell, bool) {
			return num(steady(r).SamplesPerSec, "%.0f"), true
		}},
		{"  receivers' CPU s (all processes)", false, true, func(r *runResult) (cell, bool) {
			return num(r.Steady.Receivers, "%.2f"), true
		}},
		{"  samples per CPU-second", false, true, func(r *runResult) (cell, bool) {
			return num(r.steadyPerCPU(), "%.0f"), r.steadyPerCPU() > 0
		}},
		{"  (lowest - highest over runs)", false, false, func(r *runResult) (cell, bool) {
			lo, hi := spanPerCPU(results, r.Setup.Key)
			return text(fmt.Sprintf("%.0f - %.0f", lo, hi)), hi > 0
		}},
		{"  CPU µs per sample", false, true, func(r *runResult) (cell, bool) {
			n := float64(steady(r).SamplesAccepted)
			return num(1e6*r.Steady.Receivers/n, "%.2f"), n > 0
		}},
		{"  last replica stored after last answer, s", false, false, func(r *runResult) (cell, bool) {
			return num(r.TailSeconds, "%.2f"), true
		}},
		{"  loadgen + spreader CPU s", false, false, func(r *runResult) (cell, bool) {
			return num(r.Steady.Loadgen+r.Steady.Spreader, "%.2f"), true
		}},
		{"  others' CPU s (outside work)", false, false, func(r *runResult) (cell, bool) {
			return num(r.Steady.Others, "%.2f"), true
		}},
		{"ingest, warm-up: new series/s (wall)", false, true, func(r *runResult) (cell, bool) {
			return num(warm(r).SamplesPerSec, "%.0f"), true
		}},
		{"  receivers' CPU s (incl. 3s linger)", false, true, func(r *runResult) (cell, bool) {
			return num(r.Warmup.Receivers, "%.2f"), true
		}},
		{"  new series per CPU-second", false, true, func(r *runResult) (cell, bool) {
			if r.Warmup.Receivers <= 0 {
				return cell{}, false
			}
			return num(float64(warm(r).SamplesAccepted)/r.Warmup.Receivers, "%.0f"), true
		}},
		// Failures count over every run, not only the median one: a
		// replica lost once is worth seeing.
		{"non-2xx answers to loadgen, all runs", false, false, func(r *runResult) (cell, bool) {
			n := sumRuns(results, r.Setup.Key, func(r *runResult) float64 { return float64(steady(r).errors() + warm(r).errors()) })
			return num(n, "%.0f"), true
		}},
		{"writes forwarded to peers: failed / all, all runs", false, false, func(r *runResult) (cell, bool) {
			failed := sumRuns(results, r.Setup.Key, func(r *runResult) float64 { return r.ForwardFailed })
			all := sumRuns(results, r.Setup.Key, func(r *runResult) float64 { return r.Forwarded })
			return text(fmt.Sprintf("%.0f / %.0f", failed, all)), !r.Setup.single()
		}},
		{"samples a replica refused out of order, all runs", false, false, func(r *runResult) (cell, bool) {
			return num(sumRuns(results, r.Setup.Key, func(r *runResult) float64 { return r.OutOfOrder }), "%.0f"), true
		}},
		{"replica samples missing, all runs", false, false, func(r *runResult) (cell, bool) {
			return num(sumRuns(results, r.Setup.Key, missingReplicas), "%.0f"), true
		}},
		{"series held per receiver", false, false, func(r *runResult) (cell, bool) {
			parts := make([]string, len(r.SeriesPerReceiver))
			for i, v := range r.SeriesPerReceiver {
				parts[i] = short(v)
			}
			return text(strings.Join(parts, " ")), len(parts) > 0
		}},
		{"RSS of receivers after load, MiB", false, true, func(r *runResult) (cell, bool) {
			return num(float64(r.RSSBytes)/(1<<20), "%.0f"), r.RSSBytes > 0
		}},
	}
	single := queried(results, "single")
	for i, spec := range querySpecs(c.selector, c.rateMetric) {
		q := func(r *runResult) (queryResult, bool) {
			if i >= len(r.Queries) {
				return queryResult{}, false
			}
			return r.Queries[i], true
		}
		out = append(out,
			row{fmt.Sprintf("query %d: %s", i+1, spec.Expr), true, false, func(r *runResult) (cell, bool) {
				qr, ok := q(r)
				if !ok || qr.Series < 0 {
					return cell{}, false
				}
				return text(fmt.Sprintf("%s series", short(float64(qr.Series)))), true
			}},
			row{fmt.Sprintf("  median s of %d", c.queryRuns), true, true, func(r *runResult) (cell, bool) {
				qr, ok := q(r)
				return num(qr.Median, "%.3f"), ok && len(qr.Runs) > 0
			}},
			row{"  p90 s", true, true, func(r *runResult) (cell, bool) {
				qr, ok := q(r)
				return num(qr.P90, "%.3f"), ok && len(qr.Runs) > 0
			}},
			row{"  first (cold) run s", true, true, func(r *runResult) (cell, bool) {
				qr, ok := q(r)
				return num(qr.Cold, "%.3f"), ok
			}},
			row{"  CPU s per query (querier + stores)", true, true, func(r *runResult) (cell, bool) {
				qr, ok := q(r)
				return num(qr.CPU, "%.2f"), ok && qr.CPU > 0
			}},
			row{"  Store API Series call, mean ms", true, false, func(r *runResult) (cell, bool) {
				qr, ok := q(r)
				return num(qr.StoreMS, "%.0f"), ok && qr.StoreMS > 0
			}},
			row{"  errors", true, false, func(r *runResult) (cell, bool) {
				qr, ok := q(r)
				return num(float64(qr.Errors), "%.0f"), ok
			}},
			row{"  same answer as atoll all", true, false, func(r *runResult) (cell, bool) {
				qr, ok := q(r)
				sq, sok := queryResult{}, false
				if single != nil {
					sq, sok = q(single)
				}
				if !ok || !sok || r.Setup.single() {
					return cell{}, false
				}
				if sameAnswer(qr.Answer, sq.Answer) {
					return text("yes"), true
				}
				return text("NO"), true
			}},
		)
	}
	return out
}

func printReport(w io.Writer, c config, ss []setup, results []*runResult) {
	var lb float64
	var metrics int
	for _, r := range results {
		if r.Load.Series > 0 {
			lb, metrics = r.Load.AvgLabelBytes, r.Load.Metrics
			break
		}
	}
	fmt.Fprintf(w, "\nAtoll cluster cost on this machine: %d receivers in one ring (RF as the column says) vs one `atoll all`.\n", c.receivers)
	fmt.Fprintf(w, "Load: %d series (%d metric names, %.0f label bytes per series), 1 sample per series per round, %d warm-up + %d steady rounds 15s apart, %d samples per request, %d in flight.\n",
		c.series, metrics, lb, c.warmupRounds, c.rounds, c.batch, c.concurrency)
	fmt.Fprintf(w, "\"one URL\": every request to receiver 1, as one Prometheus would send; \"spread\": requests round-robin over the receivers. Ingest figures are the median of %d run(s); queries instant, at the last round, through `atoll query` for the clusters.\n\n", c.repeat)

	cols := columns(ss)
	value := func(rw row, key string) (cell, bool) {
		r := median(results, key)
		if rw.query {
			r = queried(results, key)
		}
		if r == nil {
			return cell{}, false
		}
		return rw.value(r)
	}
	rs := rows(c, results)
	// Numbers align right; labels, padded to one width here, read left.
	width := 0
	for _, rw := range rs {
		width = max(width, utf8.RuneCountInString(rw.label))
	}
	pad := func(s string) string { return s + strings.Repeat(" ", width-utf8.RuneCountInString(s)) }
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\t", pad(""))
	for _, col := range cols {
		fmt.Fprintf(tw, "%s\t", col.title)
	}
	fmt.Fprintln(tw)
	for _, rw := range rs {
		fmt.Fprintf(tw, "%s\t", pad(rw.label))
		for _, col := range cols {
			if col.key != "" {
				if v, ok := value(rw, col.key); ok {
					fmt.Fprintf(tw, "%s\t", v.text)
				} else {
					fmt.Fprint(tw, "-\t")
				}
				continue
			}
			a, aok := value(rw, col.num)
			b, bok := value(rw, col.den)
			if rw.ratio && aok && bok && a.text != "" && b.v > 0 && a.v > 0 {
				fmt.Fprintf(tw, "%.2fx\t", a.v/b.v)
			} else {
				fmt.Fprint(tw, "\t")
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w)

	for _, r := range results {
		name := fmt.Sprintf("%s (run %d)", r.Setup.Title, r.Rep+1)
		if r.Failure != "" {
			fmt.Fprintf(w, "%s FAILED: %s\n", name, r.Failure)
		}
		for _, p := range r.Load.Phases {
			if p.errors() > 0 {
				fmt.Fprintf(w, "%s %s: status %v, first error: %s\n", name, p.Name, p.Status, p.FirstError)
			}
		}
		if r.Spread != nil {
			fmt.Fprintf(w, "%s: spreader sent %v requests to the receivers, answers %v%s\n", name, r.Spread.Requests, r.Spread.Status, prefixed(", first failure: ", r.Spread.FirstError))
		}
		if n := missingReplicas(r); n > 0 {
			fmt.Fprintf(w, "%s: receivers appended %.0f samples, %.0f fewer than RF x accepted; %.0f refused out of order, %.0f forwarded writes failed\n",
				name, r.Appended, n, r.OutOfOrder, r.ForwardFailed)
		}
		for _, q := range r.Queries {
			if q.Errors > 0 {
				fmt.Fprintf(w, "%s: %q: %d errors, first: %s\n", name, q.Spec.Expr, q.Errors, q.FirstError)
			}
			if q.Series >= 0 && q.Series < r.Load.Series && strings.Contains(q.Spec.Expr, c.selector) {
				fmt.Fprintf(w, "%s: only %d of %d series answered %q\n", name, q.Series, r.Load.Series, q.Spec.Count)
			}
		}
	}
	printLogs(w, results)
}

// printLogs lists the warnings and errors the processes logged, alike
// messages (differing only in addresses) once, with where they came from.
func printLogs(w io.Writer, results []*runResult) {
	type group struct {
		level, msg, first string
		count             int
		where             []string
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, r := range results {
		for _, l := range r.Logs {
			msg := addrRE.ReplaceAllString(l.Msg, "<addr>")
			g := byKey[l.Level+msg]
			if g == nil {
				g = &group{level: l.Level, msg: msg, first: l.First}
				byKey[l.Level+msg] = g
				groups = append(groups, g)
			}
			g.count += l.Count
			where := r.Setup.Title + "/" + l.Process
			if !slices.Contains(g.where, where) {
				g.where = append(g.where, where)
			}
		}
	}
	if len(groups) == 0 {
		return
	}
	fmt.Fprintln(w, "\nWarnings and errors the processes logged (start-up and shutdown included):")
	for _, g := range groups {
		fmt.Fprintf(w, "  %s %q x%d in %s\n    first: %s\n", g.level, g.msg, g.count, strings.Join(g.where, ", "), truncate(g.first, 300))
	}
}

var addrRE = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+(:\d+)?`)

// missingReplicas is how many copies of accepted samples the receivers
// did not append.
func missingReplicas(r *runResult) float64 {
	if r.Failure != "" {
		return 0
	}
	want := float64(r.Load.phase("warmup").SamplesAccepted+r.Load.phase("steady").SamplesAccepted) * float64(max(r.Setup.RF, 1))
	return max(0, want-r.Appended)
}

func sumRuns(results []*runResult, key string, f func(*runResult) float64) float64 {
	total := 0.0
	for _, r := range results {
		if r.Setup.Key == key && r.Failure == "" {
			total += f(r)
		}
	}
	return total
}

// spanPerCPU is the lowest and highest steady samples per CPU-second over
// a setup's successful runs.
func spanPerCPU(results []*runResult, key string) (lo, hi float64) {
	for _, r := range results {
		if r.Setup.Key != key || r.Failure != "" {
			continue
		}
		v := r.steadyPerCPU()
		if lo == 0 || v < lo {
			lo = v
		}
		hi = max(hi, v)
	}
	return lo, hi
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// short writes a count the short way: 100k, 33.4k.
func short(v float64) string {
	switch {
	case v >= 1e6:
		return strings.TrimSuffix(fmt.Sprintf("%.2f", v/1e6), ".00") + "M"
	case v >= 1e4:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", v/1e3), ".0") + "k"
	}
	return fmt.Sprintf("%.0f", v)
}
