package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atoll-metrics/atoll/bench/procstat"
)

// Sender replays pre-encoded rounds against one remote-write URL.
type Sender struct {
	client      *http.Client
	url         string
	header      http.Header
	concurrency int
	// MaxFailures is how many requests of a phase may fail before Replay
	// gives up: a receiver that crashed or hangs would otherwise hold the
	// run for a request timeout per remaining request. 0 never gives up.
	MaxFailures int
}

// ErrTooManyFailures is returned by Replay when more than MaxFailures
// requests failed.
var ErrTooManyFailures = errors.New("too many failed requests")

// NewSender returns a Sender with concurrency parallel connections, kept
// alive between requests so the target spends no time on handshakes.
func NewSender(url string, header http.Header, concurrency int, timeout time.Duration) *Sender {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        concurrency * 2,
		MaxIdleConnsPerHost: concurrency * 2,
		MaxConnsPerHost:     concurrency,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	h := header.Clone()
	h.Set("Content-Encoding", "snappy")
	h.Set("Content-Type", "application/x-protobuf")
	h.Set("User-Agent", "atoll-bench-loadgen")
	h.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	return &Sender{
		client:      &http.Client{Transport: tr, Timeout: timeout},
		url:         url,
		header:      h,
		concurrency: concurrency,
		MaxFailures: 20,
	}
}

// UseTLS makes the sender verify the receiver's certificate with cfg; the
// connections stay kept alive, so handshakes are few.
func (s *Sender) UseTLS(cfg *tls.Config) {
	s.client.Transport.(*http.Transport).TLSClientConfig = cfg
}

// Close drops the idle connections.
func (s *Sender) Close() { s.client.CloseIdleConnections() }

// PhaseResult is what one replay of some rounds measured.
type PhaseResult struct {
	Name            string         `json:"name"`
	Rounds          int            `json:"rounds"`
	Requests        int            `json:"requests"`
	SamplesSent     int            `json:"samples_sent"`
	SamplesAccepted int            `json:"samples_accepted"`
	Status          map[string]int `json:"status"` // by HTTP status code, or "transport" for failed round trips
	FirstError      string         `json:"first_error,omitempty"`
	Wall            float64        `json:"wall_seconds"`
	Linger          float64        `json:"linger_seconds"` // after Wall, counted in the CPU times
	TargetCPU       float64        `json:"target_cpu_seconds"`
	LoadgenCPU      float64        `json:"loadgen_cpu_seconds"`
	// OtherCPU is what every other process on the machine used meanwhile:
	// more than a little means the numbers are skewed by outside work.
	OtherCPU      float64 `json:"other_cpu_seconds"`
	SamplesPerSec float64 `json:"samples_per_second"`
	SamplesPerCPU float64 `json:"samples_per_cpu_second"`
}

// Errors is how many requests got no 2xx answer.
func (p *PhaseResult) Errors() int {
	n := 0
	for k, v := range p.Status {
		if len(k) != 3 || k[0] != '2' {
			n += v
		}
	}
	return n
}

// Replay sends the rounds in order, each round's requests spread over the
// connections and all of them answered before the next round starts, so
// every series receives its samples in timestamp order. It measures the
// target process pid's CPU time over the phase (pid 0 skips that) and for
// linger after it: work a receiver defers, such as indexing new series, is
// then charged to the phase that caused it, though not to its wall time.
func (s *Sender) Replay(ctx context.Context, name string, rounds []Round, pid int, linger time.Duration) (PhaseResult, error) {
	res := PhaseResult{Name: name, Rounds: len(rounds), Status: map[string]int{}}
	var cpu0 time.Duration
	if pid > 0 {
		var err error
		if cpu0, err = procstat.ProcessCPU(pid); err != nil {
			return res, fmt.Errorf("reading target CPU: %w", err)
		}
	}
	machine0, _, machineErr := procstat.MachineCPU()
	self0 := procstat.SelfCPU()
	start := time.Now()

	var mu sync.Mutex
	var failures atomic.Int64
	gaveUp := func() bool { return s.MaxFailures > 0 && failures.Load() > int64(s.MaxFailures) }
	for _, round := range rounds {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if gaveUp() {
			return res, fmt.Errorf("%w: %d, first: %s", ErrTooManyFailures, failures.Load(), res.FirstError)
		}
		var next atomic.Int64
		var wg sync.WaitGroup
		for range min(s.concurrency, len(round.Requests)) {
			wg.Go(func() {
				status := map[string]int{}
				var sent, accepted, requests int
				var firstErr string
				for !gaveUp() {
					i := int(next.Add(1) - 1)
					if i >= len(round.Requests) {
						break
					}
					req := round.Requests[i]
					code, msg := s.send(ctx, req.Body)
					requests++
					sent += req.Samples
					status[code]++
					if len(code) == 3 && code[0] == '2' {
						accepted += req.Samples
					} else {
						failures.Add(1)
						if firstErr == "" {
							firstErr = code + ": " + msg
						}
					}
				}
				mu.Lock()
				defer mu.Unlock()
				for k, v := range status {
					res.Status[k] += v
				}
				res.Requests += requests
				res.SamplesSent += sent
				res.SamplesAccepted += accepted
				if res.FirstError == "" {
					res.FirstError = firstErr
				}
			})
		}
		wg.Wait()
	}
	if gaveUp() {
		return res, fmt.Errorf("%w: %d, first: %s", ErrTooManyFailures, failures.Load(), res.FirstError)
	}

	wall := time.Since(start)
	res.Wall = wall.Seconds()
	if linger > 0 {
		select {
		case <-time.After(linger):
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	res.LoadgenCPU = (procstat.SelfCPU() - self0).Seconds()
	res.Linger = linger.Seconds()
	if pid > 0 {
		cpu1, err := procstat.ProcessCPU(pid)
		if err != nil {
			return res, fmt.Errorf("reading target CPU: %w", err)
		}
		res.TargetCPU = (cpu1 - cpu0).Seconds()
	}
	if machine1, _, err := procstat.MachineCPU(); err == nil && machineErr == nil {
		res.OtherCPU = max(0, (machine1-machine0).Seconds()-res.TargetCPU-res.LoadgenCPU)
	}
	if res.Wall > 0 {
		res.SamplesPerSec = float64(res.SamplesAccepted) / res.Wall
	}
	if res.TargetCPU > 0 {
		res.SamplesPerCPU = float64(res.SamplesAccepted) / res.TargetCPU
	}
	return res, nil
}

// send posts one body and returns the status code as text ("transport" when
// no answer came) and, for failures, the start of the answer.
func (s *Sender) send(ctx context.Context, body []byte) (string, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return "transport", err.Error()
	}
	// The client may add to a request's header, so each gets its own.
	req.Header = s.header.Clone()
	req.ContentLength = int64(len(body))
	resp, err := s.client.Do(req)
	if err != nil {
		return "transport", err.Error()
	}
	defer resp.Body.Close()
	code := strconv.Itoa(resp.StatusCode)
	if resp.StatusCode/100 == 2 {
		// Drain so the connection goes back to the pool.
		_, _ = io.Copy(io.Discard, resp.Body)
		return code, ""
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	_, _ = io.Copy(io.Discard, resp.Body)
	return code, string(bytes.TrimSpace(msg))
}
