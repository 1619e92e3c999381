package frontend

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The real programs the tests run against, started on loopback ports
// picked at run time and stopped when the test ends.

type output struct {
	mtx sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mtx.Lock()
	defer o.mtx.Unlock()
	return o.buf.Write(p)
}

func (o *output) tail(n int) string {
	o.mtx.Lock()
	defer o.mtx.Unlock()
	s := o.buf.String()
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	out  *output
	done chan struct{}
}

func startProc(t testing.TB, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, cmd: exec.Command(bin, args...), out: &output{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s output (end) ---\n%s", name, p.out.tail(4096))
		}
	})
	return p
}

func (p *proc) waitReady(url string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			p.t.Fatalf("%s exited:\n%s", p.name, p.out.tail(4096))
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("%s not ready at %s within %s:\n%s", p.name, url, timeout, p.out.tail(4096))
}

// waitListening waits until something accepts connections at addr.
func (p *proc) waitListening(addr string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("%s not listening at %s within %s:\n%s", p.name, addr, timeout, p.out.tail(4096))
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

// findTool finds a program the tests run: in PATH, GOPATH/bin (where
// `make tools` installs Go programs) or /usr/bin.
func findTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if gp, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(gp)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found: run `make tools` (the tests use the real program)", name)
	return ""
}

// startMemcached runs a real memcached on a free loopback port and returns
// its address.
func startMemcached(t testing.TB) string {
	t.Helper()
	bin := findTool(t, "memcached")
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	_, port, _ := net.SplitHostPort(addr)
	args := []string{"-l", "127.0.0.1", "-p", port, "-U", "0", "-m", "64", "-I", "4m"}
	if os.Geteuid() == 0 {
		// memcached refuses to run as root unless told whom to run as.
		args = append(args, "-u", "root")
	}
	p := startProc(t, "memcached", bin, args...)
	p.waitListening(addr, 10*time.Second)
	return addr
}
