// Package apicompare compares answers of the Prometheus HTTP API as tests
// of the query path need: the same series, the same points and the same
// warnings and infos, with float values allowed to differ by rounding.
//
// Rounding differences are real even between two answers of Prometheus
// itself: the engine sums (sum, avg, ...) the series of a step in the
// order storage returns them, which depends on the blocks the query's
// whole range touches, so a piece of a range query, or a shard of an
// aggregation, may differ from the whole in the last bits.
package apicompare

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
)

// Tolerance is the relative difference allowed between two values.
const Tolerance = 1e-12

// Same reports how got differs from want, or nil. Lists whose order the
// API leaves open (results of instant queries, series lists) are compared
// as sets; warnings and infos too.
func Same(got, want []byte) error {
	var g, w any
	dg := json.NewDecoder(bytes.NewReader(got))
	dg.UseNumber()
	dw := json.NewDecoder(bytes.NewReader(want))
	dw.UseNumber()
	if err := dg.Decode(&g); err != nil {
		return fmt.Errorf("got no JSON: %w", err)
	}
	if err := dw.Decode(&w); err != nil {
		return fmt.Errorf("want no JSON: %w", err)
	}
	return same("", normalize(g), normalize(w))
}

// normalize sorts lists whose order carries no meaning.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
		for _, k := range []string{"result", "warnings", "infos"} {
			if list, ok := x[k].([]any); ok {
				sortByJSON(list)
			}
		}
		if data, ok := x["data"].([]any); ok {
			sortByJSON(data)
		}
		return x
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	}
	return v
}

func sortByJSON(list []any) {
	keys := make([]string, len(list))
	for i, e := range list {
		// Order by labels (or the value itself): values may differ by
		// rounding and must not change the order.
		if m, ok := e.(map[string]any); ok {
			if metric, ok := m["metric"]; ok {
				e = metric
			}
		}
		b, _ := json.Marshal(e)
		keys[i] = string(b)
	}
	idx := make([]int, len(list))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return keys[idx[a]] < keys[idx[b]] })
	sorted := make([]any, len(list))
	for i, j := range idx {
		sorted[i] = list[j]
	}
	copy(list, sorted)
}

func same(path string, g, w any) error {
	switch wv := w.(type) {
	case map[string]any:
		gv, ok := g.(map[string]any)
		if !ok || len(gv) != len(wv) {
			return fmt.Errorf("%s: got %s, want %s", path, short(g), short(w))
		}
		for _, k := range slices.Sorted(maps.Keys(wv)) {
			if err := same(path+"."+k, gv[k], wv[k]); err != nil {
				return err
			}
		}
		return nil
	case []any:
		gv, ok := g.([]any)
		if !ok || len(gv) != len(wv) {
			return fmt.Errorf("%s: got %s, want %s", path, short(g), short(w))
		}
		for i := range wv {
			if err := same(fmt.Sprintf("%s[%d]", path, i), gv[i], wv[i]); err != nil {
				return err
			}
		}
		return nil
	case string:
		gv, ok := g.(string)
		if !ok {
			return fmt.Errorf("%s: got %s, want %q", path, short(g), wv)
		}
		if gv == wv || closeFloats(gv, wv) {
			return nil
		}
		return fmt.Errorf("%s: got %q, want %q", path, gv, wv)
	}
	if fmt.Sprint(g) != fmt.Sprint(w) {
		return fmt.Errorf("%s: got %s, want %s", path, short(g), short(w))
	}
	return nil
}

func closeFloats(a, b string) bool {
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	if err1 != nil || err2 != nil || math.IsNaN(x) || math.IsNaN(y) {
		return false
	}
	return math.Abs(x-y) <= Tolerance*math.Max(math.Abs(x), math.Abs(y))
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
