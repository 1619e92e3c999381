package compactor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/atoll-metrics/atoll/bucket"
)

// LeaseObject is the bucket object that names the compactor allowed to
// write to the bucket.
const LeaseObject = "atoll-compactor-lease.json"

// ErrLeaseHeld is returned, wrapped in a *LeaseHeldError, when another
// compactor holds the bucket's lease.
var ErrLeaseHeld = errors.New("bucket is leased to another compactor")

// ErrLeaseLost is returned when the compactor could not renew its lease in
// time or found another compactor's lease in its place; it stops writing.
var ErrLeaseLost = errors.New("compactor lost the bucket lease")

// LeaseHeldError says which compactor holds the lease and until when.
type LeaseHeldError struct {
	Holder  string
	Expires time.Time
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("%v: holder %q, expires %s (exactly one compactor may write to a bucket; "+
		"this one may take over once the lease expires)", ErrLeaseHeld, e.Holder, e.Expires.UTC().Format(time.RFC3339))
}

func (e *LeaseHeldError) Is(target error) bool { return target == ErrLeaseHeld }

// leaseRecord is the content of LeaseObject.
type leaseRecord struct {
	Version int    `json:"version"`
	Holder  string `json:"holder"`
	// Session is unique to one run of one compactor process.
	Session  string    `json:"session"`
	Acquired time.Time `json:"acquired"`
	Renewed  time.Time `json:"renewed"`
	Expires  time.Time `json:"expires"`
}

// lease is this process's hold on the bucket. Object storage offers no
// compare-and-swap, so holding is established by writing the record, waiting
// a settle delay and reading it back: of two compactors that both found the
// lease free, the later write wins and the earlier writer reads the other's
// record and gives up. The window left open is a competitor stalled for
// longer than the settle delay between reading the free lease and writing its
// record; both would then believe they hold it until the next renewal, when
// the overwritten one finds the other's session and stops (ErrLeaseLost).
//
// A holder acts only while its local deadline (last successful renewal plus
// three quarters of the duration) has not passed, so a compactor cut off from
// the bucket stops writing before others may take over; clocks of the
// machines must agree to well within a quarter of the duration.
type lease struct {
	bkt      bucket.Bucket
	holder   string
	session  string
	duration time.Duration
	settle   time.Duration
	now      func() time.Time
	logger   *slog.Logger

	mu       sync.Mutex
	acquired time.Time
	deadline time.Time
	lost     error
}

func newLease(bkt bucket.Bucket, holder string, duration time.Duration, now func() time.Time, logger *slog.Logger) *lease {
	return &lease{
		bkt:      bkt,
		holder:   holder,
		session:  ulid.MustNew(ulid.Now(), rand.Reader).String(),
		duration: duration,
		settle:   min(2*time.Second, duration/10),
		now:      now,
		logger:   logger,
	}
}

func (l *lease) read(ctx context.Context) (*leaseRecord, error) {
	rc, err := l.bkt.Get(ctx, LeaseObject)
	if bucket.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	var rec leaseRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		l.logger.Warn("ignoring undecodable lease object", "object", LeaseObject, "err", err)
		return nil, nil
	}
	return &rec, nil
}

func (l *lease) write(ctx context.Context, rec *leaseRecord) error {
	data, err := json.MarshalIndent(rec, "", "\t")
	if err != nil {
		return err
	}
	return l.bkt.Upload(ctx, LeaseObject, bytes.NewReader(data), int64(len(data)))
}

// acquire takes the lease or returns a *LeaseHeldError. A record left by a
// previous run with the same holder id is taken over at once: that is the
// same compactor restarted.
func (l *lease) acquire(ctx context.Context) error {
	rec, err := l.read(ctx)
	if err != nil {
		return fmt.Errorf("read lease: %w", err)
	}
	now := l.now()
	if rec != nil && now.Before(rec.Expires) {
		if rec.Holder != l.holder {
			return &LeaseHeldError{Holder: rec.Holder, Expires: rec.Expires}
		}
		l.logger.Warn("taking over the lease of an earlier run of this compactor", "holder", rec.Holder, "session", rec.Session)
	}
	start := l.now()
	mine := &leaseRecord{Version: 1, Holder: l.holder, Session: l.session, Acquired: start, Renewed: start, Expires: start.Add(l.duration)}
	if err := l.write(ctx, mine); err != nil {
		return fmt.Errorf("write lease: %w", err)
	}
	select {
	case <-time.After(l.settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	back, err := l.read(ctx)
	if err != nil {
		return fmt.Errorf("read lease back: %w", err)
	}
	if back == nil || back.Session != l.session {
		if back == nil {
			return &LeaseHeldError{Holder: "(released while acquiring)", Expires: start}
		}
		return &LeaseHeldError{Holder: back.Holder, Expires: back.Expires}
	}
	l.mu.Lock()
	l.acquired = start
	l.deadline = start.Add(l.duration - l.duration/4)
	l.mu.Unlock()
	return nil
}

// renew extends the lease, or reports it lost.
func (l *lease) renew(ctx context.Context) error {
	rec, err := l.read(ctx)
	if err != nil {
		return err
	}
	if rec == nil || rec.Session != l.session {
		holder := "(nobody)"
		if rec != nil {
			holder = rec.Holder + " session " + rec.Session
		}
		l.setLost(fmt.Errorf("%w: lease now held by %s", ErrLeaseLost, holder))
		return l.check()
	}
	start := l.now()
	rec.Renewed, rec.Expires = start, start.Add(l.duration)
	if err := l.write(ctx, rec); err != nil {
		return err
	}
	l.mu.Lock()
	l.deadline = start.Add(l.duration - l.duration/4)
	l.mu.Unlock()
	return nil
}

func (l *lease) setLost(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil {
		l.lost = err
	}
}

// check returns nil while this process may write to the bucket.
func (l *lease) check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	if l.now().After(l.deadline) {
		return fmt.Errorf("%w: not renewed since %s", ErrLeaseLost, l.deadline.Add(-(l.duration - l.duration/4)).UTC().Format(time.RFC3339))
	}
	return nil
}

// keep renews the lease every quarter of its duration until ctx ends
// (returning nil) or the lease is lost.
func (l *lease) keep(ctx context.Context) error {
	t := time.NewTicker(l.duration / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := l.renew(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if cerr := l.check(); cerr != nil {
				return cerr
			}
			l.logger.Warn("cannot renew the bucket lease; retrying", "err", err)
		}
	}
}

// release gives the lease up if this process still holds it.
func (l *lease) release(ctx context.Context) error {
	rec, err := l.read(ctx)
	if err != nil {
		return err
	}
	if rec == nil || rec.Session != l.session {
		return nil
	}
	return l.bkt.Delete(ctx, LeaseObject)
}
