package ring

import (
	"context"
	"sync"
	"time"
)

// A member is healthy for writes only once it answered (Config.Probe):
// gossip tells who claims to be a receiver and where, not that anyone
// answers there. Without the check, a process that joins the gossip and
// advertises an address nobody answers at takes its share of every write
// and turns it into failed replicas, and two of them turn writes into
// 503s.

// probeFailuresToDrop is how many probes in a row a member that answered
// before must fail to lose its health: one slow answer is no reason to
// move its series; memberlist's failure detector notices crashes sooner.
const probeFailuresToDrop = 3

// maxProbesInFlight bounds the probes of one round.
const maxProbesInFlight = 8

// probeState is what probing found about one member.
type probeState struct {
	addr     string // the gRPC address probed; a new one starts over
	ok       bool   // answered, and has not failed probeFailuresToDrop in a row since
	failures int
	next     time.Time
}

// answeredLocked reports whether rec may count as healthy as far as
// probing goes.
func (r *Ring) answeredLocked(rec *record) bool {
	if r.cfg.Probe == nil || rec.id == r.cfg.InstanceID || rec.grpcAddr == "" {
		return true
	}
	st := r.probes[rec.id]
	return st != nil && st.ok && st.addr == rec.grpcAddr
}

// probeLoop probes members until ctx ends: new ones (or ones at a new
// address) as soon as the view shows them, so a member that joins waits
// for one round trip, not a tick, and then, with backoff, until they
// answer; healthy ones every heartbeat timeout.
func (r *Ring) probeLoop(ctx context.Context) {
	tick := time.NewTicker(min(r.cfg.HeartbeatPeriod, time.Second))
	defer tick.Stop()
	for {
		changed := r.Snapshot().Changed()
		r.probeRound(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-changed:
		}
	}
}

func (r *Ring) probeRound(ctx context.Context) {
	type due struct {
		m   Member
		err error
	}
	now := r.now()
	var todo []*due
	r.mu.Lock()
	for id, rec := range r.records {
		if id == r.cfg.InstanceID || rec.state == stateLeft || rec.grpcAddr == "" {
			continue
		}
		st := r.probes[id]
		if st == nil || st.addr != rec.grpcAddr {
			st = &probeState{addr: rec.grpcAddr}
			r.probes[id] = st
		}
		if !now.Before(st.next) {
			todo = append(todo, &due{m: rec.member()})
		}
	}
	for id := range r.probes {
		if _, ok := r.records[id]; !ok {
			delete(r.probes, id)
		}
	}
	r.mu.Unlock()
	if len(todo) == 0 {
		return
	}

	var wg sync.WaitGroup
	sem := make(chan struct{}, maxProbesInFlight)
	for _, d := range todo {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			pctx, cancel := context.WithTimeout(ctx, r.cfg.Gossip.TCPTimeout)
			defer cancel()
			d.err = r.cfg.Probe(pctx, d.m)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	now = r.now()
	changed := false
	for _, d := range todo {
		st := r.probes[d.m.ID]
		if st == nil || st.addr != d.m.GRPCAddr {
			continue // forgotten or moved meanwhile
		}
		if d.err == nil {
			r.metrics.probes.WithLabelValues("success").Inc()
			if !st.ok {
				changed = true
				r.logger.Info("member answered at its gRPC address", "member", d.m.ID, "grpc", d.m.GRPCAddr)
			}
			st.ok, st.failures = true, 0
			st.next = now.Add(r.cfg.HeartbeatTimeout)
			continue
		}
		r.metrics.probes.WithLabelValues("failure").Inc()
		st.failures++
		if st.ok && st.failures >= probeFailuresToDrop {
			st.ok = false
			changed = true
			r.logger.Warn("member stopped answering at its gRPC address", "member", d.m.ID, "grpc", d.m.GRPCAddr, "err", d.err)
		} else if !st.ok && st.failures == 1 {
			r.logger.Warn("member does not answer at its gRPC address; not counted healthy until it does",
				"member", d.m.ID, "grpc", d.m.GRPCAddr, "err", d.err)
		}
		backoff := r.cfg.HeartbeatPeriod << min(st.failures, 6)
		st.next = now.Add(min(backoff, r.cfg.HeartbeatTimeout))
	}
	if changed {
		r.publishLocked(now)
	}
}
