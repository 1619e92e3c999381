package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atoll-metrics/atoll/tenant"
)

// spreader hands each remote-write request to the next receiver in turn,
// as a load balancer in front of the receivers would. loadgen posts to one
// URL; this is how its load reaches all three receivers in equal parts,
// request by request rather than connection by connection (four connections
// over three receivers would split 2:1:1).
type spreader struct {
	targets []string
	client  *http.Client
	next    atomic.Uint64
	srv     *http.Server
	ln      net.Listener
	done    chan struct{}

	mtx    sync.Mutex
	sent   []int // requests per target
	status map[string]int
	errMsg string
}

// newSpreader listens on a free loopback port and forwards to targets, at
// most concurrency requests to each at a time.
func newSpreader(targets []string, concurrency int) (*spreader, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &spreader{
		targets: targets,
		client: &http.Client{
			Transport: &http.Transport{
				MaxIdleConnsPerHost: concurrency,
				MaxConnsPerHost:     concurrency,
				IdleConnTimeout:     time.Minute,
				DisableCompression:  true,
			},
			Timeout: time.Minute,
		},
		ln:     ln,
		done:   make(chan struct{}),
		sent:   make([]int, len(targets)),
		status: map[string]int{},
	}
	s.srv = &http.Server{Handler: s}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// URL is where loadgen posts.
func (s *spreader) URL() string { return "http://" + s.ln.Addr().String() + "/api/v1/receive" }

func (s *spreader) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	s.client.CloseIdleConnections()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// forwarded are the headers a remote-write receiver reads.
var forwarded = []string{"Content-Encoding", "Content-Type", "User-Agent", "X-Prometheus-Remote-Write-Version", tenant.HeaderThanos, tenant.HeaderOrgID}

func (s *spreader) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	i := int((s.next.Add(1) - 1) % uint64(len(s.targets)))
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, s.targets[i], bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for _, h := range forwarded {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.ContentLength = int64(len(body))
	resp, err := s.client.Do(req)
	if err != nil {
		s.record(i, "transport", err.Error())
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	msg := ""
	if resp.StatusCode/100 != 2 {
		msg = string(answer)
	}
	s.record(i, strconv.Itoa(resp.StatusCode), msg)
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

func (s *spreader) record(target int, code, msg string) {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	s.sent[target]++
	s.status[code]++
	if msg != "" && s.errMsg == "" {
		s.errMsg = truncate(code+": "+msg, 300)
	}
}

// stats returns the requests each target got, the answers by status, and
// the first failure.
func (s *spreader) stats() ([]int, map[string]int, string) {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	st := make(map[string]int, len(s.status))
	for k, v := range s.status {
		st[k] = v
	}
	return append([]int(nil), s.sent...), st, s.errMsg
}
