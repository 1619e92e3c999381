package block

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/atoll-metrics/atoll/bucket"
)

// Names of the marker objects the compactor keeps beside a block's files.
// They match the ones Thanos writes, so Thanos tools and Atoll read each
// other's marks.
const (
	DeletionMarkFilename  = "deletion-mark.json"
	noCompactMarkFilename = "no-compact-mark.json"
)

// markVersion is the version of both mark formats.
const markVersion = 1

// errMalformedMark is returned, wrapped, for a mark object that does not
// decode.
var errMalformedMark = errors.New("malformed block mark")

// DeletionMark says a block is going away: the compactor deletes it once
// its delete delay has passed since DeletionTime, and readers stop reading
// it some time before that.
type DeletionMark struct {
	ID      ulid.ULID `json:"id"`
	Version int       `json:"version"`
	// Details says why, e.g. "superseded by <ulid>" or "retention".
	Details string `json:"details,omitempty"`
	// DeletionTime is when the mark was written, in Unix seconds.
	DeletionTime int64 `json:"deletion_time"`
}

// Time returns DeletionTime as a time.
func (m *DeletionMark) Time() time.Time { return time.Unix(m.DeletionTime, 0) }

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

// readDeletionMark reads block id's deletion mark. A block without one
// yields an error for which bucket.IsNotFound holds; a mark that does not
// decode yields one matching errMalformedMark.
func readDeletionMark(ctx context.Context, bkt bucket.Bucket, id ulid.ULID) (*DeletionMark, error) {
	var m DeletionMark
	if err := readMark(ctx, bkt, id, DeletionMarkFilename, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// readNoCompactMark reads block id's no-compact mark, with the errors of
// readDeletionMark.
func readNoCompactMark(ctx context.Context, bkt bucket.Bucket, id ulid.ULID) (*NoCompactMark, error) {
	var m NoCompactMark
	if err := readMark(ctx, bkt, id, noCompactMarkFilename, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// WriteDeletionMark marks block id for deletion and returns the mark.
// Marking a marked block again replaces the mark, which is harmless: the
// older time is lost, so the block lives a little longer.
func WriteDeletionMark(ctx context.Context, bkt bucket.Bucket, id ulid.ULID, details string, now time.Time) (*DeletionMark, error) {
	m := &DeletionMark{ID: id, Version: markVersion, Details: details, DeletionTime: now.Unix()}
	return m, writeMark(ctx, bkt, id, DeletionMarkFilename, m)
}

// WriteNoCompactMark excludes block id from compaction and returns the mark.
func WriteNoCompactMark(ctx context.Context, bkt bucket.Bucket, id ulid.ULID, reason, details string, now time.Time) (*NoCompactMark, error) {
	m := &NoCompactMark{ID: id, Version: markVersion, Reason: reason, Details: details, NoCompactTime: now.Unix()}
	return m, writeMark(ctx, bkt, id, noCompactMarkFilename, m)
}

func writeMark(ctx context.Context, bkt bucket.Bucket, id ulid.ULID, file string, v any) error {
	data, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	name := path.Join(id.String(), file)
	if err := bkt.Upload(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func readMark(ctx context.Context, bkt bucket.Bucket, id ulid.ULID, file string, v any) error {
	name := path.Join(id.String(), file)
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
		return fmt.Errorf("%w: %s: %w", errMalformedMark, name, err)
	}
	return nil
}
