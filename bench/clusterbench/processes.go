package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/atoll-metrics/atoll/bench/procstat"
	"github.com/atoll-metrics/atoll/internal/localnet"
)

// process is one running atoll process.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	httpURL string // base URL of the HTTP API, /metrics and pprof
	// writeURL is the remote-write endpoint; empty for a querier.
	writeURL string
	gossip   string // gossip address; empty for `atoll all`

	exited  chan struct{}
	waitErr error
}

// startProcess runs bin with args, its output going to logPath.
func startProcess(name, bin, logPath string, args []string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop asks the process to shut down and kills it if it has not within a
// minute.
func (p *process) stop() {
	if !p.alive() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(time.Minute):
		logf("%s did not stop within a minute of SIGTERM; killing it", p.name)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitReady polls /-/ready until it answers 200, the process exits or the
// context ends.
func (p *process) waitReady(ctx context.Context) error {
	err := localnet.WaitReady(ctx, p.httpURL+"/-/ready", 2*time.Minute, p.exited)
	switch {
	case errors.Is(err, localnet.ErrExited):
		return fmt.Errorf("%s exited before ready: %v (log: %s)", p.name, p.waitErr, p.logPath)
	case err != nil:
		return fmt.Errorf("%s: %w (log: %s)", p.name, err, p.logPath)
	}
	return nil
}

// cluster is a set of `atoll receive` processes forming one ring, and
// optionally an `atoll query` over them.
type cluster struct {
	rf        int
	dir       string
	receivers []*process
	querier   *process
}

func (c *cluster) all() []*process {
	out := append([]*process(nil), c.receivers...)
	if c.querier != nil {
		out = append(out, c.querier)
	}
	return out
}

func (c *cluster) receiverPIDs() []int {
	pids := make([]int, len(c.receivers))
	for i, r := range c.receivers {
		pids[i] = r.pid()
	}
	return pids
}

// dead names a process of the cluster that exited, or is empty.
func (c *cluster) dead() string {
	for _, p := range c.all() {
		if !p.alive() {
			return fmt.Sprintf("%s exited: %v (log: %s)", p.name, p.waitErr, p.logPath)
		}
	}
	return ""
}

// stop stops the querier first, so it does not log receivers going away,
// then the receivers together.
func (c *cluster) stop() {
	if c.querier != nil {
		c.querier.stop()
	}
	var wg sync.WaitGroup
	for _, r := range c.receivers {
		wg.Go(r.stop)
	}
	wg.Wait()
}

// startCluster starts n receivers with replication factor rf, all joining
// the first one's gossip address, and waits until every receiver sees all
// of them healthy and ACTIVE in its ring.
func startCluster(ctx context.Context, bin, dir string, n, rf int) (*cluster, error) {
	c := &cluster{rf: rf, dir: dir}
	var join string
	for i := range n {
		ports, err := localnet.FreePorts(4)
		if err != nil {
			c.stop()
			return nil, err
		}
		id := fmt.Sprintf("receive-%d", i+1)
		gossip := addr(ports[3])
		if join == "" {
			join = gossip
		}
		args := []string{"receive",
			"--data-dir=" + filepath.Join(dir, id),
			"--http-address=" + addr(ports[0]),
			"--grpc-address=" + addr(ports[1]),
			"--remote-write.address=" + addr(ports[2]),
			"--ring.listen-address=" + gossip,
			"--ring.join=" + join,
			"--ring.instance-id=" + id,
			"--receive.replication-factor=" + strconv.Itoa(rf),
			// A replica that fails while the write still reaches quorum is
			// logged at debug level only; the report lists the reasons.
			"--log.level=debug",
			"--web.enable-pprof",
		}
		p, err := startProcess(id, bin, filepath.Join(dir, id+".log"), args)
		if err != nil {
			c.stop()
			return nil, err
		}
		p.httpURL = "http://" + addr(ports[0])
		p.writeURL = "http://" + addr(ports[2]) + "/api/v1/receive"
		p.gossip = gossip
		c.receivers = append(c.receivers, p)
	}
	for _, r := range c.receivers {
		if err := r.waitReady(ctx); err != nil {
			c.stop()
			return nil, err
		}
	}
	if err := c.waitRing(ctx); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// waitRing waits until every receiver sees every receiver healthy and
// ACTIVE: a write routed with a partial view would land on fewer owners.
func (c *cluster) waitRing(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		missing := ""
		for _, r := range c.receivers {
			n, err := activeReceivers(ctx, r.httpURL)
			if err != nil || n != len(c.receivers) {
				missing = fmt.Sprintf("%s sees %d of %d receivers active (%v)", r.name, n, len(c.receivers), err)
				break
			}
		}
		if missing == "" {
			return nil
		}
		if d := c.dead(); d != "" {
			return errors.New(d)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ring did not form: %s", missing)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// activeReceivers counts the healthy, ACTIVE receivers on a member's ring
// page.
func activeReceivers(ctx context.Context, httpURL string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpURL+"/ring", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var page struct {
		Members []struct {
			Role    string `json:"role"`
			State   string `json:"state"`
			Healthy bool   `json:"healthy"`
		} `json:"members"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return 0, err
	}
	n := 0
	for _, m := range page.Members {
		if m.Role == "receiver" && m.Healthy && m.State == "ACTIVE" {
			n++
		}
	}
	return n, nil
}

// startQuerier adds an `atoll query` joined to the ring and waits until it
// has checked every receiver's Store API.
func (c *cluster) startQuerier(ctx context.Context, bin string) error {
	ports, err := localnet.FreePorts(2)
	if err != nil {
		return err
	}
	args := []string{"query",
		"--http-address=" + addr(ports[0]),
		"--ring.listen-address=" + addr(ports[1]),
		"--ring.join=" + c.receivers[0].gossip,
		"--ring.instance-id=querier",
		"--store.check-interval=1s",
		"--web.enable-pprof",
	}
	p, err := startProcess("querier", bin, filepath.Join(c.dir, "querier.log"), args)
	if err != nil {
		return err
	}
	p.httpURL = "http://" + addr(ports[0])
	p.gossip = addr(ports[1])
	c.querier = p
	if err := p.waitReady(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		m, err := scrape(ctx, p.httpURL, "atoll_querier_endpoints_healthy")
		if err == nil && int(m["atoll_querier_endpoints_healthy"]) == len(c.receivers) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("querier sees %v of %d stores healthy: %w", m["atoll_querier_endpoints_healthy"], len(c.receivers), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// startSingle runs `atoll all`, the single-node reference.
func startSingle(ctx context.Context, bin, dir string) (*process, error) {
	ports, err := localnet.FreePorts(3)
	if err != nil {
		return nil, err
	}
	args := []string{"all",
		"--data-dir=" + filepath.Join(dir, "all"),
		"--http-address=" + addr(ports[0]),
		"--grpc-address=" + addr(ports[1]),
		"--remote-write.address=" + addr(ports[2]),
		// Stopping would otherwise cut and ship every head first.
		"--no-receive.flush-on-shutdown",
		"--web.enable-pprof",
	}
	p, err := startProcess("all", bin, filepath.Join(dir, "all.log"), args)
	if err != nil {
		return nil, err
	}
	p.httpURL = "http://" + addr(ports[0])
	p.writeURL = "http://" + addr(ports[2]) + "/api/v1/receive"
	if err := p.waitReady(ctx); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// scrape sums, per name, the samples of the named metrics on a /metrics
// page, over all their label sets. A name may carry the start of a label
// set, as in name{outcome="failure", to sum only those.
func scrape(ctx context.Context, httpURL string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", httpURL, resp.Status)
	}
	return sumMetrics(resp.Body, names)
}

func sumMetrics(r io.Reader, names []string) (map[string]float64, error) {
	out := make(map[string]float64, len(names))
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		for _, n := range names {
			if !strings.HasPrefix(line, n) {
				continue
			}
			// A name with a label matcher, such as m{outcome="failure",
			// matches by prefix; a bare name must end where the line's does.
			if !strings.Contains(n, "{") && (len(line) == len(n) || (line[len(n)] != '{' && line[len(n)] != ' ')) {
				continue
			}
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				return nil, fmt.Errorf("metric line %q: %w", line, err)
			}
			out[n] += v
		}
	}
	return out, sc.Err()
}

// cpuOf sums the CPU time of processes, in seconds.
func cpuOf(pids []int) (float64, error) {
	var total time.Duration
	for _, pid := range pids {
		d, err := procstat.ProcessCPU(pid)
		if err != nil {
			return 0, err
		}
		total += d
	}
	return total.Seconds(), nil
}

// rssOf sums the resident memory of processes.
func rssOf(pids []int) int64 {
	var total int64
	for _, pid := range pids {
		if rss, _, err := procstat.ProcessMemory(pid); err == nil {
			total += rss
		}
	}
	return total
}

// logFinding is a warning or error line an atoll process logged.
type logFinding struct {
	Process string `json:"process"`
	Level   string `json:"level"`
	Msg     string `json:"msg"`
	Count   int    `json:"count"`
	First   string `json:"first"`
}

// debugFindings are debug messages worth reporting: failures the client
// never hears of.
var debugFindings = []string{"replica failed", "remote write refused"}

var (
	levelRE = regexp.MustCompile(`level=(WARN|ERROR|DEBUG)`)
	msgRE   = regexp.MustCompile(`msg=("(?:[^"\\]|\\.)*"|\S+)`)
)

// scanLog groups a process's WARN and ERROR lines, and the debugFindings,
// by message.
func scanLog(p *process) []logFinding {
	f, err := os.Open(p.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []logFinding
	byKey := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		lv := levelRE.FindStringSubmatch(line)
		if lv == nil {
			continue
		}
		msg := ""
		if m := msgRE.FindStringSubmatch(line); m != nil {
			msg = strings.Trim(m[1], `"`)
		}
		if lv[1] == "DEBUG" && !slices.Contains(debugFindings, msg) {
			continue
		}
		key := lv[1] + " " + msg
		if i, ok := byKey[key]; ok {
			out[i].Count++
			continue
		}
		byKey[key] = len(out)
		out = append(out, logFinding{Process: p.name, Level: lv[1], Msg: msg, Count: 1, First: truncate(line, 400)})
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
