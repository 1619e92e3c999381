// Package compactor keeps a bucket small and fast: it merges blocks into
// longer ones, removes replica duplicates, downsamples to 5m and 1h
// resolutions and applies retention. Exactly one compactor writes to a bucket.
package compactor
