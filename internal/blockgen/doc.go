// Package blockgen fills a bucket with synthetic blocks as Atoll receivers
// ship them: 2h blocks per replica, the same samples under each replica's
// label with short gaps where a replica missed scrapes. Tests and the
// compaction benchmark use it to get weeks of data in seconds, and to know
// exactly which samples the bucket must hold after compaction (the truth:
// every scrape at least one replica has).
//
// Values are functions of the series and the timestamp, so the truth needs
// no storage: counters grow non-linearly and reset every few days, gauges
// swing, and histogram series are counters of native histograms with resets
// of their own.
//
// WriteBlock is the one writer of test blocks: tests and benchmarks that
// need a block of given series write it with WriteBlock and upload it with
// block.Upload, rather than with a writer of their own.
//
// It imports block and bucket; only tests and benchmark drivers import it.
package blockgen
