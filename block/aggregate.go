package block

// Downsampled blocks hold, for every raw series, one series per aggregate:
// the raw labels plus AggregateLabel naming the aggregate, with one sample
// per resolution window, stamped with the time of the window's last raw
// sample. They stay ordinary Prometheus blocks, readable by any TSDB tool;
// only meta.json's downsample resolution tells them apart.
const AggregateLabel = "__aggr__"

// The aggregates of a downsampled series.
const (
	// AggrCount is the number of raw samples in the window.
	AggrCount = "count"
	// AggrSum is the sum of the raw values in the window.
	AggrSum = "sum"
	// AggrMin and AggrMax are the smallest and largest raw value.
	AggrMin = "min"
	AggrMax = "max"
	// AggrCounter is the counter value at the window's last sample with
	// every reset up to it folded in, so rate() over it is rate() over the
	// raw counter.
	AggrCounter = "counter"
	// AggrAvg is not stored: a store derives it as sum/count when a query
	// needs a plain value of a downsampled series.
	AggrAvg = "avg"
)

// Native histogram series downsample to: count, a float series counting
// every sample; sum, a float-histogram series (gauge hint) adding up the
// window's histograms; counter, a float-histogram series written only for
// counter histograms, with resets folded in as for floats. min and max are
// written for float series only.

// Aggregates returns the stored aggregates.
func Aggregates() []string {
	return []string{AggrCount, AggrSum, AggrMin, AggrMax, AggrCounter}
}
