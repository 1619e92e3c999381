package ring

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type ringMetrics struct {
	messagesReceived *prometheus.CounterVec
	messagesSent     *prometheus.CounterVec
	updates          *prometheus.CounterVec
	pushPulls        *prometheus.CounterVec
	joinAttempts     *prometheus.CounterVec
	forgotten        prometheus.Counter
	probes           *prometheus.CounterVec
	viewChanges      prometheus.Counter
}

// Results of merging one record learned from gossip.
const (
	updateApplied       = "applied"
	updateStale         = "stale"          // not newer than what we hold
	updateExpired       = "expired"        // older than ForgetAfter, or from too far in the future
	updateUnknownDigest = "unknown_digest" // a beat for a record we do not hold
	updateInvalid       = "invalid"        // undecodable
)

func kindLabel(kind byte) string {
	switch kind {
	case kindFull:
		return "full"
	case kindBeat:
		return "beat"
	}
	return "unknown"
}

func newRingMetrics() *ringMetrics {
	m := &ringMetrics{
		messagesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_ring_gossip_messages_received_total",
			Help: "Ring gossip messages received, by kind (full record or heartbeat).",
		}, []string{"kind"}),
		messagesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_ring_gossip_messages_sent_total",
			Help: "Ring gossip messages handed to memberlist for sending, by kind.",
		}, []string{"kind"}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_ring_gossip_updates_total",
			Help: "Member records received by gossip or push/pull, by what merging them did.",
		}, []string{"result"}),
		pushPulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_ring_push_pulls_total",
			Help: "Full state exchanges with another member, by direction (local state sent, remote state merged).",
		}, []string{"direction"}),
		joinAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_ring_join_attempts_total",
			Help: "Attempts to join the members given by --ring.join, by result.",
		}, []string{"result"}),
		forgotten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_ring_members_forgotten_total",
			Help: "Members dropped from the local view after being silent for --ring.forget-after.",
		}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_ring_member_probes_total",
			Help: "Probes of members' gRPC addresses (a member counts as healthy only once it answered), by outcome.",
		}, []string{"outcome"}),
		viewChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_ring_view_changes_total",
			Help: "Changes of members, states, addresses or health in the local view.",
		}),
	}
	for _, k := range []string{"full", "beat"} {
		m.messagesReceived.WithLabelValues(k)
		m.messagesSent.WithLabelValues(k)
	}
	for _, r := range []string{updateApplied, updateStale, updateExpired, updateUnknownDigest, updateInvalid} {
		m.updates.WithLabelValues(r)
	}
	for _, d := range []string{"sent", "received"} {
		m.pushPulls.WithLabelValues(d)
	}
	for _, r := range []string{"success", "failure"} {
		m.joinAttempts.WithLabelValues(r)
		m.probes.WithLabelValues(r)
	}
	return m
}

func (m *ringMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.messagesReceived, m.messagesSent, m.updates, m.pushPulls, m.joinAttempts, m.forgotten, m.probes, m.viewChanges}
}

// viewCollector reports the current snapshot at scrape time, so members that
// are gone leave no stale series behind.
type viewCollector struct {
	r *Ring

	members      *prometheus.Desc
	heartbeatAge *prometheus.Desc
	gossipNodes  *prometheus.Desc
	ringTokens   *prometheus.Desc
	ownership    *prometheus.Desc
}

func newViewCollector(r *Ring) *viewCollector {
	return &viewCollector{
		r: r,
		members: prometheus.NewDesc("atoll_ring_members",
			"Members in the local view, by state and health.", []string{"state", "health"}, nil),
		heartbeatAge: prometheus.NewDesc("atoll_ring_member_heartbeat_age_seconds",
			"Time since each member's last heartbeat, as seen locally.", []string{"member"}, nil),
		gossipNodes: prometheus.NewDesc("atoll_ring_gossip_alive_nodes",
			"Nodes memberlist considers alive, this one included.", nil, nil),
		ringTokens: prometheus.NewDesc("atoll_ring_write_tokens",
			"Tokens of healthy receivers, that is of members that take writes.", nil, nil),
		ownership: prometheus.NewDesc("atoll_ring_member_ownership_ratio",
			"Share of the key space each member with tokens owns as primary, healthy or not, as seen locally.", []string{"member"}, nil),
	}
}

func (c *viewCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.members
	ch <- c.heartbeatAge
	ch <- c.gossipNodes
	ch <- c.ringTokens
	ch <- c.ownership
}

func (c *viewCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.Snapshot()
	now := c.r.now()
	counts := map[State][2]int{StateJoining: {}, StateActive: {}, StateLeaving: {}}
	share := s.ownership()
	for i, m := range s.members {
		if len(m.Tokens) > 0 {
			ch <- prometheus.MustNewConstMetric(c.ownership, prometheus.GaugeValue, share[i], m.ID)
		}
		n := counts[m.State]
		if s.healthy[i] {
			n[0]++
		} else {
			n[1]++
		}
		counts[m.State] = n
		ch <- prometheus.MustNewConstMetric(c.heartbeatAge, prometheus.GaugeValue,
			max(0, now.Sub(m.Heartbeat).Seconds()), m.ID)
	}
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(n[0]), st.String(), "healthy")
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(n[1]), st.String(), "unhealthy")
	}
	ch <- prometheus.MustNewConstMetric(c.gossipNodes, prometheus.GaugeValue, float64(c.r.aliveNodes.Load()))
	ch <- prometheus.MustNewConstMetric(c.ringTokens, prometheus.GaugeValue, float64(len(s.tokens)))
}

// heartbeatAge is how old a heartbeat is at now; negative ages (a clock a
// little ahead of ours) count as fresh.
func heartbeatAge(now time.Time, heartbeat int64) time.Duration {
	return time.Duration(now.UnixNano() - heartbeat)
}
