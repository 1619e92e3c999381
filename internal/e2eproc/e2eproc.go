package e2eproc

import (
	"bytes"
	"context"
	"errors"
	"go/build"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atoll-metrics/atoll/internal/localnet"
)

// Output collects what a process writes to its stdout and stderr, which
// two goroutines of os/exec copy concurrently; it is safe for concurrent
// use. It serves as a log sink for tests as well.
type Output struct {
	mtx sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mtx.Lock()
	defer o.mtx.Unlock()
	return o.buf.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mtx.Lock()
	defer o.mtx.Unlock()
	return o.buf.String()
}

// Tail returns at most the last n bytes written.
func (o *Output) Tail(n int) string {
	s := o.String()
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Process is a program started by a test and stopped when the test ends.
type Process struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	out  *Output
	done chan struct{}
}

// tailBytes is how much of a process's output a failing test shows.
const tailBytes = 4096

// Start runs bin with args, its output captured, and stops it when the
// test ends (SIGTERM, then SIGKILL after 10s), logging the end of its
// output if the test failed.
func Start(t testing.TB, name, bin string, args ...string) *Process {
	t.Helper()
	return StartCmd(t, name, exec.Command(bin, args...))
}

// StartCmd is Start for a prepared command, for a test that needs to set
// its environment or directory. Its Stdout and Stderr are replaced.
func StartCmd(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{t: t, name: name, cmd: cmd, out: &Output{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("--- %s output (last %d bytes) ---\n%s", name, tailBytes, p.out.Tail(tailBytes))
		}
	})
	return p
}

// Output returns what the process wrote so far.
func (p *Process) Output() *Output { return p.out }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits up to grace, then SIGKILLs what is left.
func (p *Process) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// WaitReady fails the test unless url answers 200 within timeout, or if
// the process exits first.
func (p *Process) WaitReady(url string, timeout time.Duration) {
	p.t.Helper()
	p.WaitReadyWith(http.DefaultClient, url, timeout)
}

// WaitReadyWith is WaitReady through client (one that trusts a test CA,
// say), credentials in the URL.
func (p *Process) WaitReadyWith(client *http.Client, url string, timeout time.Duration) {
	p.t.Helper()
	err := localnet.WaitReadyWith(context.Background(), client, url, timeout, p.done)
	switch {
	case errors.Is(err, localnet.ErrExited):
		p.t.Fatalf("%s exited before it was ready:\n%s", p.name, p.out.Tail(tailBytes))
	case err != nil:
		p.t.Fatalf("%s not ready: %v:\n%s", p.name, err, p.out.Tail(tailBytes))
	}
}

// Ports returns n loopback ports free for TCP and UDP at the time of the
// call.
func Ports(t testing.TB, n int) []int {
	t.Helper()
	ports, err := localnet.FreePorts(n)
	if err != nil {
		t.Fatalf("pick free ports: %v", err)
	}
	return ports
}

// FindTool locates a real program tests run against: PATH first, then the
// bin directories of GOPATH, where `make tools` installs it. The test fails
// when it is missing.
func FindTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	var gopaths []string
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		gopaths = append(gopaths, filepath.SplitList(strings.TrimSpace(string(out)))...)
	}
	gopaths = append(gopaths, filepath.SplitList(build.Default.GOPATH)...)
	for _, gp := range gopaths {
		p := filepath.Join(gp, "bin", name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	t.Fatalf("%s not found in PATH or $(go env GOPATH)/bin: `make tools` installs it; the tests use the real program", name)
	return ""
}
