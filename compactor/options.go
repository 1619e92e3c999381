package compactor

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// Options configures a Compactor. Start from DefaultOptions.
type Options struct {
	// DataDir is scratch space for blocks being compacted or downsampled.
	// It is emptied at start and after each job.
	DataDir string

	// ReplicaLabels are the external labels that tell replicas of the same
	// data apart. Blocks whose external labels differ only in these are one
	// group, deduplicated when they overlap; the labels are removed from
	// the blocks the compactor writes. Default receive_replica.
	ReplicaLabels []string

	// Ranges are the spans of the compaction levels, smallest first; the
	// first is the span blocks arrive with. Each must be a multiple of the
	// one before. Default 2h, 8h, 2d, 14d.
	Ranges []time.Duration

	// Concurrency is how many groups are compacted at once. Default 1.
	Concurrency int

	// DeleteDelay is how long a block marked for deletion stays in the
	// bucket, so readers that loaded it finish their queries and see its
	// replacement first. Also the age after which a partial block (no
	// meta.json, nothing written to it for that long) is deleted. Default
	// 48h.
	DeleteDelay time.Duration

	// Retention per resolution: blocks whose data is all older than this
	// are deleted. 0 keeps them forever (the default).
	RetentionRaw time.Duration
	Retention5m  time.Duration
	Retention1h  time.Duration

	// DisableDownsampling turns off downsampling.
	DisableDownsampling bool
	// DownsampleRawMinSpan is the shortest raw block downsampled to 5m.
	// Default 40h.
	DownsampleRawMinSpan time.Duration
	// Downsample5mMinSpan is the shortest 5m block downsampled to 1h.
	// Default 10 days.
	Downsample5mMinSpan time.Duration

	// Interval between passes for Run; 0 makes Run do one pass and return.
	Interval time.Duration

	// LeaseHolder identifies this compactor in the bucket's lease. A
	// compactor finding a live lease with its own holder id whose renewals
	// stopped takes it over without waiting for it to expire (it is the
	// same compactor, restarted); one still renewed is refused like any
	// other. It should be stable across restarts and unique among
	// compactors: the host name by default.
	LeaseHolder string
	// LeaseDuration is how long the lease lasts unrenewed: how long a
	// crashed compactor blocks another one. It is renewed every quarter of
	// it. Default 5m.
	LeaseDuration time.Duration

	// Now is the clock; default time.Now.
	Now func() time.Time
}

// DefaultOptions returns the defaults; DataDir must still be set.
func DefaultOptions() Options {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "atoll-compactor"
	}
	return Options{
		ReplicaLabels:        []string{"receive_replica"},
		Ranges:               []time.Duration{2 * time.Hour, 8 * time.Hour, 48 * time.Hour, 14 * 24 * time.Hour},
		Concurrency:          1,
		DeleteDelay:          48 * time.Hour,
		DownsampleRawMinSpan: 40 * time.Hour,
		Downsample5mMinSpan:  10 * 24 * time.Hour,
		LeaseHolder:          host,
		LeaseDuration:        5 * time.Minute,
		Now:                  time.Now,
	}
}

func (o *Options) validate() error {
	if o.DataDir == "" {
		return errors.New("compactor: DataDir is required")
	}
	if len(o.Ranges) == 0 {
		return errors.New("compactor: at least one range is required")
	}
	if !slices.IsSorted(o.Ranges) {
		return fmt.Errorf("compactor: ranges %v are not in increasing order", o.Ranges)
	}
	for i, r := range o.Ranges {
		if r <= 0 || r%time.Millisecond != 0 {
			return fmt.Errorf("compactor: range %v must be a positive number of milliseconds", r)
		}
		if i > 0 && r%o.Ranges[i-1] != 0 {
			return fmt.Errorf("compactor: range %v is not a multiple of %v", r, o.Ranges[i-1])
		}
	}
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	if o.DeleteDelay < 0 || o.RetentionRaw < 0 || o.Retention5m < 0 || o.Retention1h < 0 {
		return errors.New("compactor: delays and retentions must not be negative")
	}
	if o.LeaseHolder == "" {
		return errors.New("compactor: LeaseHolder is required")
	}
	if o.LeaseDuration < time.Second {
		return fmt.Errorf("compactor: lease duration %v is shorter than a second", o.LeaseDuration)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

func (o *Options) rangesMillis() []int64 {
	out := make([]int64, len(o.Ranges))
	for i, r := range o.Ranges {
		out[i] = r.Milliseconds()
	}
	return out
}
