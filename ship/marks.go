package ship

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

// DeletionMarkFilename is the object the compactor puts beside a block it
// is about to delete, in the format Thanos writes, so Thanos tools and Atoll
// read each other's marks.
const DeletionMarkFilename = "deletion-mark.json"

// ErrMalformedMark is returned for a mark object that does not decode.
var ErrMalformedMark = errors.New("malformed block mark")

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

// ReadDeletionMark reads block id's deletion mark. A block without one
// yields an error for which IsNotFound holds; a mark that does not decode
// yields one matching ErrMalformedMark.
func ReadDeletionMark(ctx context.Context, bkt bucket.Bucket, id ulid.ULID) (*DeletionMark, error) {
	name := path.Join(id.String(), DeletionMarkFilename)
	rc, err := bkt.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	var m DeletionMark
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformedMark, name, err)
	}
	return &m, nil
}

// WriteDeletionMark marks block id for deletion. Marking a marked block
// again replaces the mark, which is harmless: the older time is lost, so the
// block lives a little longer.
func WriteDeletionMark(ctx context.Context, bkt bucket.Bucket, id ulid.ULID, details string, now time.Time) error {
	data, err := json.MarshalIndent(&DeletionMark{ID: id, Version: 1, Details: details, DeletionTime: now.Unix()}, "", "\t")
	if err != nil {
		return err
	}
	name := path.Join(id.String(), DeletionMarkFilename)
	if err := bkt.Upload(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
