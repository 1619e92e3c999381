package ring

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/hashicorp/memberlist"
)

// errInvalidConfig is wrapped by every error that New returns for a Config it
// cannot run with.
var errInvalidConfig = errors.New("invalid ring config")

// maxTokens bounds NumTokens. Beyond a few hundred tokens a member's record no
// longer fits one gossip packet and only travels by push/pull; beyond this
// bound the ring tables stop being cheap to rebuild.
const maxTokens = 4096

// Role says what a member does. Only receivers own tokens; the other roles
// join the gossip so that they can discover the receivers (and each other).
type Role string

// Roles known to Atoll. Unknown roles travel through gossip unchanged, so an
// older member does not drop a newer kind of member from its view.
const (
	RoleReceiver     Role = "receiver"
	RoleQuerier      Role = "querier"
	RoleStoreGateway Role = "store-gateway"
)

// Config configures a Ring. Start from DefaultConfig: its zero-valued
// fields are not usable defaults.
type Config struct {
	// ListenAddress is the host:port the gossip listener binds, for TCP and
	// UDP alike. Port 0 picks a free port; Ring.GossipAddr reports it.
	ListenAddress string
	// AdvertiseAddress is the host[:port] other members use to reach this
	// one. Empty derives it from ListenAddress, or from the first private
	// IP when listening on all interfaces.
	AdvertiseAddress string
	// Join lists members to join: host:port, or DNS names that may resolve
	// to several members. Joining is retried in the background until it
	// succeeds, so members may start in any order.
	Join []string
	// InstanceID names this member. It must be stable across restarts:
	// tokens derive from it, so a restarted receiver owns the same series.
	InstanceID string
	// ClusterLabel tags every gossip packet. Members with different labels
	// ignore each other, so two clusters sharing a network never merge.
	// memberlist checks it on every packet and stream; with encryption it
	// is authenticated along with the message.
	ClusterLabel string
	// SecretKeyFile holds the gossip encryption keys, the first one
	// encrypting (see keyring.go). Empty gossips in the clear, and anyone
	// who reaches the gossip port can join.
	SecretKeyFile string
	// Zone is the failure domain of this member. When at least
	// ReplicationFactor zones have healthy receivers, the replicas of a key
	// go to distinct zones.
	Zone string
	// NumTokens is how many ring positions a receiver owns.
	NumTokens int
	// HeartbeatPeriod is how often this member refreshes its entry.
	HeartbeatPeriod time.Duration
	// HeartbeatTimeout: a member whose newest heartbeat is older than this
	// is unhealthy and skipped for writes.
	HeartbeatTimeout time.Duration
	// ForgetAfter: a member silent for this long is dropped from every
	// member's view, and older news about it is ignored from then on.
	ForgetAfter time.Duration

	// The fields below have no flags; the caller fills them.

	// KeyReloadInterval is how often SecretKeyFile is read again, so keys
	// rotate without restarts.
	KeyReloadInterval time.Duration
	// Probe, when set, asks a member whether it answers as itself at its
	// gRPC address. Members with a gRPC address are then healthy only once
	// they answered, and stop being so after failing a few probes in a
	// row: a member that advertises an address nobody answers at (a
	// rogue, or a broken one) never takes writes. Nil trusts gossip alone.
	Probe func(ctx context.Context, m Member) error

	// GRPCAddress is where other members forward writes and send queries.
	GRPCAddress string
	// HTTPAddress is this member's HTTP endpoint, shown on the ring page.
	HTTPAddress string
	// Role of this member. Only RoleReceiver owns tokens.
	Role Role
	// ReplicationFactor is how many members own each key.
	ReplicationFactor int
	// Gossip tunes memberlist. The defaults suit a LAN; tests shorten them.
	Gossip GossipConfig
	// Now is the clock used for heartbeats and health. Nil means time.Now.
	// Members compare each other's heartbeats with their own clocks, so
	// clocks must agree to well within HeartbeatTimeout (NTP is enough).
	Now func() time.Time
}

// GossipConfig tunes memberlist and the join and leave steps around it.
type GossipConfig struct {
	// ProbeInterval and ProbeTimeout drive memberlist's failure detector.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	// SuspicionMult scales how long a member stays suspect before it is
	// declared dead (SuspicionMult * log10(N) * ProbeInterval).
	SuspicionMult int
	// GossipInterval is how often queued updates are sent to GossipNodes
	// random members.
	GossipInterval time.Duration
	GossipNodes    int
	// RetransmitMult scales how often each update is retransmitted
	// (RetransmitMult * log10(N+1) times).
	RetransmitMult int
	// PushPullInterval is how often full state is exchanged with one
	// random member; it repairs whatever incremental gossip missed.
	PushPullInterval time.Duration
	// GossipToTheDeadTime is how long dead members are still gossiped to.
	GossipToTheDeadTime time.Duration
	// TCPTimeout bounds the TCP connections of joins and push/pulls.
	TCPTimeout time.Duration
	// JoinBackoffMin and JoinBackoffMax bound the delay between join
	// attempts while this member sees no other member.
	JoinBackoffMin time.Duration
	JoinBackoffMax time.Duration
	// LeaveTimeout bounds each step of a graceful leave (announcing
	// LEAVING, then the departure).
	LeaveTimeout time.Duration
}

// defaultGossipConfig returns memberlist's LAN defaults.
func defaultGossipConfig() GossipConfig {
	lan := memberlist.DefaultLANConfig()
	return GossipConfig{
		ProbeInterval:       lan.ProbeInterval,
		ProbeTimeout:        lan.ProbeTimeout,
		SuspicionMult:       lan.SuspicionMult,
		GossipInterval:      lan.GossipInterval,
		GossipNodes:         lan.GossipNodes,
		RetransmitMult:      lan.RetransmitMult,
		PushPullInterval:    lan.PushPullInterval,
		GossipToTheDeadTime: lan.GossipToTheDeadTime,
		TCPTimeout:          lan.TCPTimeout,
		JoinBackoffMin:      time.Second,
		JoinBackoffMax:      30 * time.Second,
		LeaveTimeout:        5 * time.Second,
	}
}

// DefaultConfig returns the defaults for a receiver: instance id from the
// hostname, 128 tokens, replication factor 3.
func DefaultConfig() Config {
	hostname, _ := os.Hostname()
	return Config{
		ListenAddress:     "0.0.0.0:7946",
		InstanceID:        hostname,
		NumTokens:         128,
		HeartbeatPeriod:   5 * time.Second,
		HeartbeatTimeout:  30 * time.Second,
		ForgetAfter:       10 * time.Minute,
		KeyReloadInterval: 10 * time.Second,
		Role:              RoleReceiver,
		ReplicationFactor: 3,
		Gossip:            defaultGossipConfig(),
	}
}

// RegisterFlags registers the --ring.* flags on cmd, with the current field
// values as defaults.
func (c *Config) RegisterFlags(cmd *kingpin.CmdClause) {
	cmd.Flag("ring.listen-address", "Address (host:port) the gossip listener binds, TCP and UDP.").
		Default(c.ListenAddress).StringVar(&c.ListenAddress)
	cmd.Flag("ring.advertise-address", "Gossip address (host[:port]) other members use to reach this one. Derived from --ring.listen-address, or the first private IP when listening on all interfaces, if empty.").
		Default(c.AdvertiseAddress).StringVar(&c.AdvertiseAddress)
	cmd.Flag("ring.join", "Member to join, as host:port or a DNS name resolving to several members. Repeatable. Retried in the background until a join succeeds.").
		Default(c.Join...).PlaceHolder("<host:port>").StringsVar(&c.Join)
	cmd.Flag("ring.instance-id", "Name of this member. Must be stable across restarts: the member's tokens derive from it.").
		Default(c.InstanceID).StringVar(&c.InstanceID)
	cmd.Flag("ring.cluster-label", "Label carried by every gossip packet. Members with different labels ignore each other, so two clusters never merge.").
		Default(c.ClusterLabel).StringVar(&c.ClusterLabel)
	cmd.Flag("ring.secret-key-file", "File of gossip encryption keys, one base64 key (16, 24 or 32 bytes) a line, the first one encrypting; read again every 10s, so keys rotate without restarts. Without it gossip is plaintext and anyone who reaches the gossip port can join. See docs/security.md.").
		PlaceHolder("<file>").StringVar(&c.SecretKeyFile)
	cmd.Flag("ring.zone", "Failure domain of this member. Replicas go to distinct zones when there are at least replication-factor zones.").
		Default(c.Zone).StringVar(&c.Zone)
	cmd.Flag("ring.tokens", "Number of ring tokens a receiver owns.").
		Default(strconv.Itoa(c.NumTokens)).IntVar(&c.NumTokens)
	cmd.Flag("ring.heartbeat-period", "How often this member refreshes its ring entry.").
		Default(c.HeartbeatPeriod.String()).DurationVar(&c.HeartbeatPeriod)
	cmd.Flag("ring.heartbeat-timeout", "A member whose last heartbeat is older than this is unhealthy and skipped for writes.").
		Default(c.HeartbeatTimeout.String()).DurationVar(&c.HeartbeatTimeout)
	cmd.Flag("ring.forget-after", "A member silent for this long is removed from every member's view.").
		Default(c.ForgetAfter.String()).DurationVar(&c.ForgetAfter)
}

func (c *Config) validate() error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", errInvalidConfig, fmt.Sprintf(format, args...))
	}
	if c.InstanceID == "" {
		return invalid("instance id is empty")
	}
	if c.Role == "" {
		return invalid("role is empty")
	}
	if _, _, err := splitListenAddress(c.ListenAddress); err != nil {
		return invalid("listen address %q: %v", c.ListenAddress, err)
	}
	if c.Role == RoleReceiver && (c.NumTokens < 1 || c.NumTokens > maxTokens) {
		return invalid("a receiver needs 1 to %d tokens, got %d", maxTokens, c.NumTokens)
	}
	if c.ReplicationFactor < 1 {
		return invalid("replication factor must be at least 1, got %d", c.ReplicationFactor)
	}
	if c.HeartbeatPeriod <= 0 {
		return invalid("heartbeat period must be positive")
	}
	if c.HeartbeatTimeout <= c.HeartbeatPeriod {
		return invalid("heartbeat timeout (%v) must exceed the heartbeat period (%v)", c.HeartbeatTimeout, c.HeartbeatPeriod)
	}
	if c.ForgetAfter <= c.HeartbeatTimeout {
		return invalid("forget-after (%v) must exceed the heartbeat timeout (%v)", c.ForgetAfter, c.HeartbeatTimeout)
	}
	if c.SecretKeyFile != "" && c.KeyReloadInterval <= 0 {
		return invalid("the key reload interval must be positive")
	}
	if len(c.ClusterLabel) > memberlist.LabelMaxSize {
		return invalid("cluster label is longer than %d bytes", memberlist.LabelMaxSize)
	}
	g := c.Gossip
	if g.ProbeInterval <= 0 || g.ProbeTimeout <= 0 || g.GossipInterval <= 0 || g.PushPullInterval <= 0 ||
		g.TCPTimeout <= 0 || g.JoinBackoffMin <= 0 || g.JoinBackoffMax < g.JoinBackoffMin || g.LeaveTimeout <= 0 {
		return invalid("gossip intervals and timeouts must be positive (start from DefaultConfig)")
	}
	if g.SuspicionMult < 1 || g.GossipNodes < 1 || g.RetransmitMult < 1 {
		return invalid("gossip multipliers and node counts must be at least 1")
	}
	return nil
}

func splitListenAddress(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", portStr, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, int(port), nil
}

// advertise resolves AdvertiseAddress into the IP and port memberlist wants;
// an empty ip lets memberlist derive it. A missing port means the bind port.
func (c *Config) advertise(bindPort int) (ip string, port int, err error) {
	if c.AdvertiseAddress == "" {
		return "", bindPort, nil
	}
	host, portStr, err := net.SplitHostPort(c.AdvertiseAddress)
	if err != nil {
		host, portStr = c.AdvertiseAddress, ""
	}
	port = bindPort
	if portStr != "" {
		p, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return "", 0, fmt.Errorf("%w: advertise port %q: %v", errInvalidConfig, portStr, err)
		}
		port = int(p)
	}
	if net.ParseIP(host) != nil {
		return host, port, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return "", 0, fmt.Errorf("%w: resolve advertise address %q: %v", errInvalidConfig, host, err)
	}
	return ips[0].String(), port, nil
}
