package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// receiver is a remote-write endpoint that checks every series' samples
// arrive in timestamp order and fails every failEvery-th request.
type receiver struct {
	failEvery int64
	requests  atomic.Int64
	mu        sync.Mutex
	last      map[string]int64
	samples   int
	disorder  int
	tenants   map[string]int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := rc.requests.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.Header.Get("Content-Encoding") != "snappy" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "not remote write 1.0", http.StatusUnsupportedMediaType)
		return
	}
	if rc.failEvery > 0 && n%rc.failEvery == 0 {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(raw); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.tenants[r.Header.Get("X-Scope-OrgID")]++
	for _, ts := range wr.Timeseries {
		key := ""
		for _, l := range ts.Labels {
			key += l.Name + "\x00" + l.Value + "\x00"
		}
		for _, s := range ts.Samples {
			if prev, ok := rc.last[key]; ok && s.Timestamp <= prev {
				rc.disorder++
			}
			rc.last[key] = s.Timestamp
			rc.samples++
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func TestReplay(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failEvery int64
	}{
		{"all accepted", 0},
		{"some refused", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rc := &receiver{failEvery: tc.failEvery, last: map[string]int64{}, tenants: map[string]int{}}
			srv := httptest.NewServer(rc)
			defer srv.Close()

			const series, batch, nRounds = 3000, 250, 5
			ts := make([]int64, nRounds)
			for i := range ts {
				ts[i] = 1_700_000_000_000 + int64(i)*15_000
			}
			rounds, _ := EncodeRounds(NewCatalog(), sendOrder(series, 3), batch, ts, 0)
			s := NewSender(srv.URL, http.Header{"X-Scope-OrgID": {"team-a"}}, 4, 10*time.Second)
			s.MaxFailures = 0
			defer s.Close()
			res, err := s.Replay(ctx, "steady", rounds, os.Getpid(), 0)
			if err != nil {
				t.Fatal(err)
			}

			requests := series / batch * nRounds
			refused := 0
			if tc.failEvery > 0 {
				refused = requests / int(tc.failEvery)
			}
			if res.Requests != requests || res.SamplesSent != series*nRounds {
				t.Errorf("sent %d requests with %d samples, want %d with %d", res.Requests, res.SamplesSent, requests, series*nRounds)
			}
			if got := res.Status["204"]; got != requests-refused {
				t.Errorf("%d answered 204, want %d (status %v)", got, requests-refused, res.Status)
			}
			if got := res.Status["503"]; got != refused || res.Errors() != refused {
				t.Errorf("%d answered 503 and %d errors, want %d (status %v)", got, res.Errors(), refused, res.Status)
			}
			if refused > 0 && res.FirstError != "503: try later" {
				t.Errorf("first error %q", res.FirstError)
			}
			if res.SamplesAccepted != rc.samples || res.SamplesAccepted != (requests-refused)*batch {
				t.Errorf("reported %d samples accepted, receiver counted %d, want %d", res.SamplesAccepted, rc.samples, (requests-refused)*batch)
			}
			if rc.disorder != 0 {
				t.Errorf("%d samples arrived out of order", rc.disorder)
			}
			// With refusals, which batches are refused depends on the order
			// concurrent requests arrive in, so one batch can be refused in
			// every round: only the count of accepted samples is exact then.
			if (refused == 0 && len(rc.last) != series) || rc.tenants["team-a"] != requests-refused {
				t.Errorf("receiver saw %d series and tenants %v", len(rc.last), rc.tenants)
			}
			if res.Wall <= 0 || res.SamplesPerSec <= 0 {
				t.Errorf("wall %v, samples/s %v", res.Wall, res.SamplesPerSec)
			}
		})
	}
}

func TestReplayGivesUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc := &receiver{failEvery: 1, last: map[string]int64{}, tenants: map[string]int{}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	ts := make([]int64, 20)
	for i := range ts {
		ts[i] = int64(i) * 15_000
	}
	rounds, _ := EncodeRounds(NewCatalog(), sendOrder(1000, 1), 100, ts, 0)
	s := NewSender(srv.URL, http.Header{}, 2, 10*time.Second)
	s.MaxFailures = 15
	defer s.Close()
	res, err := s.Replay(ctx, "steady", rounds, 0, 0)
	if !errors.Is(err, ErrTooManyFailures) {
		t.Fatalf("got %v, want ErrTooManyFailures", err)
	}
	// Up to one request per connection may be in flight when the limit is
	// crossed, and a round's requests are handed out before it is checked.
	if res.Requests > s.MaxFailures+2 || res.Requests <= s.MaxFailures {
		t.Errorf("sent %d requests before giving up after %d failures", res.Requests, s.MaxFailures)
	}
}
