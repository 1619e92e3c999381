package blockset

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/ship"
)

// Names of the marker objects kept beside a block's files. They match the
// ones Thanos writes, so Thanos tools and Atoll read each other's marks.
const (
	DeletionMarkFilename  = ship.DeletionMarkFilename
	NoCompactMarkFilename = "no-compact-mark.json"
)

// markVersion is the version of the no-compact mark format.
const markVersion = 1

// DeletionMark is the bucket's deletion mark; every reader of the bucket
// shares the one format in ship.
type DeletionMark = ship.DeletionMark

// Reasons for a no-compact mark.
const (
	// NoCompactReasonManual is an operator's decision.
	NoCompactReasonManual = "manual"
	// NoCompactReasonUnreadable is a block whose files the compactor could
	// not read (missing or truncated index or chunks).
	NoCompactReasonUnreadable = "unreadable-block"
	// NoCompactReasonCorrupt is a block whose index breaks the format's
	// rules (unsorted series, chunks outside the block, overlapping chunks).
	NoCompactReasonCorrupt = "corrupt-block"
)

// NoCompactMark excludes a block from compaction and downsampling. The block
// stays readable and is still subject to retention.
type NoCompactMark struct {
	ID      ulid.ULID `json:"id"`
	Version int       `json:"version"`
	// Reason is one of the NoCompactReason constants.
	Reason string `json:"reason"`
	// Details is free text for the operator, such as the error seen.
	Details string `json:"details,omitempty"`
	// NoCompactTime is when the mark was written, in Unix seconds.
	NoCompactTime int64 `json:"no_compact_time"`
}

// WriteDeletionMark marks block id for deletion (ship.WriteDeletionMark).
func WriteDeletionMark(ctx context.Context, bkt bucket.Bucket, id ulid.ULID, details string, now time.Time) error {
	return ship.WriteDeletionMark(ctx, bkt, id, details, now)
}

// WriteNoCompactMark excludes block id from compaction.
func WriteNoCompactMark(ctx context.Context, bkt bucket.Bucket, id ulid.ULID, reason, details string, now time.Time) error {
	return writeJSON(ctx, bkt, path.Join(id.String(), NoCompactMarkFilename), &NoCompactMark{
		ID: id, Version: markVersion, Reason: reason, Details: details, NoCompactTime: now.Unix(),
	})
}

func writeJSON(ctx context.Context, bkt bucket.Bucket, name string, v any) error {
	data, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	if err := bkt.Upload(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// readJSON decodes object name into v. A missing object yields an error for
// which bucket.IsNotFound reports true.
func readJSON(ctx context.Context, bkt bucket.Bucket, name string, v any) error {
	rc, err := bkt.Get(ctx, name)
	if err != nil {
		return err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", name, err)
	}
	return nil
}
