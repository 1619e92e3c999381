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
	// Renewed is the holder's last renewal; a holder that renews is
	// running.
	Renewed time.Time
	// SameHolder says the holder id is this compactor's own: another
	// process runs with the same --lease.holder (two compactors on one
	// host both default to the host name).
	SameHolder bool
}

func (e *LeaseHeldError) Error() string {
	msg := fmt.Sprintf("%v: holder %q, last renewed %s, expires %s (exactly one compactor may write to a bucket",
		ErrLeaseHeld, e.Holder, e.Renewed.UTC().Format(time.RFC3339), e.Expires.UTC().Format(time.RFC3339))
	if e.SameHolder {
		return msg + "; another running compactor uses this compactor's holder id and keeps renewing the lease: stop it, or give each compactor its own id)"
	}
	return msg + "; this one may take over once the lease expires)"
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

// acquire takes the lease or returns a *LeaseHeldError. A lease that is
// being renewed is never taken, whoever asks. A live lease with this
// compactor's own holder id whose renewals have stopped is taken over at
// once, without waiting for it to expire: that is this compactor, restarted
// after a crash.
func (l *lease) acquire(ctx context.Context) error {
	rec, err := l.read(ctx)
	if err != nil {
		return fmt.Errorf("read lease: %w", err)
	}
	if rec != nil && l.now().Before(rec.Expires) {
		if rec.Holder != l.holder {
			return &LeaseHeldError{Holder: rec.Holder, Expires: rec.Expires, Renewed: rec.Renewed}
		}
		if err := l.waitRenewalsStopped(ctx, rec); err != nil {
			return err
		}
		l.logger.Warn("taking over the lease of an earlier run of this compactor; its renewals stopped", "holder", rec.Holder, "session", rec.Session,
			"last_renewed", rec.Renewed.UTC().Format(time.RFC3339))
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
			return &LeaseHeldError{Holder: "(released while acquiring)", Expires: start, Renewed: start}
		}
		return &LeaseHeldError{Holder: back.Holder, Expires: back.Expires, Renewed: back.Renewed, SameHolder: back.Holder == l.holder}
	}
	l.mu.Lock()
	l.acquired = start
	l.deadline = start.Add(l.duration - l.duration/4)
	l.mu.Unlock()
	return nil
}

// waitRenewalsStopped returns nil once the live lease rec, held under this
// compactor's own holder id, is known not to be renewed any more, and a
// *LeaseHeldError if it is. Its holder renews every quarter of its duration
// (Expires-Renewed); a record not renewed for two of those intervals
// belongs to a process that stopped. A younger record is read again once
// that much time has passed since its renewal.
func (l *lease) waitRenewalsStopped(ctx context.Context, rec *leaseRecord) error {
	interval := rec.Expires.Sub(rec.Renewed) / 4
	if interval <= 0 || interval > l.duration {
		interval = l.duration / 4
	}
	staleAfter := 2 * interval
	for {
		wait := rec.Renewed.Add(staleAfter).Sub(l.now())
		if wait <= 0 {
			return nil
		}
		l.logger.Info("the lease carries this compactor's holder id; waiting to see whether it is still renewed",
			"holder", rec.Holder, "session", rec.Session, "wait", wait.Round(time.Millisecond))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		again, err := l.read(ctx)
		if err != nil {
			return fmt.Errorf("read lease: %w", err)
		}
		switch {
		case again == nil || !l.now().Before(again.Expires):
			return nil
		case again.Session != rec.Session || again.Renewed.After(rec.Renewed):
			return &LeaseHeldError{Holder: again.Holder, Expires: again.Expires, Renewed: again.Renewed, SameHolder: again.Holder == l.holder}
		}
		// Not renewed since; the loop ends once it is stale.
	}
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
