package main

import (
	"fmt"
	"math"
	"sort"
)

// The catalogue below imitates what a fleet of node_exporter and
// kube-state-metrics targets exposes: about 200 metric names, each with its
// own number of series per target (node_load1 has one, node_cpu_seconds_total
// many), and label sets of 150 to 300 bytes. Ingest cost depends on label
// count, label length and how many series share a name, so those are what the
// catalogue tries to get right; the exact names matter less.

// dim is a label that tells a metric's series on one target apart.
type dim struct {
	name   string
	values []string
}

// subsystem is a group of metrics sharing an exporter and dims.
type subsystem struct {
	kube   bool // kube-state-metrics style: namespace, pod and container labels
	prefix string
	leaves []string
	dims   []dim
	// card is how many series each metric of the subsystem has per target.
	card int
	// counter metrics only go up; the rest are gauges.
	counter bool
}

var (
	dimCPU        = dim{"cpu", []string{"0", "1", "2", "3", "4", "5", "6", "7"}}
	dimMode       = dim{"mode", []string{"user", "system", "idle", "iowait", "irq", "softirq", "steal", "nice"}}
	dimDisk       = dim{"device", []string{"nvme0n1", "nvme1n1", "sda", "sdb", "dm-0", "dm-1"}}
	dimNIC        = dim{"device", []string{"eth0", "eth1", "lo", "docker0", "cali4f3a91bc2de", "vxlan.calico"}}
	dimMount      = dim{"mountpoint", []string{"/", "/boot", "/var/lib/kubelet", "/var/lib/containerd", "/run", "/data"}}
	dimFSType     = dim{"fstype", []string{"ext4", "xfs"}}
	dimZone       = dim{"zone", []string{"DMA", "DMA32", "Normal"}}
	dimCollector  = dim{"collector", []string{"cpu", "diskstats", "filesystem", "meminfo", "netdev", "loadavg", "vmstat", "time"}}
	dimPhase      = dim{"phase", []string{"Pending", "Running", "Succeeded", "Failed", "Unknown"}}
	dimReason     = dim{"reason", []string{"ContainerCreating", "CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "OOMKilled", "Completed"}}
	dimResource   = dim{"resource", []string{"cpu", "memory", "ephemeral_storage"}}
	dimUnit       = dim{"unit", []string{"core", "byte"}}
	dimCondition  = dim{"condition", []string{"true", "false", "unknown"}}
	dimType       = dim{"type", []string{"Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"}}
	dimStatus     = dim{"status", []string{"active", "succeeded", "failed"}}
	dimVerb       = dim{"verb", []string{"GET", "LIST", "WATCH", "PATCH", "POST"}}
	dimCode       = dim{"code", []string{"200", "201", "404", "409", "500"}}
	dimHTTPMethod = dim{"method", []string{"GET", "POST", "PUT", "DELETE"}}
)

var subsystems = []subsystem{
	{prefix: "node_cpu_", counter: true, card: 16, dims: []dim{dimMode, dimCPU},
		leaves: []string{"seconds_total", "guest_seconds_total", "core_throttles_total", "package_throttles_total"}},
	{prefix: "node_cpu_", card: 8, dims: []dim{dimCPU},
		leaves: []string{"frequency_hertz", "scaling_frequency_hertz", "scaling_frequency_max_hertz", "scaling_frequency_min_hertz", "online", "info"}},
	{prefix: "node_memory_", card: 1,
		leaves: []string{"MemTotal_bytes", "MemFree_bytes", "MemAvailable_bytes", "Buffers_bytes", "Cached_bytes", "SwapCached_bytes",
			"Active_bytes", "Inactive_bytes", "Active_anon_bytes", "Inactive_anon_bytes", "Active_file_bytes", "Inactive_file_bytes",
			"Unevictable_bytes", "Mlocked_bytes", "SwapTotal_bytes", "SwapFree_bytes", "Dirty_bytes", "Writeback_bytes",
			"AnonPages_bytes", "Mapped_bytes", "Shmem_bytes", "KReclaimable_bytes", "Slab_bytes", "SReclaimable_bytes",
			"SUnreclaim_bytes", "KernelStack_bytes", "PageTables_bytes", "CommitLimit_bytes", "Committed_AS_bytes",
			"VmallocTotal_bytes", "VmallocUsed_bytes", "HugePages_Total", "HugePages_Free", "Hugepagesize_bytes"}},
	{prefix: "node_disk_", counter: true, card: 4, dims: []dim{dimDisk},
		leaves: []string{"reads_completed_total", "reads_merged_total", "read_bytes_total", "read_time_seconds_total",
			"writes_completed_total", "writes_merged_total", "written_bytes_total", "write_time_seconds_total",
			"io_time_seconds_total", "io_time_weighted_seconds_total", "discards_completed_total", "flush_requests_total"}},
	{prefix: "node_disk_", card: 4, dims: []dim{dimDisk},
		leaves: []string{"io_now", "info", "filesystem_info", "device_mapper_info"}},
	{prefix: "node_network_", counter: true, card: 4, dims: []dim{dimNIC},
		leaves: []string{"receive_bytes_total", "receive_packets_total", "receive_errs_total", "receive_drop_total",
			"receive_fifo_total", "receive_frame_total", "receive_multicast_total", "transmit_bytes_total",
			"transmit_packets_total", "transmit_errs_total", "transmit_drop_total", "transmit_fifo_total",
			"transmit_colls_total", "transmit_carrier_total"}},
	{prefix: "node_network_", card: 4, dims: []dim{dimNIC},
		leaves: []string{"up", "mtu_bytes", "speed_bytes", "carrier", "info", "transmit_queue_length", "flags", "iface_id"}},
	{prefix: "node_filesystem_", card: 6, dims: []dim{dimMount, dimFSType},
		leaves: []string{"avail_bytes", "free_bytes", "size_bytes", "files", "files_free", "readonly", "device_error", "mount_info"}},
	{prefix: "node_vmstat_", counter: true, card: 1,
		leaves: []string{"pgfault", "pgmajfault", "pgpgin", "pgpgout", "pswpin", "pswpout", "oom_kill", "pgsteal_kswapd", "pgscan_direct"}},
	{prefix: "node_zoneinfo_", card: 3, dims: []dim{dimZone},
		leaves: []string{"nr_free_pages", "high_pages", "low_pages", "min_pages", "managed_pages", "present_pages"}},
	{prefix: "node_", card: 1,
		leaves: []string{"load1", "load5", "load15", "boot_time_seconds", "time_seconds", "procs_running", "procs_blocked",
			"forks_total", "context_switches_total", "intr_total", "entropy_available_bits", "filefd_allocated",
			"filefd_maximum", "sockstat_TCP_inuse", "sockstat_TCP_tw", "sockstat_UDP_inuse", "nf_conntrack_entries",
			"nf_conntrack_entries_limit", "timex_offset_seconds", "timex_sync_status", "uname_info", "os_info"}},
	{prefix: "node_scrape_collector_", card: 8, dims: []dim{dimCollector},
		leaves: []string{"duration_seconds", "success"}},
	{kube: true, prefix: "kube_pod_", card: 4,
		leaves: []string{"info", "owner", "labels", "annotations", "created", "start_time", "completion_time",
			"status_ready", "status_scheduled", "status_qos_class", "spec_volumes_persistentvolumeclaims_info",
			"restart_policy", "tolerations", "nodeselectors", "service_account"}},
	{kube: true, prefix: "kube_pod_status_", card: 8, dims: []dim{dimPhase},
		leaves: []string{"phase", "reason", "scheduled_time", "unschedulable"}},
	{kube: true, prefix: "kube_pod_container_", card: 4,
		leaves: []string{"info", "status_ready", "status_running", "status_terminated", "status_waiting",
			"status_restarts_total", "state_started", "status_last_terminated_exitcode"}},
	{kube: true, prefix: "kube_pod_container_status_", card: 8, dims: []dim{dimReason},
		leaves: []string{"waiting_reason", "terminated_reason", "last_terminated_reason"}},
	{kube: true, prefix: "kube_pod_container_resource_", card: 8, dims: []dim{dimResource, dimUnit},
		leaves: []string{"requests", "limits"}},
	{kube: true, prefix: "kube_deployment_", card: 2,
		leaves: []string{"created", "spec_replicas", "spec_paused", "status_replicas", "status_replicas_available",
			"status_replicas_unavailable", "status_replicas_updated", "status_replicas_ready", "status_observed_generation",
			"metadata_generation", "labels", "annotations", "spec_strategy_rollingupdate_max_surge",
			"spec_strategy_rollingupdate_max_unavailable", "status_condition"}},
	{kube: true, prefix: "kube_node_", card: 4, dims: []dim{dimType, dimCondition},
		leaves: []string{"status_condition", "spec_taint"}},
	{kube: true, prefix: "kube_node_", card: 1,
		leaves: []string{"info", "created", "labels", "spec_unschedulable", "status_allocatable", "status_capacity", "role"}},
	{kube: true, prefix: "kube_job_", card: 3, dims: []dim{dimStatus},
		leaves: []string{"status", "info", "created", "owner", "spec_completions", "spec_parallelism", "complete", "failed"}},
	{kube: true, prefix: "kube_replicaset_", card: 2,
		leaves: []string{"created", "owner", "spec_replicas", "status_replicas", "status_ready_replicas", "status_fully_labeled_replicas", "metadata_generation"}},
	{kube: true, prefix: "apiserver_request_", counter: true, card: 6, dims: []dim{dimVerb, dimCode},
		leaves: []string{"total", "duration_seconds_count", "duration_seconds_sum", "terminations_total"}},
	{kube: true, prefix: "http_server_", counter: true, card: 6, dims: []dim{dimHTTPMethod, dimCode},
		leaves: []string{"requests_total", "request_duration_seconds_count", "request_duration_seconds_sum", "response_size_bytes_sum", "response_size_bytes_count"}},
}

var (
	clusters   = []string{"prod-eu-west-1", "prod-us-east-2", "staging-eu-central-1"}
	regions    = []string{"eu-west-1", "us-east-2", "eu-central-1"}
	namespaces = []string{"payments", "checkout", "kube-system", "monitoring", "ingress-nginx", "search", "identity", "catalog"}
	workloads  = []string{"checkout-api", "payment-gateway", "cart-service", "coredns", "ingress-nginx-controller",
		"search-indexer", "identity-provider", "catalog-reader", "fraud-scorer", "notification-worker"}
)

// metric is one name of the catalogue.
type metric struct {
	name string
	sub  *subsystem
}

// slot is one series of a target: which metric, and which of its series.
type slot struct {
	metric  int32
	variant int32
}

// Catalog maps a series index to its labels. Series index i lives on target
// i/len(slots) and is slot i%len(slots) of that target, so any prefix of the
// index space is a fleet of whole targets (plus one partial).
type Catalog struct {
	metrics []metric
	slots   []slot
}

// NewCatalog builds the metric catalogue.
func NewCatalog() *Catalog {
	c := &Catalog{}
	for si := range subsystems {
		s := &subsystems[si]
		if n := s.variants(); s.card > n {
			panic(fmt.Sprintf("subsystem %s: card %d exceeds %d distinct label sets", s.prefix, s.card, n))
		}
		for _, leaf := range s.leaves {
			mi := int32(len(c.metrics))
			c.metrics = append(c.metrics, metric{name: s.prefix + leaf, sub: s})
			for v := range s.card {
				c.slots = append(c.slots, slot{metric: mi, variant: int32(v)})
			}
		}
	}
	return c
}

// variants is how many distinct label sets one target can give a metric of
// the subsystem.
func (s *subsystem) variants() int {
	n := 1
	if s.kube {
		n = podsPerTarget
	}
	for _, d := range s.dims {
		n *= len(d.values)
	}
	return n
}

// podsPerTarget is how many pods a kube-style target reports on.
const podsPerTarget = 8

// Metrics is the number of metric names.
func (c *Catalog) Metrics() int { return len(c.metrics) }

// SeriesPerTarget is how many series one target exposes.
func (c *Catalog) SeriesPerTarget() int { return len(c.slots) }

// Label is one name/value pair.
type Label struct{ Name, Value string }

// Labels appends series i's labels, sorted by name, to dst.
func (c *Catalog) Labels(dst []Label, i int) []Label {
	target := i / len(c.slots)
	sl := c.slots[i%len(c.slots)]
	m := &c.metrics[sl.metric]
	s := m.sub
	v := int(sl.variant)

	start := len(dst)
	cl := target % len(clusters)
	dst = append(dst, Label{"__name__", m.name}, Label{"cluster", clusters[cl]})
	ip := fmt.Sprintf("10.%d.%d.%d", 32+target>>16&0xff, target>>8&0xff, target&0xff)
	if s.kube {
		dst = append(dst, Label{"job", "kube-state-metrics"}, Label{"instance", ip + ":8080"})
		pod := v % podsPerTarget
		v /= podsPerTarget
		w := workloads[(target*3+pod)%len(workloads)]
		dst = append(dst,
			Label{"namespace", namespaces[(target+pod)%len(namespaces)]},
			Label{"pod", w + "-" + podSuffix(target, pod)},
			Label{"container", w},
		)
	} else {
		dst = append(dst,
			Label{"job", "node-exporter"},
			Label{"instance", ip + ":9100"},
			Label{"region", regions[cl]},
			Label{"service", "prometheus-node-exporter"},
			Label{"node", "ip-" + dashed(ip) + "." + regions[cl] + ".compute.internal"},
		)
	}
	for _, d := range s.dims {
		dst = append(dst, Label{d.name, d.values[v%len(d.values)]})
		v /= len(d.values)
	}
	ls := dst[start:]
	sort.Slice(ls, func(a, b int) bool { return ls[a].Name < ls[b].Name })
	return dst
}

// Value is series i's sample value in round r: counters climb by a
// per-series step with some jitter, gauges wander around a per-series level,
// so chunk compression sees realistic, not constant, values.
func (c *Catalog) Value(i, r int) float64 {
	h := mix(uint64(i))
	m := &c.metrics[c.slots[i%len(c.slots)].metric]
	if m.sub.counter {
		// The jitter stays below one step, so the counter never goes down.
		step := h%1000 + 1
		jitter := mix(h^uint64(r)) % step
		return float64(h>>40) + float64(step)*float64(r) + float64(jitter)
	}
	level := float64(h % 1_000_000)
	if h&1 == 0 {
		return level // many gauges are integers that rarely move
	}
	return level * (1 + 0.05*math.Sin(float64(r)/7+float64(h%17)))
}

func podSuffix(target, pod int) string {
	h := mix(uint64(target)<<8 | uint64(pod))
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 0, 16)
	for range 10 {
		b = append(b, alphabet[h%uint64(len(alphabet))])
		h /= uint64(len(alphabet))
	}
	b = append(b[:10], '-')
	b = append(b, b[2:7]...)
	return string(b)
}

func dashed(ip string) string {
	b := []byte(ip)
	for i, c := range b {
		if c == '.' {
			b[i] = '-'
		}
	}
	return string(b)
}

// mix is splitmix64's finaliser: a cheap, well-spread hash of an integer.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// labelBytesOf is the summed length of names and values.
func labelBytesOf(ls []Label) int {
	n := 0
	for _, l := range ls {
		n += len(l.Name) + len(l.Value)
	}
	return n
}
